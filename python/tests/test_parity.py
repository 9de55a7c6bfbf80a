"""A NumPy model gives what the built-in model gives, for every solver and convention."""

import numpy as np
import pytest

import pfode
from mixture import T, eps_at, eps_index, eps_sigma, eps_t

BUILTIN = pfode.Model.builtin("ring2d")
X_T = pfode.noise(64, 2, seed=3)
SOLVERS = [s["name"] for s in pfode.solvers()]


def callback_model(**kw):
    return pfode.Model(eps_t, prediction="eps", time="t", defined_at_clean=True, **kw)


def test_every_registered_solver_is_listed():
    assert len(SOLVERS) == 20 and "ddim" in SOLVERS and "dopri5" in SOLVERS


@pytest.mark.parametrize("solver", SOLVERS)
def test_numpy_ring2d_equals_builtin_for_every_solver(solver):
    adaptive = next(s for s in pfode.solvers() if s["name"] == solver)["adaptive"]
    # dopri5 picks its step sizes from error estimates, which carries the two
    # implementations' round-off into h: at rtol 1e-6 that reaches 4e-12, at 1e-8 1e-14.
    kw = {"steps": 1, "rtol": 1e-8, "atol": 1e-8} if adaptive else {"steps": 12}
    ours, info = pfode.sample(callback_model(), X_T, solver=solver, seed=5, **kw)
    theirs, builtin_info = pfode.sample(BUILTIN, X_T, solver=solver, seed=5, **kw)
    assert ours.shape == (64, 2) and ours.dtype == np.float64
    assert np.max(np.abs(ours - theirs)) <= 1e-12
    # The NFE is counted on the model: the callback's own calls, as the built-in's.
    assert info["nfe"] == builtin_info["nfe"] > 0
    assert info["grid"]["t"] == builtin_info["grid"]["t"]


def test_check_ddim_euler_on_a_numpy_model_is_at_round_off():
    table = pfode.check_ddim_euler(callback_model(), X_T, steps=[5, 20])
    worst = max(max(table["ddim_vs_euler_sigma"]), max(table["ddim_vs_dpm_solver_1"]))
    assert worst <= 1e-11
    # Euler in t is a different first-order method: far from DDIM at 5 steps.
    assert max(table["ddim_vs_euler_t"]) > 1e-3
    assert len(table["spacing"]) == 5 * 2


def x0_model_t(x, t):
    a, s = pfode.Schedule("linear").alpha(t), pfode.Schedule("linear").sigma(t)
    return (x - s * eps_at(x, a, s)) / a


def v_model_t(x, t):
    a, s = pfode.Schedule("linear").alpha(t), pfode.Schedule("linear").sigma(t)
    e = eps_at(x, a, s)
    return a * e - s * (x - s * e) / a


CONVENTIONS = {
    ("eps", "t"): eps_t,
    ("eps", "index"): eps_index,
    ("eps", "sigma"): eps_sigma,
    ("x0", "t"): x0_model_t,
    ("v", "t"): v_model_t,
    ("x0", "index"): lambda x, i: x0_model_t(x, (i + 1) / T),
    ("v", "sigma"): lambda x, sg: v_model_t(x / np.sqrt(1 + sg * sg), _t_for_sigma(sg)),
}


def _t_for_sigma(sigma):
    from mixture import t_of_sigma
    return t_of_sigma(sigma)


@pytest.mark.parametrize("prediction,time", sorted(CONVENTIONS))
@pytest.mark.parametrize("solver", ["ddim", "dpm-solver++2m", "unipc", "heun"])
def test_each_time_and_prediction_convention_gives_the_same_samples(prediction, time, solver):
    model = pfode.Model(CONVENTIONS[(prediction, time)], prediction=prediction, time=time)
    reference = pfode.Model(eps_t, prediction="eps", time="t")
    ours, _ = pfode.sample(model, X_T, solver=solver, steps=10)
    theirs, _ = pfode.sample(reference, X_T, solver=solver, steps=10)
    assert np.max(np.abs(ours - theirs)) <= 1e-10


def test_time_array_passes_one_time_per_sample():
    seen = []

    def fn(x, t):
        seen.append(np.asarray(t).shape)
        return eps_t(x, float(t[0]))

    pfode.sample(pfode.Model(fn, time="t", time_array=True), X_T, solver="ddim", steps=3)
    assert seen == [(64,)] * 3


