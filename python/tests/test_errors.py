"""Bad input raises a clear exception naming the argument; a failing model stops the run
with a ModelError that says where (step, time, NFE), chains the model's own exception,
and leaves no output behind."""

import os
import signal

import numpy as np
import pytest

import pfode
from mixture import eps_t

BUILTIN = pfode.Model.builtin("ring2d")
X_T = pfode.noise(8, 2, seed=0)


@pytest.mark.parametrize(
    "kwargs,exc,words",
    [
        ({"solver": "nope"}, ValueError, ["solver", "unknown solver 'nope'", "ddim"]),
        ({"steps": 5, "nfe": 5}, ValueError, ["nfe", "not both"]),
        ({}, ValueError, ["steps", "give `steps` or `nfe`"]),
        ({"steps": 5, "bogus": 1}, ValueError, ["bogus"]),
        ({"steps": 5, "eta": "high"}, ValueError, ["eta", "expected a number"]),
        ({"steps": 5, "eta": [1]}, TypeError, ["eta", "expected a number"]),
        ({"steps": 5, "solver": "ddim", "order": 2}, ValueError, ["order"]),
        ({"steps": 5, "spacing": "wiggly"}, ValueError, ["spacing", "unknown spacing"]),
        ({"spacing": [0.5, 0.7, 0.0]}, ValueError, ["spacing"]),
        ({"steps": 5, "schedule": "cubic"}, ValueError, ["schedule", "cubic"]),
        ({"steps": 5, "schedule": 3}, TypeError, ["schedule"]),
        ({"steps": 5, "precision": "float16"}, ValueError, ["precision"]),
        ({"steps": 5, "final_sigma": "none"}, ValueError, ["final_sigma"]),
        ({"steps": 5, "out": "x0.txt"}, ValueError, ["out", ".npy"]),
        ({"nfe": 1, "solver": "heun"}, ValueError, ["nfe"]),
        ({"nfe": 10, "solver": "dopri5"}, ValueError, ["nfe", "rtol"]),
    ],
)
def test_bad_sample_arguments_name_the_argument(kwargs, exc, words):
    with pytest.raises(exc) as e:
        pfode.sample(BUILTIN, X_T, **kwargs)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize(
    "x_T,exc,words",
    [
        (np.zeros(4), ValueError, ["x_T", "(N, ...)"]),
        (np.zeros((4, 3)), ValueError, ["x_T", "(N, 2)"]),
        (np.full((4, 2), np.nan), ValueError, ["x_T", "finite"]),
        (np.zeros((4, 2), dtype=complex), TypeError, ["x_T", "complex"]),
        ("noise", TypeError, ["x_T"]),
        (np.zeros((0, 2)), ValueError, ["x_T", "N ≥ 1"]),
    ],
)
def test_bad_x_T_names_x_T(x_T, exc, words):
    with pytest.raises(exc) as e:
        pfode.sample(BUILTIN, x_T, steps=3)
    for w in words:
        assert w in str(e.value)


def test_bad_model_arguments():
    with pytest.raises(TypeError, match="func: expected a callable"):
        pfode.Model(3)
    with pytest.raises(ValueError, match="prediction: expected 'eps', 'x0' or 'v', got 'score'"):
        pfode.Model(eps_t, prediction="score")
    with pytest.raises(ValueError, match="time: expected 'index', 't' or 'sigma'"):
        pfode.Model(eps_t, time="step")
    with pytest.raises(ValueError, match="dtype: expected 'float64' or 'float32'"):
        pfode.Model(eps_t, dtype="int8")
    with pytest.raises(ValueError, match="shape"):
        pfode.Model(eps_t, shape=(0,))
    with pytest.raises(ValueError, match="unknown built-in model 'ring3d'"):
        pfode.Model.builtin("ring3d")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        pfode.Model.load("missing.json")
    with pytest.raises(ValueError, match="time: 'index' is the training index"):
        pfode.sample(pfode.Model(eps_t, time="index"), X_T, steps=3, schedule="vp-linear")
    with pytest.raises(ValueError, match=r"shape=\[3\]"):
        pfode.sample(pfode.Model(eps_t, shape=(3,)), X_T, steps=3)


def test_bad_reference_and_check_arguments():
    with pytest.raises(ValueError, match="rtol: expected a tolerance in"):
        pfode.reference(BUILTIN, X_T, rtol=2.0)
    with pytest.raises(ValueError, match="mode"):
        pfode.reference(BUILTIN, X_T, mode="fast")
    with pytest.raises(ValueError, match="steps: expected at least one"):
        pfode.check_ddim_euler(BUILTIN, X_T, steps=[])


