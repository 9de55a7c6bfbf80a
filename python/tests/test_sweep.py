"""pfode.sweep with a Python model gives the CLI's table for the equivalent built-in model;
orders and plots read the folder it writes."""

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pfode
from mixture import eps_t

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "py_parity",
    "models": ["ring2d"],
    "solvers": [{"name": "ddim"}, {"name": "dpm-solver++2m"}, {"name": "heun"}],
    "spacings": ["logsnr", "trailing"],
    "nfe": [6, 12, 24],
    "samples": 200,
    "seeds": [0, 1],
    "metrics": ["error", "frechet", "nll", "mode_coverage"],
}


def toml_text(spec):
    lines = []
    for k, v in spec.items():
        if k != "solvers":
            lines.append(f"{k} = {v!r}".replace("'", '"'))
    for s in spec["solvers"]:
        lines.append("[[solvers]]")
        lines += [f'{k} = "{v}"' for k, v in s.items()]
    return "\n".join(lines) + "\n"


def cli():
    exe = os.environ.get("PFODE_BIN") or str(ROOT / "target" / "release" / "pfode")
    if not Path(exe).exists():
        if os.environ.get("PFODE_BIN"):
            pytest.fail(f"PFODE_BIN={exe} does not exist")
        pytest.skip("no pfode binary built (cargo build --release)")
    return exe


def rows(table):
    cols = [c for c in table if c not in ("wall_ms", "model")]
    n = len(table["run"])
    return [{c: table[c][i] for c in cols} for i in range(n)]


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def test_python_model_sweep_equals_cli_sweep_of_the_builtin(tmp_path):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(toml_text(SPEC))
    subprocess.run([cli(), "sweep", str(spec_path), "--out", str(tmp_path / "cli"), "--quiet"],
                   check=True, capture_output=True)
    cli_table = pfode._pfode.results(str(tmp_path / "cli"))

    mine = pfode.Model(eps_t, shape=(2,), data="ring2d", defined_at_clean=True)
    spec = {**SPEC, "models": ["mine"]}
    py_table = pfode._pfode.sweep(spec, {"mine": mine}, str(tmp_path / "py"), False, None, True)[0]

    a, b = rows(cli_table), rows(py_table)
    assert len(a) == len(b) == 3 * 2 * 3 * 2 * 9
    for ra, rb in zip(a, b):
        assert all(same(ra[c], rb[c]) for c in ra), (ra, rb)
    assert set(py_table["model"]) == {"mine"}
    # The Python run wrote the same folder layout.
    for name in ["results.csv", "meta.json", "spec.toml"]:
        assert (tmp_path / "py" / name).exists()
    # Errors are real numbers that shrink with NFE.
    err = [r for r in b if r["metric"] == "error_rms" and r["solver"] == "dpm-solver++2m"
           and r["spacing"] == "logsnr" and r["seed"] == 0]
    assert [r["nfe"] for r in err] == [6, 12, 24]
    assert err[0]["value"] > err[1]["value"] > err[2]["value"] > 0


def test_orders_and_plots_of_a_python_sweep(tmp_path):
    mine = pfode.Model(eps_t, shape=(2,), data="ring2d", defined_at_clean=True)
    spec = {**SPEC, "models": ["mine"], "nfe": [20, 40, 80, 160], "seeds": [0],
            "spacings": ["logsnr"], "metrics": ["error"]}
    table = pfode.sweep(spec, models={"mine": mine}, out=tmp_path / "o")
    orders = pfode.orders(tmp_path / "o")
    observed = dict(zip(orders["solver"], orders["observed"]))
    # DDIM is first order, DPM-Solver++(2M) and Heun second.
    assert 0.7 < observed["ddim"] < 1.4
    assert 1.6 < observed["dpm-solver++2m"] < 2.8
    assert 1.6 < observed["heun"] < 2.8
    assert pfode.orders_left_out(tmp_path / "o") == []
    files = pfode.plot(tmp_path / "o")
    assert files and all(Path(f).stat().st_size > 1000 for f in files)
    n = len(table["run"]) if isinstance(table, dict) else len(table)
    assert n == 3 * 4 * 6


def test_a_sweep_whose_model_raises_chains_the_exception(tmp_path):
    calls = {"n": 0}

    def fn(x, t):
        calls["n"] += 1
        if calls["n"] == 30:
            raise RuntimeError("out of memory, say")
        return eps_t(x, t)

    spec = {**SPEC, "models": ["mine"], "metrics": ["error"], "seeds": [0]}
    with pytest.raises(pfode.ModelError) as e:
        pfode.sweep(spec, models={"mine": pfode.Model(fn, shape=(2,))}, out=tmp_path / "f")
    assert "out of memory, say" in str(e.value)
    assert isinstance(e.value.__cause__, RuntimeError)


