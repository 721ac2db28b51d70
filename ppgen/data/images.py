"""Image data: scikit-learn's bundled 8x8 digits (no download), binarized or as grey levels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageSplit:
    """A fixed train/test split. ``x_*``: ``(n, 64)`` floats in [0, 1] (or {0, 1}); ``y_*``: labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    shape: tuple[int, int] = (8, 8)


def load_digits(binarize: bool = True, test_fraction: float = 0.2, seed: int = 0, threshold: float = 0.5) -> ImageSplit:
    """The 1797 8x8 digits of scikit-learn, scaled to [0, 1] (grey levels 0..16 / 16).

    With ``binarize=True`` pixels are ``x > threshold`` as float {0., 1.}. The split is stratified
    by label and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    x = digits.data.astype(np.float32) / 16.0
    if binarize:
        x = (x > threshold).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    return ImageSplit(x_tr, y_tr, x_te, y_te)
