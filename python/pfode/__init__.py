"""pfode: diffusion sampling as numerical integration of the probability-flow ODE.

Any NumPy or PyTorch model through every pfode sampler, with exact NFE accounting, a
DOP853 reference of the model's own ODE, the DDIM = Euler check, sweeps, orders and plots.

    import numpy as np, pfode
    model = pfode.Model(lambda x, t: my_eps(x, t), prediction="eps", time="index")
    x_T = pfode.noise(512, (2,), seed=0)
    x0, info = pfode.sample(model, x_T, solver="unipc", nfe=10)
    print(info["nfe"], info["grid"]["t"])

See docs/python.md in the repository for the conventions (time inputs, predictions).
"""

from . import _pfode
from ._pfode import (Model, ModelError, Schedule, digits, digits_scores, grid, noise,
                     optimize_grid, plot, sample, solvers)
from ._pfode import __version__

__all__ = [
    "Model",
    "ModelError",
    "Schedule",
    "check_ddim_euler",
    "digits",
    "digits_scores",
    "grid",
    "noise",
    "optimize_grid",
    "orders",
    "orders_left_out",
    "plot",
    "reference",
    "results",
    "sample",
    "solvers",
    "sweep",
]


def _table(columns):
    """A dict of columns as a pandas DataFrame when pandas is installed, else as is."""
    try:
        import pandas
    except ImportError:
        return columns
    return pandas.DataFrame(columns)


def check_ddim_euler(model, x_T, steps=(10, 20, 50), schedule=None):
    """DDIM (eta = 0) against Euler in sigma, DPM-Solver-1 and Euler in t on every spacing.

    Returns the per-grid table (a DataFrame when pandas is installed, else a dict of
    columns): `ddim_vs_euler_sigma` is the max abs difference, which the identity puts at
    round-off (pfode's CLI check fails above 1e-11).
    """
    return _table(_pfode.check_ddim_euler(model, x_T, list(steps), schedule))


def reference(model, x_T, rtol=None, atol=None, schedule=None, mode="batch", t_start=None):
    """The model's probability-flow ODE solved by DOP853 from x_T to clean data: (x0, info).

    rtol/atol default to 1e-10 for models defined on clean data (exact ones), else 1e-7
    (networks: tighter changes nothing but the cost; info records what was used).
    """
    return _pfode.reference(model, x_T, rtol, atol, schedule, mode, t_start)


def sweep(spec, models=None, out=None, resume=False, jobs=None, quiet=True):
    """Runs a sweep spec (TOML path or dict) with extra models by name, as `pfode sweep`.

    Writes the same results folder (default `results/<name>`) and returns its tidy table
    (a DataFrame when pandas is installed, else a dict of columns).
    """
    if out is not None:
        out = str(out)
    columns, _ = _pfode.sweep(spec, models, out, resume, jobs, quiet)
    return _table(columns)


def results(results_dir):
    """A results folder's `results.csv` as a table."""
    return _table(_pfode.results(str(results_dir)))


def orders(results_dir):
    """Fitted vs declared convergence orders of a results folder, as `pfode orders`.

    Stochastic samplers and runs that clamp x0 are left out (their distance to the ODE
    reference is no convergence error): `orders_left_out(results_dir)` lists them.
    """
    return _table(_pfode.orders(str(results_dir)))


def orders_left_out(results_dir):
    """[(configuration, reason)] of the runs `orders` does not fit."""
    return _pfode.orders_left_out(str(results_dir))