def test_float32_models_see_float32_and_agree_to_float32_round_off():
    dtypes = []

    def fn(x, t):
        dtypes.append(x.dtype)
        return eps_t(x.astype(np.float64), t).astype(np.float32)

    ours, _ = pfode.sample(pfode.Model(fn, dtype="float32"), X_T, solver="ddim", steps=10)
    theirs, _ = pfode.sample(pfode.Model(eps_t), X_T, solver="ddim", steps=10)
    assert set(dtypes) == {np.dtype(np.float32)}
    assert 0 < np.max(np.abs(ours - theirs)) <= 1e-4


def test_images_keep_their_shape():
    shape = (3, 4, 4)

    def fn(x, t):
        assert x.shape[1:] == shape
        return 0.1 * x

    x_T = pfode.noise(5, shape, seed=1)
    x0, info = pfode.sample(pfode.Model(fn), x_T, solver="unipc", nfe=6)
    assert x0.shape == (5, 3, 4, 4) and info["shape"] == [3, 4, 4] and info["nfe"] == 6
    # eps = 0.1 x is linear: DDIM has a closed form per step, checked against NumPy.
    x0d, info = pfode.sample(pfode.Model(fn), x_T, solver="ddim", steps=4)
    x = x_T.copy()
    sched = pfode.Schedule("linear")
    ts = info["grid"]["t"]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        a0, s0, a1, s1 = sched.alpha(t0), sched.sigma(t0), sched.alpha(t1), sched.sigma(t1)
        e = 0.1 * x
        x = a1 * (x - s0 * e) / a0 + s1 * e
    assert np.max(np.abs(x - x0d)) <= 1e-12


def test_nfe_budget_and_explicit_grids():
    model = pfode.Model(eps_t)
    grid = pfode.grid(nfe=10, solver="heun", spacing="logsnr")
    assert len(grid) - 1 == pfode.sample(model, X_T, solver="heun", nfe=10, spacing="logsnr")[1]["steps"]
    x_a, _ = pfode.sample(model, X_T, solver="heun", nfe=10, spacing="logsnr")
    x_b, info = pfode.sample(model, X_T, solver="heun", spacing=grid)
    assert np.array_equal(x_a, x_b) and info["spacing"] == "explicit"


def test_reference_of_a_numpy_model_matches_the_builtin_reference():
    ours, info = pfode.reference(pfode.Model(eps_t, defined_at_clean=True), X_T[:16], rtol=1e-9, atol=1e-9)
    theirs, _ = pfode.reference(BUILTIN, X_T[:16], rtol=1e-9, atol=1e-9)
    assert np.max(np.abs(ours - theirs)) <= 1e-10
    assert info["nfe"] > 20
    # UniPC converges onto it: 4x the steps, over 20x less RMS error.
    rms = [np.sqrt(np.mean((pfode.sample(BUILTIN, X_T[:16], solver="unipc", steps=n,
                                         spacing="logsnr")[0] - theirs) ** 2))
           for n in (25, 100)]
    assert rms[1] < rms[0] / 20


def test_out_writes_samples_and_sidecar(tmp_path):
    out = tmp_path / "x0.npy"
    x0, info = pfode.sample(BUILTIN, X_T, solver="ddim", steps=5, out=str(out))
    assert np.array_equal(np.load(out), x0)
    import json
    side = json.loads((tmp_path / "x0.json").read_text())
    assert side["nfe"] == info["nfe"] == 5 and side["solver"] == "ddim"


def test_solver_options_are_keyword_arguments():
    stochastic, _ = pfode.sample(BUILTIN, X_T, solver="ddim", steps=10, eta=1.0, seed=1)
    again, _ = pfode.sample(BUILTIN, X_T, solver="ddim", steps=10, eta=1.0, seed=1)
    other, _ = pfode.sample(BUILTIN, X_T, solver="ddim", steps=10, eta=1.0, seed=2)
    plain, info = pfode.sample(BUILTIN, X_T, solver="ddim", steps=10)
    assert np.array_equal(stochastic, again)
    assert np.max(np.abs(stochastic - other)) > 1e-3
    assert np.max(np.abs(stochastic - plain)) > 1e-3
    assert info["options"]["eta"] == 0.0
