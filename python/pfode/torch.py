"""PyTorch models for pfode: `pfode.torch.model(module, ...)` wraps an `nn.Module`.

The module is called as `module(x, time)` under `torch.no_grad()`, on `device` in `dtype`
(default: the module's own). Outputs with a `.sample` field (diffusers' `UNet2DOutput`)
or tuples are unwrapped. pfode hands NumPy arrays over with `torch.from_numpy` (no copy on
CPU) and takes the result back as NumPy.
"""

import numpy as np

from ._pfode import Model


def model(module, prediction="eps", time="index", device=None, dtype=None, shape=None,
          data=None, time_array=True):
    """A `pfode.Model` of a torch module predicting `prediction` from `(x, time)`.

    time: "index" (diffusers' timestep, `t*T - 1`), "t" or "sigma" (see pfode.Model).
    time_array: pass time as a tensor of shape [N] (diffusers' UNets take either).
    """
    call, np_dtype = as_callable(module, device, dtype)
    return Model(call, prediction=prediction, time=time, dtype=np_dtype, shape=shape,
                 data=data, time_array=time_array)


def as_callable(module, device=None, dtype=None):
    """The NumPy callable `fn(x, time) -> array` that `model` wraps, and its dtype name."""
    import torch

    params = list(module.parameters())
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    device = torch.device(device)
    if dtype is None:
        dtype = params[0].dtype if params else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    np_dtype = "float32" if dtype == torch.float32 else "float64"

    def call(x, t):
        with torch.no_grad():
            xt = torch.from_numpy(x).to(device=device, dtype=dtype)
            if np.ndim(t) == 0:
                tt = torch.tensor(float(t), device=device, dtype=dtype)
            else:
                tt = torch.from_numpy(np.asarray(t)).to(device=device, dtype=dtype)
            out = module(xt, tt)
            if hasattr(out, "sample"):
                out = out.sample
            elif isinstance(out, (tuple, list)):
                out = out[0]
            return out.to(device="cpu").numpy()

    call.__qualname__ = f"torch:{type(module).__name__}"
    return call, np_dtype
