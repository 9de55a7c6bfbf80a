"""Makes tests/fixtures/diffusers_deis_pndm.json: reference outputs of Hugging Face diffusers'
DEISMultistepScheduler and PNDMScheduler on a small exact Gaussian-mixture problem.

Run once in a throwaway venv (never committed):
    python3 -m venv /tmp/dv && /tmp/dv/bin/pip install torch diffusers numpy
    /tmp/dv/bin/python scripts/make_deis_pndm_fixtures.py

Both schedulers are used as shipped, except that their tables are upcast to float64 after
construction (alphas_cumprod, and DEIS's sigmas after set_timesteps), so that the comparison
tests the stepping logic rather than float32 rounding. The model is the exact noise
prediction of the mixture, written here in numpy, evaluated at the scheduler's integer
timestep with that timestep's alpha_bar.

DEIS steps from each sigma to the next one of its list, which ends at the sigma of training
index 0; the fixture records the timesteps so the test can build the same grid. PNDM steps
to t - T//n, the next grid point for "leading" and for "trailing" when n divides T; with
set_alpha_to_one=True its last step ends on clean data.
"""
import json
import numpy as np
import torch
import diffusers
from diffusers import DEISMultistepScheduler, PNDMScheduler

T = 1000
MODEL = {
    "weights": [0.5, 0.3, 0.2],
    "means": [[2.0, 0.0, -1.0], [-1.5, 1.0, 0.5], [0.0, -2.0, 1.5]],
    "stds": [[0.4, 0.6, 0.3], [0.5, 0.5, 0.5], [0.8, 0.3, 0.6]],
}


def exact_eps(x, alpha_bar):
    """Noise prediction of the mixture under x_t = a x_0 + s eps (log-sum-exp responsibilities)."""
    w = np.array(MODEL["weights"])
    mu = np.array(MODEL["means"])
    c = np.array(MODEL["stds"])
    a, s = np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)
    var = a * a * c * c + s * s
    diff = x[:, None, :] - a * mu[None]
    logits = np.log(w)[None] - 0.5 * np.sum(diff**2 / var[None] + np.log(2 * np.pi * var)[None], axis=2)
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return s * np.sum(r[:, :, None] * diff / var[None], axis=1)


def alphas_cumprod64():
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def run_deis(x_t, order, spacing, n):
    s = DEISMultistepScheduler(
        num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        solver_order=order, lower_order_final=True, timestep_spacing=spacing,
    )
    ac = alphas_cumprod64()
    s.alphas_cumprod = ac
    s.set_timesteps(n)
    sig = ((1 - ac) / ac) ** 0.5
    ts = [int(t) for t in s.timesteps]
    s.sigmas = torch.cat([sig[ts], sig[:1]])
    x = torch.tensor(x_t, dtype=torch.float64)
    for t in s.timesteps:
        eps = torch.tensor(exact_eps(x.numpy(), float(ac[int(t)])), dtype=torch.float64)
        x = s.step(eps, t, x).prev_sample
    return ts, x.numpy()


def run_pndm(x_t, spacing, n, skip_prk):
    s = PNDMScheduler(
        num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        skip_prk_steps=skip_prk, set_alpha_to_one=True, steps_offset=0, timestep_spacing=spacing,
    )
    ac = alphas_cumprod64()
    s.alphas_cumprod = ac
    s.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    s.set_timesteps(n)
    x = torch.tensor(x_t, dtype=torch.float64)
    calls = 0
    for t in s.timesteps:
        eps = torch.tensor(exact_eps(x.numpy(), float(ac[int(t)])), dtype=torch.float64)
        calls += 1
        x = s.step(eps, t, x).prev_sample
    return [int(t) for t in s.timesteps], calls, x.numpy()


def main():
    x_t = np.random.RandomState(0).standard_normal((8, 3))
    deis = []
    for order in [2, 3]:
        for spacing, n in [("trailing", 10), ("trailing", 25), ("linspace", 20), ("leading", 12)]:
            ts, x0 = run_deis(x_t, order, spacing, n)
            deis.append({"order": order, "spacing": spacing, "steps": n, "timesteps": ts,
                         "x0_float64_table": x0.tolist()})
    pndm = []
    for skip in [True, False]:
        for spacing, n in [("leading", 10), ("leading", 50), ("trailing", 20), ("trailing", 40)]:
            ts, calls, x0 = run_pndm(x_t, spacing, n, skip)
            pndm.append({"skip_prk_steps": skip, "spacing": spacing, "steps": n, "timesteps": ts,
                         "model_calls": calls, "x0_float64_table": x0.tolist()})
    out = {
        "generator": "scripts/make_deis_pndm_fixtures.py",
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
        "num_train_timesteps": T,
        "model": MODEL,
        "noise": x_t.tolist(),
        "deis": deis,
        "pndm": pndm,
    }
    with open("tests/fixtures/diffusers_deis_pndm.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
