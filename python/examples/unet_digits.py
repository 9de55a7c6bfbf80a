"""A real network through pfode: a small diffusers UNet2DModel trained for a few hundred
steps on pfode's 8x8 digits, then

1. sampled by pfode's DDIM, DPM-Solver++(2M) and UniPC and by diffusers' own scheduler
   loops on the same weights and noise (trailing spacing), printing their agreement;
2. checked: DDIM = Euler in sigma on this network (pfode.check_ddim_euler);
3. swept: error to the DOP853 reference of this network's own ODE and digits feature FD
   against NFE, for four solvers and two spacings, with plots.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install ./python torch diffusers
    /tmp/venv/bin/python python/examples/unet_digits.py --out results/unet_digits

Takes about 7 minutes on 2 CPU cores (training 1.5, the sweep 4, of which the DOP853
reference of the network's ODE at rtol 1e-5 is most); --weights saves or reuses the training.
"""

import argparse
import time

import numpy as np
import torch
import diffusers

import pfode
import pfode.torch

T = 1000


def make_unet():
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(32, 64), norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )


def train(steps, seed):
    """Noise-prediction training on the digits (linear betas, T = 1000), seeded."""
    torch.manual_seed(seed)
    images, _ = pfode.digits("train")
    data = torch.from_numpy(images.astype(np.float32))
    unet = make_unet()
    opt = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0).float()
    for step in range(steps):
        x0 = data[torch.randint(0, len(data), (128,))]
        t = torch.randint(0, T, (128,))
        eps = torch.randn_like(x0)
        ab = alpha_bar[t].reshape(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        loss = torch.mean((unet(x_t, t).sample - eps) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  train step {step:4d}  loss {loss.item():.4f}")
    return unet.eval()


def diffusers_sample(unet, scheduler, steps, x_T):
    scheduler.set_timesteps(steps)
    x = torch.from_numpy(x_T.astype(np.float32))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x).prev_sample
    return x.double().numpy()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--out", default="results/unet_digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="a state_dict to load instead of training, or to save after")
    args = p.parse_args()
    torch.set_num_threads(2)

    import os
    if args.weights and os.path.exists(args.weights):
        unet = make_unet()
        unet.load_state_dict(torch.load(args.weights))
        unet.eval()
        print(f"loaded {args.weights}")
    else:
        print("training a UNet2DModel on the digits")
        start = time.time()
        unet = train(args.train_steps, args.seed)
        print(f"  {time.time() - start:.1f} s")
        if args.weights:
            torch.save(unet.state_dict(), args.weights)
    model = pfode.torch.model(unet, prediction="eps", time="index", shape=(1, 8, 8), data="digits")
    x_T = pfode.noise(args.samples, (1, 8, 8), seed=args.seed + 1)

    print("\n1. pfode vs diffusers, same network and noise, trailing spacing (max |difference|)")
    common = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  timestep_spacing="trailing")
    schedulers = {
        "ddim": lambda: diffusers.DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True,
                                                steps_offset=0),
        "dpm-solver++2m": lambda: diffusers.DPMSolverMultistepScheduler(
            **common, solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero"),
        "unipc": lambda: diffusers.UniPCMultistepScheduler(
            **common, solver_order=2, solver_type="bh2", final_sigmas_type="zero"),
    }
    for steps in (10, 25):
        for name, make in schedulers.items():
            t0 = time.time()
            ours, info = pfode.sample(model, x_T, solver=name, steps=steps, spacing="trailing")
            t_ours = time.time() - t0
            t0 = time.time()
            theirs = diffusers_sample(unet, make(), steps, x_T)
            t_theirs = time.time() - t0
            print(f"  {name:15s} {steps:3d} steps  NFE {info['nfe']:3d}  max|pfode - diffusers| "
                  f"{np.max(np.abs(ours - theirs)):.2e}   wall {t_ours:.2f} s vs {t_theirs:.2f} s")
    fd = pfode.digits_scores(ours)
    print(f"  digits FD of UniPC at 25 steps: {fd['fd']:.3f} (real-data floor {fd['floor_fd']:.3f})")

    print("\n2. DDIM = Euler in sigma on this network")
    table = pfode.check_ddim_euler(model, x_T[:32], steps=[10, 50])
    worst = max(table["ddim_vs_euler_sigma"])
    print(f"  max |DDIM - Euler_sigma| over 5 spacings x 2 step counts: {worst:.2e}")

    print("\n3. error to this network's own DOP853 reference, and digits FD, against NFE")
    spec = {
        "name": "unet_digits",
        "models": ["unet"],
        "solvers": [{"name": "ddim"}, {"name": "dpm-solver++2m"}, {"name": "unipc"},
                    {"name": "ipndm"}],
        "spacings": ["trailing", "logsnr"],
        "nfe": [5, 10, 20, 50],
        "samples": args.samples,
        "seeds": [args.seed],
        "metrics": ["error", "digits_fd"],
        "reference": {"rtol": 1e-5, "atol": 1e-5},
    }
    t0 = time.time()
    results = pfode.sweep(spec, models={"unet": model}, out=args.out)
    print(f"  {time.time() - t0:.1f} s -> {args.out}/results.csv")
    rows = results if isinstance(results, dict) else results.to_dict("list")
    # Runs in budget order per (solver, spacing); a budget's run may use fewer NFE than it
    # (iPNDM's Runge-Kutta start takes 3 at once), so each cell shows the NFE used.
    cells = {}
    for so, sp, nf, m, v in zip(rows["solver"], rows["spacing"], rows["nfe"], rows["metric"],
                                rows["value"]):
        if m in ("error_rms", "digits_fd"):
            cells.setdefault((so, sp), {}).setdefault(nf, {})[m] = v
    print(f"  {'solver':15s} {'spacing':9s}  NFE: error_rms / digits FD")
    for (so, sp), by_nfe in cells.items():
        text = "   ".join(f"{nf:2d}: {c['error_rms']:7.4f} / {c['digits_fd']:6.2f}"
                          for nf, c in sorted(by_nfe.items()))
        print(f"  {so:15s} {sp:9s}  {text}")
    files = pfode.plot(args.out)
    print(f"  wrote {len(files)} plots to {args.out}/plots/")


if __name__ == "__main__":
    main()
