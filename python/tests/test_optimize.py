"""pfode.optimize_grid from Python: a NumPy model gets the same kind of grid file the CLI
writes, valid for its NFE and read back by spacing="file:"; a model that raises stops the
search with a ModelError and writes nothing."""

import json

import numpy as np
import pytest

import pfode
from mixture import eps_t

SMALL = dict(calibration=64, held_out=128, max_evals=150)


def numpy_ring2d():
    return pfode.Model(eps_t, prediction="eps", time="t", shape=(2,), defined_at_clean=True)


def test_a_numpy_models_optimised_grid_is_a_valid_grid_of_its_nfe_and_reads_back(tmp_path):
    out = tmp_path / "grid.json"
    times, report = pfode.optimize_grid(numpy_ring2d(), "unipc", 6, out=str(out), **SMALL)
    assert times[0] == 1.0 and times[-1] == 0.0
    assert np.all(np.diff(times) < 0)
    assert report["nfe"] == 6 and report["steps"] == len(times) - 1
    # The search keeps the best grid it saw, the best fixed grid included.
    assert report["after"]["calibration"] <= report["before"]["calibration"]
    assert report["held_out"]["seed"] == 1
    assert report["model"]["kind"] == "python" and report["model"]["time"] == "t"
    doc = json.loads(out.read_text())
    assert doc["t"] == list(times)
    back = pfode.grid(spacing=f"file:{out}")
    np.testing.assert_array_equal(back, times)
    x0, info = pfode.sample(numpy_ring2d(), pfode.noise(16, 2, seed=3), solver="unipc",
                            spacing=f"file:{out}")
    assert info["nfe"] == 6


def test_the_numpy_model_finds_the_builtins_grid():
    builtin, _ = pfode.optimize_grid(pfode.Model.builtin("ring2d"), "dpm-solver++2m", 5, **SMALL)
    numpy, _ = pfode.optimize_grid(numpy_ring2d(), "dpm-solver++2m", 5, **SMALL)
    # Round-off differs between the two models (1e-15), so the simplex paths may part late.
    np.testing.assert_allclose(numpy, builtin, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        ({"solver": "dopri5"}, ValueError, ["solver", "chooses its own steps"]),
        ({"method": "annealing"}, ValueError, ["method", "dp, direct"]),
        ({"objective": "fid"}, ValueError, ["objective", "error, digits-fd"]),
        ({"seed": 2, "held_out_seed": 2}, ValueError, ["held_out_seed", "must differ"]),
        ({"out": "grid.txt"}, ValueError, ["out", ".json"]),
    ],
)
def test_bad_optimize_grid_arguments_name_the_argument(kwargs, exc, words):
    args = dict(solver="ddim", nfe=5, **SMALL)
    args.update(kwargs)
    with pytest.raises(exc) as e:
        pfode.optimize_grid(pfode.Model.builtin("ring2d"), **args)
    for w in words:
        assert w in str(e.value)


def test_a_model_that_raises_stops_the_search_and_writes_nothing(tmp_path):
    calls = {"n": 0}

    def flaky(x, t):
        calls["n"] += 1
        if calls["n"] > 400:
            raise RuntimeError("GPU fell over")
        return eps_t(x, t)

    model = pfode.Model(flaky, prediction="eps", time="t", shape=(2,), defined_at_clean=True)
    out = tmp_path / "grid.json"
    with pytest.raises(pfode.ModelError) as e:
        pfode.optimize_grid(model, "ddim", 5, out=str(out), **SMALL)
    assert "GPU fell over" in str(e.value.__cause__) or "GPU fell over" in str(e.value)
    assert not out.exists()