def failing_at(k, make):
    """A ring2d model whose k-th call does `make(x)` instead of answering."""
    calls = {"n": 0}

    def fn(x, t):
        calls["n"] += 1
        if calls["n"] == k:
            return make(x)
        return eps_t(x, t)

    return fn


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda x: x[:, :1], ["shape [8, 1]", "expected [8, 2]"]),
        (lambda x: np.zeros(x.shape, dtype=np.int64), ["dtype int64", "floating point"]),
        (lambda x: np.full(x.shape, np.nan), ["returned NaN", "sample 0"]),
        (lambda x: np.full(x.shape, np.inf), ["returned inf"]),
        (lambda x: "eps", ["returned a str"]),
    ],
)
def test_a_bad_model_output_stops_the_run_naming_step_time_and_nfe(tmp_path, make, words):
    out = tmp_path / "x0.npy"
    with pytest.raises(pfode.ModelError) as e:
        pfode.sample(pfode.Model(failing_at(4, make)), X_T, solver="ddim", steps=10, out=str(out))
    msg = str(e.value)
    for w in words + ["step 4 of 10", "NFE 4", "t = 0.7"]:
        assert w in msg, msg
    assert list(tmp_path.iterdir()) == []


def test_a_raising_model_chains_its_exception_and_writes_nothing(tmp_path):
    def boom(x):
        raise ArithmeticError("the network blew up")

    out = tmp_path / "x0.npy"
    with pytest.raises(pfode.ModelError) as e:
        pfode.sample(pfode.Model(failing_at(7, boom)), X_T, solver="heun", steps=10, out=str(out))
    # heun's 7th evaluation is the first stage of step 4.
    assert "raised ArithmeticError at step 4 of 10" in str(e.value)
    assert "NFE 7" in str(e.value) and "the network blew up" in str(e.value)
    cause = e.value.__cause__
    assert isinstance(cause, ArithmeticError) and str(cause) == "the network blew up"
    # The traceback reaches into the callback's own frames.
    frames = []
    tb = cause.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "boom" in frames
    assert not out.exists() and not (tmp_path / "x0.json").exists()


def test_a_raising_model_in_the_reference_and_the_check_names_the_call():
    with pytest.raises(pfode.ModelError, match="raised ZeroDivisionError at a call") as e:
        pfode.reference(pfode.Model(failing_at(5, lambda x: 1 / 0)), X_T)
    assert isinstance(e.value.__cause__, ZeroDivisionError)
    with pytest.raises(pfode.ModelError, match="NFE 2"):
        pfode.check_ddim_euler(pfode.Model(failing_at(2, lambda x: x[:1])), X_T, steps=[3])


def test_ctrl_c_interrupts_a_run_and_writes_nothing(tmp_path):
    def interrupt(x):
        os.kill(os.getpid(), signal.SIGINT)
        return eps_t(x, 0.5)

    out = tmp_path / "x0.npy"
    with pytest.raises(KeyboardInterrupt):
        pfode.sample(pfode.Model(failing_at(3, interrupt)), X_T, solver="ddim", steps=50, out=str(out))
    assert list(tmp_path.iterdir()) == []


def test_a_keyboard_interrupt_raised_by_the_model_comes_through_as_itself():
    def stop(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pfode.sample(pfode.Model(failing_at(2, stop)), X_T, solver="ddim", steps=5)


def test_bad_sweep_arguments(tmp_path):
    spec = {"name": "s", "models": ["mine"], "solvers": [{"name": "ddim"}],
            "spacings": ["trailing"], "nfe": [5], "samples": 16, "metrics": ["error"]}
    with pytest.raises(ValueError, match="models\\['mine'\\]: a sweep draws its own x_T"):
        pfode.sweep(spec, models={"mine": pfode.Model(eps_t)}, out=tmp_path / "a")
    with pytest.raises(TypeError, match="models\\['mine'\\]: expected a pfode.Model"):
        pfode.sweep(spec, models={"mine": eps_t}, out=tmp_path / "b")
    with pytest.raises(ValueError, match="spec: .*unknown field `bogus`"):
        pfode.sweep({**spec, "bogus": 1}, out=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="nowhere.toml"):
        pfode.sweep(str(tmp_path / "nowhere.toml"))
    with pytest.raises(TypeError, match="spec: expected a path to a TOML spec or a dict"):
        pfode.sweep(3)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_interrupts_a_long_run_of_a_builtin_model(tmp_path):
    """SIGINT while pfode's own code runs (no Python in the loop) stops the run at its next
    model evaluation: KeyboardInterrupt, no output file."""
    import threading

    x_T = pfode.noise(200_000, 16, seed=0)
    out = tmp_path / "x0.npy"
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # A minute of work uninterrupted: 200 000 samples of mix16d, 999 Heun steps.
            pfode.sample(pfode.Model.builtin("mix16d"), x_T, solver="heun", steps=999,
                         out=str(out))
    finally:
        timer.cancel()
    assert list(tmp_path.iterdir()) == []
    # The next run is not interrupted by the old request.
    x0, info = pfode.sample(pfode.Model.builtin("mix16d"), x_T[:10], solver="ddim", steps=5)
    assert info["nfe"] == 5
