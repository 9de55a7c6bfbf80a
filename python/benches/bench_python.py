"""What pfode costs around a PyTorch model, and pfode's samplers against diffusers' loops.

The model is the reference MLP of benches/pytorch_mlp.py ([x (D = 2), 32-d sinusoidal time
embedding] -> 3 x Linear(256) + SiLU -> Linear(2), float32, batch 4096, 2 threads,
no_grad), wrapped by pfode.torch.model. Reports, as medians of --repeats runs:

* the per-NFE cost pfode adds around the callback: (the wall time of pfode's DDIM, 50 steps,
  minus the time spent inside the callable) / NFE, as a share of one forward, measured
  within the same run so the machine's drift cancels;
* the wall time of 50 DDIM steps and 20 UniPC steps through pfode and through diffusers'
  DDIMScheduler / UniPCMultistepScheduler loops (trailing spacing) on the same network.

    target/python-venv/bin/python python/benches/bench_python.py   # after scripts/test.sh with PFODE_TORCH=1
"""

import argparse
import math
import time

import numpy as np
import torch
import diffusers

import pfode
import pfode.torch

D, W, B, T = 2, 256, 4096, 1000


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(D + 32, W), torch.nn.SiLU(),
            torch.nn.Linear(W, W), torch.nn.SiLU(),
            torch.nn.Linear(W, W), torch.nn.SiLU(),
            torch.nn.Linear(W, D),
        )
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(16) / 16))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        emb = torch.cat([torch.sin(t * self.freqs), torch.cos(t * self.freqs)], dim=1)
        return self.net(torch.cat([x, emb], dim=1))


def median_time(f, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def diffusers_loop(net, scheduler, steps, x_T):
    scheduler.set_timesteps(steps)
    x = torch.from_numpy(x_T.astype(np.float32))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(net(x, t.reshape(1).expand(B)), t, x).prev_sample
    return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = Mlp().eval()
    model = pfode.torch.model(net, prediction="eps", time="index")
    x_T = pfode.noise(B, D, seed=0)
    call, _ = pfode.torch.as_callable(net)
    inside = []

    def timed(x, t):
        t0 = time.perf_counter()
        out = call(x, t)
        inside.append(time.perf_counter() - t0)
        return out

    timed_model = pfode.Model(timed, prediction="eps", time="index", dtype="float32",
                              time_array=True)
    steps = 50
    overheads, forwards = [], []
    for r in range(args.repeats + 2):
        inside.clear()
        t0 = time.perf_counter()
        _, info = pfode.sample(timed_model, x_T, solver="ddim", steps=steps, spacing="trailing")
        wall = time.perf_counter() - t0
        if r >= 2:  # warm-up
            overheads.append((wall - sum(inside)) / info["nfe"])
            forwards.append(sum(inside) / info["nfe"])
    added, forward = np.median(overheads), np.median(forwards)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, batch {B}, 2 threads")
    print(f"one forward through the callable: {forward * 1e3:.3f} ms (median over runs)")
    print(f"pfode's own cost per NFE (wall minus time inside the callable), DDIM {steps} steps: "
          f"{added * 1e3:.3f} ms = {100 * added / forward:.2f} % of a forward")

    common = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  timestep_spacing="trailing")
    for name, steps, make in [
        ("ddim", 50, lambda: diffusers.DDIMScheduler(**common, clip_sample=False,
                                                     set_alpha_to_one=True, steps_offset=0)),
        ("unipc", 20, lambda: diffusers.UniPCMultistepScheduler(
            **common, solver_order=2, solver_type="bh2", final_sigmas_type="zero")),
    ]:
        # Interleaved, so the machine's drift falls on both alike.
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(median_time(lambda: pfode.sample(model, x_T, solver=name, steps=steps,
                                                         spacing="trailing"), 1))
            theirs.append(median_time(lambda: diffusers_loop(net, make(), steps, x_T), 1))
        t_ours, t_theirs = np.median(ours), np.median(theirs)
        print(f"{name} {steps} steps: pfode {t_ours * 1e3:.1f} ms, diffusers {t_theirs * 1e3:.1f} ms "
              f"-> {t_ours / t_theirs:.3f}x (medians of {args.repeats}, interleaved)")


if __name__ == "__main__":
    main()
