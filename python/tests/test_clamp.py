"""clip_sample / thresholding as keyword arguments, on a NumPy model predicting eps or v,
against diffusers' DDIMScheduler, DPMSolverMultistep and UniPC (tests/fixtures/diffusers_clamp.json,
made by scripts/make_clamp_fixtures.py with float64 alphas_cumprod)."""

import json
from pathlib import Path

import numpy as np
import pytest

import pfode

FIXTURE = json.loads((Path(__file__).resolve().parents[2] / "tests" / "fixtures" /
                      "diffusers_clamp.json").read_text())
W, MU, C = (np.array(FIXTURE["model"][k]) for k in ("weights", "means", "stds"))
SCHEDULE = pfode.Schedule("linear")


def eps_of(x, a, s):
    var = a * a * C * C + s * s
    diff = x[:, None, :] - a * MU[None]
    logits = np.log(W)[None] - 0.5 * np.sum(diff**2 / var[None] + np.log(2 * np.pi * var)[None], axis=2)
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return s * np.sum(r[:, :, None] * diff / var[None], axis=1)


def model(prediction):
    def fn(x, index):
        t = (index + 1) / 1000
        a, s = SCHEDULE.alpha(t), SCHEDULE.sigma(t)
        e = eps_of(x, a, s)
        return e if prediction == "eps" else a * e - s * (x - s * e) / a

    return pfode.Model(fn, prediction=prediction, time="index")


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: f"{c['solver']}-{c['prediction']}-{sorted(c['options'])}")
def test_clamped_sampling_matches_diffusers(case):
    x_T = np.array(FIXTURE["noise"])
    ours, info = pfode.sample(model(case["prediction"]), x_T, solver=case["solver"],
                              steps=case["steps"], spacing=case["spacing"], **case["options"])
    tolerance = 1e-9 if case["solver"] == "ddim" else 1e-6  # their float32 sigma/lambda tables
    assert np.max(np.abs(ours - np.array(case["x0"]))) <= tolerance
    assert np.max(np.abs(ours - np.array(case["x0_unclamped"]))) > 0.5
    for k, v in case["options"].items():
        assert info["options"][k] == v


def test_clamp_errors_name_the_option():
    x_T = np.array(FIXTURE["noise"])
    with pytest.raises(ValueError, match="thresholding: give `clip_sample` or `thresholding`, not both"):
        pfode.sample(model("eps"), x_T, solver="ddim", steps=5, clip_sample=True, thresholding=True)
    with pytest.raises(ValueError, match="solver 'heun' does not take `clip_sample`"):
        pfode.sample(model("eps"), x_T, solver="heun", steps=5, clip_sample=True)
