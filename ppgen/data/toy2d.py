"""2-D toy densities generated in code: two moons, rings, eight Gaussians, checkerboard.

``sample(name, n, seed)`` returns ``(n, 2)`` float32 numpy arrays, roughly standardized to [-4, 4].
"""
from __future__ import annotations

import numpy as np

NAMES = ("moons", "rings", "8gaussians", "checkerboard")


def sample(name: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points from the toy density ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise ValueError(f"unknown toy data set {name!r}; choose from {', '.join(NAMES)}")
    if n < 1:
        raise ValueError(f"n must be a positive number of points, got {n}")
    rng = np.random.default_rng(seed)
    return _GENERATORS[name](rng, n).astype(np.float32)


def _moons(rng, n):
    n_top = n // 2
    t = rng.uniform(0, np.pi, n)
    top = np.stack([np.cos(t[:n_top]), np.sin(t[:n_top])], 1)
    bottom = np.stack([1 - np.cos(t[n_top:]), 0.5 - np.sin(t[n_top:])], 1)
    x = np.concatenate([top, bottom]) + 0.05 * rng.standard_normal((n, 2))
    return (x - np.array([0.5, 0.25])) * 2.0


def _rings(rng, n):
    radii = rng.choice([1.0, 2.0, 3.0], size=n)
    t = rng.uniform(0, 2 * np.pi, n)
    r = radii + 0.08 * rng.standard_normal(n)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _eight_gaussians(rng, n):
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    centres = 2.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return centres + 0.2 * rng.standard_normal((n, 2))


def _checkerboard(rng, n):
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2.0 - 2.0 + (np.floor(x1) % 2)
    return np.stack([x1, x2], 1) * 1.5


_GENERATORS = {"moons": _moons, "rings": _rings, "8gaussians": _eight_gaussians, "checkerboard": _checkerboard}
