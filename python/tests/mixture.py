"""The ring2d mixture's exact noise prediction, written in NumPy from its definition
(docs/math.md §6), for the parity tests: 8 equal components on the circle of radius 4,
std 0.3. Under a VP schedule p_t is the mixture with means a*mu_k and variances
a^2 c^2 + s^2, so eps = s * sum_k r_k (x - a mu_k) / (a^2 c^2 + s^2)."""

import numpy as np

import pfode

ANGLES = 2 * np.pi * np.arange(8) / 8
MEANS = np.stack([4 * np.cos(ANGLES), 4 * np.sin(ANGLES)], axis=1)
STD = 0.3
SCHEDULE = pfode.Schedule("linear")
T = 1000


def eps_at(x, a, s):
    """The exact eps for VP-scaled x of shape (N, 2) at signal scale a, noise scale s."""
    var = a * a * STD * STD + s * s
    diff = x[:, None, :] - a * MEANS[None, :, :]          # (N, K, D)
    logits = -0.5 * (diff * diff / var).sum(-1)           # equal weights and variances
    logits -= logits.max(axis=1, keepdims=True)
    r = np.exp(logits)
    r /= r.sum(axis=1, keepdims=True)
    return s * (r[:, :, None] * diff / var).sum(1)


def scales(t):
    return SCHEDULE.alpha(t), SCHEDULE.sigma(t)


def eps_t(x, t):
    a, s = scales(t)
    return eps_at(x, a, s)


def eps_index(x, index):
    return eps_t(x, (index + 1) / T)


def t_of_sigma(sigma):
    """The time whose sigma-ratio s/a is `sigma` on the linear schedule (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        a, s = scales(mid)
        lo, hi = (mid, hi) if s / a < sigma else (lo, mid)
    return 0.5 * (lo + hi)


def eps_sigma(x_ve, sigma):
    """Given x/a and sigma = s/a (k-diffusion's view)."""
    a = 1 / np.sqrt(1 + sigma * sigma)
    s = sigma * a
    return eps_at(x_ve * a, a, s)
