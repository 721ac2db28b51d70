"""Two-sample statistics for models without a likelihood (GANs) and for checking samples of any
model against data: the squared maximum mean discrepancy with a Gaussian kernel and the energy
distance. Both are 0 when the two samples come from the same distribution (in expectation)."""
from __future__ import annotations

import torch


def _as_tensor(x, like: torch.Tensor | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if like is not None:
        t = t.to(device=like.device, dtype=like.dtype)
    return t.reshape(t.shape[0], -1)


def mmd2(x, y, bandwidth: float | None = None) -> torch.Tensor:
    """Unbiased squared MMD between samples ``x`` (n, d) and ``y`` (m, d), Gaussian kernel.

    ``bandwidth`` defaults to the median pairwise distance of the pooled sample.
    """
    x = _as_tensor(x)
    y = _as_tensor(y, like=x)
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        bandwidth = d2[d2 > 0].median().sqrt().item()
    k = torch.exp(-d2 / (2 * bandwidth**2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return ((kxx.sum() - kxx.diag().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1)) -
            2 * kxy.mean())


def energy_distance(x, y) -> torch.Tensor:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` between samples (n, d) and (m, d)."""
    x = _as_tensor(x)
    y = _as_tensor(y, like=x)
    return 2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()