def test_loaded_models_sample_as_the_cli_does(tmp_path):
    """Model.load of a checkpoint and of a mixture file: the CLI's samples, bit for bit."""
    x_T = pfode.noise(32, 2, seed=4)
    np.save(tmp_path / "xT.npy", x_T)
    for spec in [ROOT / "models" / "ring2d.safetensors", ROOT / "tests" / "fixtures" / "mix8d.json"]:
        model = pfode.Model.load(str(spec))
        dim = model.shape[0]
        x = pfode.noise(32, dim, seed=4)
        np.save(tmp_path / "xT.npy", x)
        out = tmp_path / "cli.npy"
        subprocess.run([cli(), "sample", "--model", str(spec), "--solver", "dpm-solver++2m",
                        "--nfe", "10", "--noise", str(tmp_path / "xT.npy"), "--out", str(out)],
                       check=True, capture_output=True)
        ours, info = pfode.sample(model, x, solver="dpm-solver++2m", nfe=10)
        assert np.array_equal(ours, np.load(out)), spec
        assert info["nfe"] == 10


def test_a_python_model_that_returns_nan_is_a_diverged_row_as_a_builtin_one_is(tmp_path):
    # NaN at the middle times of the 6-step logsnr grid only: the runs on that grid (DDIM at
    # NFE 6, Heun at NFE 12) diverge, the others (and the reference, whose adaptive steps
    # never land on those times) do not.
    bad = pfode.grid(nfe=6, spacing="logsnr", solver="ddim")[1:-2]

    def fn(x, t):
        return np.full(x.shape, np.nan) if np.any(bad == t) else eps_t(x, t)

    mine = pfode.Model(fn, time="t", shape=(2,), data="ring2d", defined_at_clean=True)
    spec = {**SPEC, "models": ["mine"], "nfe": [6, 12], "seeds": [0], "spacings": ["logsnr"],
            "metrics": ["error"], "solvers": [{"name": "ddim"}, {"name": "heun"}]}
    table = pfode._pfode.sweep(spec, {"mine": mine}, str(tmp_path / "nan"), False, None, True)[0]
    diverged = {(x["solver"], x["nfe"]): x["value"] for x in rows(table) if x["metric"] == "diverged"}
    assert diverged == {("ddim", 6): 1.0, ("ddim", 12): 0.0, ("heun", 6): 0.0, ("heun", 12): 1.0}
    # A single run still raises, saying where.
    with pytest.raises(pfode.ModelError) as e:
        pfode.sample(mine, pfode.noise(4, 2), solver="ddim", nfe=6, spacing="logsnr")
    assert "returned NaN" in str(e.value) and "NFE 2" in str(e.value), str(e.value)


def test_sweep_table_has_budget_and_orders_say_which_error_they_fit(tmp_path):
    """`budget` is the NFE asked for (None for an adaptive solver's tolerance axis, given as
    a list), `nfe` the NFE used; orders fit Euler–Maruyama on its Brownian tree as a strong
    order and ddim as an ODE order."""
    spec = {
        "name": "py_axes",
        "models": ["gauss2d"],
        "solvers": [{"name": "heun"}, {"name": "dopri5", "rtol": [1e-3, 1e-6], "atol": [1e-3, 1e-6]},
                    {"name": "ddim"}, {"name": "euler-maruyama", "brownian": "tree"}],
        "spacings": ["uniform"],
        "nfe": [32, 64, 128],
        "samples": 200,
        "metrics": ["error", "frechet"],
    }
    table = pfode.sweep(spec, out=tmp_path / "out")
    table = pfode.results(tmp_path / "out")
    got = {(table["solver"][i], table["budget"][i], table["nfe"][i], table["spacing"][i])
           for i in range(len(table["run"])) if table["metric"][i] == "diverged"}
    assert ("heun", 32, 32, "uniform") in got
    dopri = sorted((n, b, s) for (solver, b, n, s) in got if solver == "dopri5")
    assert len(dopri) == 2 and all(b is None or (isinstance(b, float) and math.isnan(b)) for _, b, _ in dopri)
    assert all(s == "adaptive" for *_, s in dopri) and dopri[0][0] < dopri[1][0]
    orders = pfode.orders(tmp_path / "out")
    kinds = dict(zip(orders["solver"], orders["kind"]))
    assert kinds["ddim"] == "ode" and kinds["euler-maruyama"] == "strong"
