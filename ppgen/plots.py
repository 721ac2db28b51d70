"""Plots written into run folders (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_VARS = 8  # trace/rank plots show at most this many variables, the first in the posterior


def _var_names(idata) -> list[str]:
    return list(idata.posterior.data_vars)[:MAX_VARS]


def trace_and_rank(idata, folder: Path) -> None:
    """``trace.png`` and ``rank.png`` for the first :data:`MAX_VARS` posterior variables."""
    from ppgen.arviz_bridge import az
    from ppgen.runfolder import atomic_path

    names = _var_names(idata)
    for kind, plot in (("trace", az.plot_trace), ("rank", az.plot_rank)):
        axes = plot(idata, var_names=names, compact=True) if kind == "trace" else plot(idata, var_names=names)
        fig = np.asarray(axes).flatten()[0].figure
        fig.tight_layout()
        with atomic_path(folder / f"{kind}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)


def loss_curve(losses, path: Path) -> None:
    from ppgen.runfolder import atomic_path

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.asarray(losses))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (-ELBO)")
    if min(losses) > 0:
        ax.set_yscale("log")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
