"""Makes tests/fixtures/diffusers_ddim.json: reference outputs of Hugging Face diffusers'
DDIMScheduler on small exact Gaussian-mixture problems.

Run once in a throwaway venv (never committed):
    python3 -m venv /tmp/dv && /tmp/dv/bin/pip install torch diffusers numpy
    /tmp/dv/bin/python scripts/make_diffusers_fixtures.py

The scheduler is used as shipped (clip_sample=False, set_alpha_to_one=True, steps_offset=0),
except that its alphas_cumprod table is recomputed in float64 after construction so the
comparison tests the stepping logic rather than float32 rounding; the float32 outputs are
recorded too. The model is the exact noise prediction of the mixture, written here in numpy.
"""
import json
import numpy as np
import torch
import diffusers
from diffusers import DDIMScheduler

T = 1000

MODELS = {
    "mixture3d": {
        "weights": [0.5, 0.3, 0.2],
        "means": [[2.0, 0.0, -1.0], [-1.5, 1.0, 0.5], [0.0, -2.0, 1.5]],
        "stds": [[0.4, 0.6, 0.3], [0.5, 0.5, 0.5], [0.8, 0.3, 0.6]],
    },
    "gaussian2d": {"weights": [1.0], "means": [[1.0, -0.5]], "stds": [[0.5, 1.5]]},
}


def exact_eps(model, x, alpha_bar):
    """Noise prediction of the mixture under x_t = a x_0 + s eps (log-sum-exp responsibilities)."""
    w = np.array(model["weights"])
    mu = np.array(model["means"])
    c = np.array(model["stds"])
    a, s = np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)
    var = a * a * c * c + s * s  # [K, D]
    diff = x[:, None, :] - a * mu[None]  # [N, K, D]
    logits = np.log(w)[None] - 0.5 * np.sum(diff**2 / var[None] + np.log(2 * np.pi * var)[None], axis=2)
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return s * np.sum(r[:, :, None] * diff / var[None], axis=1)


def run(model, x_t, spacing, n, float64):
    sched = DDIMScheduler(
        num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        clip_sample=False, set_alpha_to_one=True, steps_offset=0, timestep_spacing=spacing,
    )
    if float64:
        betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
        sched.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    sched.set_timesteps(n)
    dtype = torch.float64 if float64 else torch.float32
    x = torch.tensor(x_t, dtype=dtype)
    for t in sched.timesteps:
        ab = float(sched.alphas_cumprod[int(t)])
        eps = torch.tensor(exact_eps(model, x.double().numpy(), ab), dtype=dtype)
        x = sched.step(eps, t, x, eta=0.0).prev_sample
    return [int(t) for t in sched.timesteps], x.double().numpy()


def main():
    rng = np.random.RandomState(0)
    noise = {name: rng.standard_normal((8, len(m["means"][0]))) for name, m in MODELS.items()}
    cases = []
    # parity: diffusers steps to t - T//n, which is the next grid point for these.
    for model, spacing, n, parity in [
        ("mixture3d", "trailing", 10, True),
        ("mixture3d", "trailing", 50, True),
        ("mixture3d", "leading", 50, True),
        ("mixture3d", "linspace", 10, False),
        ("mixture3d", "trailing", 7, False),
        ("gaussian2d", "linspace", 10, False),
        ("gaussian2d", "trailing", 7, False),
        ("gaussian2d", "linspace", 400, False),
        ("gaussian2d", "trailing", 300, False),
    ]:
        ts, out64 = run(MODELS[model], noise[model], spacing, n, True)
        _, out32 = run(MODELS[model], noise[model], spacing, n, False)
        cases.append({
            "model": model, "spacing": spacing, "steps": n, "parity": parity,
            "timesteps": ts, "x0_float64_table": out64.tolist(), "x0_float32": out32.tolist(),
        })
    schedules = {}
    for name, kw in [
        ("linear", dict(beta_start=1e-4, beta_end=0.02, beta_schedule="linear")),
        ("scaled_linear", dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")),
        ("squaredcos_cap_v2", dict(beta_schedule="squaredcos_cap_v2")),
    ]:
        s = DDIMScheduler(num_train_timesteps=T, **kw)
        idx = [0, 1, 10, 100, 500, 900, 999]
        schedules[name] = {"index": idx, "alphas_cumprod": [float(s.alphas_cumprod[i]) for i in idx]}
    out = {
        "generator": "scripts/make_diffusers_fixtures.py",
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
        "num_train_timesteps": T,
        "models": MODELS,
        "noise": {k: v.tolist() for k, v in noise.items()},
        "cases": cases,
        "schedules_float32": schedules,
    }
    with open("tests/fixtures/diffusers_ddim.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
