"""pfode on a real network: a small diffusers UNet2DModel (random weights, seeded), sampled
by pfode and by diffusers' own scheduler loops on the same weights and noise.

Conventions aligned: diffusers' linear betas (1e-4 .. 0.02, T = 1000), clip_sample off,
set_alpha_to_one / final_sigmas_type="zero" (the last step lands on clean data), and
pfode's "trailing"/"leading" spacings, whose grid points are diffusers' timesteps t with
time t/T... (pfode's continuous time (t + 1)/T; the network sees t itself, time="index").
diffusers keeps its state in float32, pfode in float64: the agreement is float32's.
"""

import os

import numpy as np
import pytest

import pfode

if os.environ.get("PFODE_REQUIRE_TORCH") == "1":
    import diffusers  # noqa: F401  (fail, not skip, where CI installed them)
    import torch
else:
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")

import pfode.torch as pt  # noqa: E402

torch.set_num_threads(2)


class NearGaussian(torch.nn.Module):
    """A random-weight UNet2DModel as a correction to the exact noise prediction of
    standard-normal data, eps = s x: its samples stay O(1), so an absolute tolerance means
    what it says (a bare random UNet's samples reach |x| ~ 300, where float32 alone is 1e-5).
    Called at diffusers' integer timesteps only (trailing and leading grids)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.unet = diffusers.UNet2DModel(
            sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), norm_num_groups=4,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
        )
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        self.register_buffer("s", torch.sqrt(1 - torch.cumprod(1 - betas, 0)).float())

    def forward(self, x, t):
        t = torch.as_tensor(t).reshape(-1)
        s = self.s[t.round().long()].reshape(-1, 1, 1, 1)
        return s * x + 0.1 * self.unet(x, t).sample


@pytest.fixture(scope="module")
def unet():
    return NearGaussian().eval()


X_T = pfode.noise(4, (1, 8, 8), seed=0)


def diffusers_loop(net, scheduler, steps):
    scheduler.set_timesteps(steps)
    x = torch.from_numpy(X_T.astype(np.float32))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(net(x, t), t, x).prev_sample
    return x.double().numpy()


COMMON = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


@pytest.mark.parametrize("spacing,steps", [("trailing", 10), ("trailing", 25), ("leading", 10), ("leading", 20)])
def test_ddim_on_a_unet_equals_diffusers_ddim_scheduler(unet, spacing, steps):
    sched = diffusers.DDIMScheduler(**COMMON, clip_sample=False, set_alpha_to_one=True,
                                    steps_offset=0, timestep_spacing=spacing)
    theirs = diffusers_loop(unet, sched, steps)
    model = pt.model(unet, prediction="eps", time="index")
    ours, info = pfode.sample(model, X_T, solver="ddim", steps=steps, spacing=spacing)
    assert info["nfe"] == steps
    # The network saw diffusers' integer timesteps.
    assert [round(v) for v in info["grid"]["model_time"][:-1]] == [int(t) for t in sched.timesteps]
    assert np.max(np.abs(ours - theirs)) <= 1e-5
    assert 0.5 < np.max(np.abs(theirs)) < 20


@pytest.mark.parametrize("steps", [8, 20])
def test_dpm_solver_pp_2m_and_unipc_on_a_unet_agree_with_diffusers(unet, steps):
    model = pt.model(unet, prediction="eps", time="index")
    dpm = diffusers.DPMSolverMultistepScheduler(
        **COMMON, solver_order=2, algorithm_type="dpmsolver++", timestep_spacing="trailing",
        final_sigmas_type="zero")
    ours, _ = pfode.sample(model, X_T, solver="dpm-solver++2m", steps=steps, spacing="trailing")
    assert np.max(np.abs(ours - diffusers_loop(unet, dpm, steps))) <= 1e-5
    uni = diffusers.UniPCMultistepScheduler(
        **COMMON, solver_order=2, solver_type="bh2", timestep_spacing="trailing",
        final_sigmas_type="zero")
    ours, _ = pfode.sample(model, X_T, solver="unipc", steps=steps, spacing="trailing")
    assert np.max(np.abs(ours - diffusers_loop(unet, uni, steps))) <= 1e-5


def test_torch_adapter_runs_float64_modules_and_unwraps_tuples():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x, t):
            assert x.dtype == torch.float64 and t.dtype == torch.float64
            return (self.lin(x) * 0 + 0.1 * x, "extra")

    m = pt.model(Net().double(), prediction="eps", time="t", time_array=False)
    x_T = pfode.noise(3, 2, seed=1)
    ours, _ = pfode.sample(m, x_T, solver="ddim", steps=4)
    numpy_model = pfode.Model(lambda x, t: 0.1 * x, time="t")
    theirs, _ = pfode.sample(numpy_model, x_T, solver="ddim", steps=4)
    assert np.max(np.abs(ours - theirs)) <= 1e-14


def test_a_module_that_raises_is_chained():
    class Bad(torch.nn.Module):
        def forward(self, x, t):
            raise RuntimeError("CUDA out of memory (simulated)")

    with pytest.raises(pfode.ModelError) as e:
        pfode.sample(pt.model(Bad(), dtype=torch.float32, time="t"), X_T, solver="ddim", steps=3)
    assert "step 1 of 3" in str(e.value) and isinstance(e.value.__cause__, RuntimeError)
