"""Makes the fixtures of the higher-order-solver issue (run once in a throwaway venv with
torch, diffusers, numpy and scipy; never committed):

  tests/fixtures/mix8d.json            an 8-D Gaussian mixture (numpy seed 8)
  tests/fixtures/scipy_reference.json  scipy DOP853 (rtol = atol = 1e-10) solutions of the
                                       probability-flow ODE for ring2d, sample by sample,
                                       with the per-sample wall time of 512 such solves
  tests/fixtures/diffusers_solvers.json  DDIM, DPM-Solver++(2M) (trailing and Karras) and
                                       UniPC from diffusers at NFE 5, 10 and 20 on ring2d and
                                       mix8d, from committed x_T

The scipy reference (and its timing) is remade only with --scipy.

The probability-flow ODE is integrated in y = x/a, sigma = s/a, where for a mixture
dy/dsigma = sigma * sum_k r_k (y - mu_k) / (c_k^2 + sigma^2), r_k the responsibilities of
the mixture with variances c_k^2 + sigma^2. Model evaluations for diffusers use the exact
noise prediction at the scheduler's integer timestep, as a trained model would.
"""
import json
import sys
import time
import numpy as np
import torch
import diffusers
import scipy
from scipy.integrate import solve_ivp
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

T = 1000
BETAS = np.linspace(1e-4, 0.02, T)
ALPHAS_CUMPROD = np.cumprod(1.0 - BETAS)


def ring2d():
    ang = 2 * np.pi * np.arange(8) / 8
    return {"weights": [0.125] * 8, "means": np.stack([4 * np.cos(ang), 4 * np.sin(ang)], 1).tolist(),
            "stds": [[0.3, 0.3]] * 8}


def mix8d():
    rng = np.random.RandomState(8)
    w = rng.uniform(0.5, 1.5, 6)
    w = w / w.sum()
    return {"weights": w.tolist(), "means": rng.uniform(-3, 3, (6, 8)).tolist(),
            "stds": rng.uniform(0.2, 1.0, (6, 8)).tolist()}


def eps_y(model, y, sigma):
    """dy/dsigma: the noise prediction in y-coordinates (VP-invariant)."""
    w, mu, c = np.array(model["weights"]), np.array(model["means"]), np.array(model["stds"])
    var = c * c + sigma * sigma
    diff = y[:, None, :] - mu[None]
    logits = np.log(w)[None] - 0.5 * np.sum(diff**2 / var[None] + np.log(2 * np.pi * var)[None], axis=2)
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return sigma * np.sum(r[:, :, None] * diff / var[None], axis=1)


def exact_eps(model, x, alpha_bar):
    a, s = np.sqrt(alpha_bar), np.sqrt(1 - alpha_bar)
    return eps_y(model, x / a, s / a)


def scipy_solve(model, x_t, sigma_start):
    out = []
    for x in x_t:
        y0 = x * np.sqrt(1 + sigma_start**2)  # y = x / a, a = 1/sqrt(1 + sigma^2)
        sol = solve_ivp(lambda s, y: eps_y(model, y[None], s)[0], (sigma_start, 0.0), y0,
                        method="DOP853", rtol=1e-10, atol=1e-10)
        out.append(sol.y[:, -1])
    return np.array(out)


def run_diffusers(model, x_t, make, n):
    sched = make()
    sched.set_timesteps(n)
    x = torch.tensor(x_t, dtype=torch.float64)
    nfe = 0
    for t in sched.timesteps:
        eps = torch.tensor(exact_eps(model, x.numpy(), ALPHAS_CUMPROD[int(t)]), dtype=torch.float64)
        nfe += 1
        x = sched.step(eps, t, x).prev_sample
    return x.numpy(), nfe, [int(t) for t in sched.timesteps]


def main():
    common = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    solvers = {
        "ddim-trailing": lambda: DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True,
                                               timestep_spacing="trailing"),
        "dpm-solver++2m-trailing": lambda: DPMSolverMultistepScheduler(
            **common, solver_order=2, algorithm_type="dpmsolver++", timestep_spacing="trailing",
            final_sigmas_type="zero"),
        "dpm-solver++2m-karras": lambda: DPMSolverMultistepScheduler(
            **common, solver_order=2, algorithm_type="dpmsolver++", use_karras_sigmas=True,
            timestep_spacing="trailing", final_sigmas_type="zero"),
        "unipc-trailing": lambda: UniPCMultistepScheduler(
            **common, solver_order=2, solver_type="bh2", timestep_spacing="trailing",
            final_sigmas_type="zero"),
    }
    models = {"ring2d": ring2d(), "mix8d": mix8d()}
    rng = np.random.RandomState(1)
    noise = {name: rng.standard_normal((64, len(m["means"][0]))) for name, m in models.items()}
    runs = []
    for name, m in models.items():
        for solver, make in solvers.items():
            for n in (5, 10, 20):
                x0, nfe, ts = run_diffusers(m, noise[name], make, n)
                runs.append({"model": name, "solver": solver, "nfe": nfe, "timesteps": ts, "x0": x0.tolist()})
    with open("tests/fixtures/diffusers_solvers.json", "w") as f:
        json.dump({"generator": "scripts/make_comparison_fixtures.py", "diffusers_version": diffusers.__version__,
                   "noise": {k: v.tolist() for k, v in noise.items()}, "runs": runs}, f)
    with open("tests/fixtures/mix8d.json", "w") as f:
        json.dump(models["mix8d"], f, indent=1)
    if "--scipy" in sys.argv:
        scipy_fixture(models)


def scipy_fixture(models):
    sigma_start = np.sqrt((1 - ALPHAS_CUMPROD[-1]) / ALPHAS_CUMPROD[-1])
    x_small = np.random.RandomState(2).standard_normal((16, 2))
    ref = scipy_solve(models["ring2d"], x_small, sigma_start)
    x_time = np.random.RandomState(3).standard_normal((512, 2))
    t0 = time.perf_counter()
    scipy_solve(models["ring2d"], x_time, sigma_start)
    per_sample = (time.perf_counter() - t0) / 512
    with open("tests/fixtures/scipy_reference.json", "w") as f:
        json.dump({"generator": "scripts/make_comparison_fixtures.py", "scipy_version": scipy.__version__,
                   "method": "solve_ivp DOP853, rtol = atol = 1e-10, per sample, sigma-coordinates",
                   "model": "ring2d", "t_start_index": T - 1, "sigma_start": sigma_start,
                   "x_t": x_small.tolist(), "x0": ref.tolist(), "seconds_per_sample_512": per_sample}, f, indent=1)
    print("scipy DOP853 per sample:", per_sample)


if __name__ == "__main__":
    main()
