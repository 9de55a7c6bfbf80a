"""Makes tests/fixtures/diffusers_clamp.json: diffusers' schedulers with clip_sample and
dynamic thresholding on an exact Gaussian mixture whose data predictions leave [-1, 1]
(so the clamps act), for tests/clamp_parity.rs and python/tests/test_clamp.py.

Run once in a throwaway venv (never committed):
    python3 -m venv /tmp/dv && /tmp/dv/bin/pip install torch diffusers numpy
    /tmp/dv/bin/python scripts/make_clamp_fixtures.py

Each scheduler is used as shipped, except that its alphas_cumprod table is recomputed in
float64 after construction (before set_timesteps), so the comparison tests the clamping
and stepping logic rather than float32 rounding. The model is the exact noise prediction
of the mixture in NumPy; for v-prediction cases the scheduler is given v = a eps - s x0.
"""
import json

import numpy as np
import torch
import diffusers
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

T = 1000
MODEL = {
    "weights": [0.5, 0.3, 0.2],
    "means": [[2.0, 0.0, -1.0], [-1.5, 1.0, 0.5], [0.0, -2.0, 1.5]],
    "stds": [[0.4, 0.6, 0.3], [0.5, 0.5, 0.5], [0.8, 0.3, 0.6]],
}


def exact_eps(x, alpha_bar):
    w, mu, c = (np.array(MODEL[k]) for k in ("weights", "means", "stds"))
    a, s = np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)
    var = a * a * c * c + s * s
    diff = x[:, None, :] - a * mu[None]
    logits = np.log(w)[None] - 0.5 * np.sum(diff**2 / var[None] + np.log(2 * np.pi * var)[None], axis=2)
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return s * np.sum(r[:, :, None] * diff / var[None], axis=1)


def float64_table(sched):
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    sched.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    if hasattr(sched, "final_alpha_cumprod"):
        sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(sched, "alpha_t"):
        sched.alpha_t = torch.sqrt(sched.alphas_cumprod)
        sched.sigma_t = torch.sqrt(1 - sched.alphas_cumprod)
        sched.lambda_t = torch.log(sched.alpha_t) - torch.log(sched.sigma_t)
        sched.sigmas = ((1 - sched.alphas_cumprod) / sched.alphas_cumprod) ** 0.5


def run(kind, spacing, steps, prediction, options, x_t):
    common = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction],
                  timestep_spacing=spacing)
    sched_opts = {k: v for k, v in options.items() if k != "use_clipped_model_output"}
    if kind == "ddim":
        sched = DDIMScheduler(**common, set_alpha_to_one=True, steps_offset=0,
                              clip_sample=sched_opts.pop("clip_sample", False), **sched_opts)
    elif kind == "dpm-solver++2m":
        sched = DPMSolverMultistepScheduler(**common, solver_order=2, algorithm_type="dpmsolver++",
                                            final_sigmas_type="zero", **sched_opts)
    else:
        sched = UniPCMultistepScheduler(**common, solver_order=2, solver_type="bh2",
                                        final_sigmas_type="zero", **sched_opts)
    float64_table(sched)
    sched.set_timesteps(steps)
    x = torch.tensor(x_t, dtype=torch.float64)
    for t in sched.timesteps:
        ab = float(sched.alphas_cumprod[int(t)])
        eps = exact_eps(x.numpy(), ab)
        out = eps
        if prediction == "v":
            a, s = np.sqrt(ab), np.sqrt(1 - ab)
            out = a * eps - s * (x.numpy() - s * eps) / a
        kw = {}
        if kind == "ddim":
            kw = {"eta": 0.0, "use_clipped_model_output": options.get("use_clipped_model_output", False)}
        # Shaped [N, 1, 3], as thresholding wants images [N, C, ...]; its quantile is over
        # each sample's 3 elements.
        x = sched.step(torch.tensor(out, dtype=torch.float64).reshape(-1, 1, 3), t,
                       x.reshape(-1, 1, 3), **kw).prev_sample.reshape(-1, 3)
    return [int(t) for t in sched.timesteps], x.numpy()


def main():
    rng = np.random.RandomState(7)
    x_t = rng.standard_normal((16, 3))
    cases = []
    for kind, spacing, steps, prediction, options in [
        ("ddim", "trailing", 10, "eps", {"clip_sample": True}),
        ("ddim", "leading", 20, "eps", {"clip_sample": True, "clip_sample_range": 1.5}),
        ("ddim", "trailing", 10, "v", {"clip_sample": True}),
        ("ddim", "trailing", 10, "eps", {"clip_sample": True, "use_clipped_model_output": True}),
        ("ddim", "trailing", 10, "eps", {"thresholding": True, "dynamic_thresholding_ratio": 0.9,
                                        "sample_max_value": 1.5}),
        ("ddim", "trailing", 10, "v", {"thresholding": True, "dynamic_thresholding_ratio": 0.9,
                                      "sample_max_value": 1.5}),
        ("dpm-solver++2m", "trailing", 10, "eps", {"thresholding": True,
                                                  "dynamic_thresholding_ratio": 0.9,
                                                  "sample_max_value": 1.5}),
        ("unipc", "trailing", 10, "eps", {"thresholding": True, "dynamic_thresholding_ratio": 0.9,
                                         "sample_max_value": 1.5}),
    ]:
        ts, x0 = run(kind, spacing, steps, prediction, options, x_t)
        _, plain = run(kind, spacing, steps, prediction, {}, x_t)
        cases.append({"solver": kind, "spacing": spacing, "steps": steps, "prediction": prediction,
                      "options": options, "timesteps": ts, "x0": x0.tolist(),
                      "x0_unclamped": plain.tolist()})
    out = {
        "generator": "scripts/make_clamp_fixtures.py",
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
        "num_train_timesteps": T,
        "model": MODEL,
        "noise": x_t.tolist(),
        "cases": cases,
    }
    with open("tests/fixtures/diffusers_clamp.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
