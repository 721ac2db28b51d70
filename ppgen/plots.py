"""Plots written into run folders (matplotlib, no display needed)."""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_VARS = 8  # trace/rank plots show at most this many variables
MAX_ELEMENTS = 5  # ... and this many entries of each: 40 panels, ArviZ's limit


def figure_of(axes):
    """The figure behind what ArviZ's plot functions return (one axis or an array of them)."""
    return np.asarray(axes).flatten()[0].figure


def save_png(fig, path: Path, dpi: int = 80) -> Path:
    """Write ``fig`` to ``path`` atomically, cropped to its contents, and close it."""
    from ppgen.runfolder import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _var_names(idata) -> list[str]:
    """Up to :data:`MAX_VARS` posterior variables worth a trace: real-valued, not constant across
    draws (discrete or fixed sites break rank plots), the smallest first (scalars before per-datapoint sites)."""
    post = idata.posterior
    def varies(n) -> bool:  # every entry spreads beyond rounding (a saturated probability breaks ArviZ's KDE)
        spread = post[n].std(("chain", "draw")) / (1 + abs(post[n].mean(("chain", "draw"))))
        return float(spread.min()) > 1e-6

    usable = [n for n in post.data_vars if post[n].dtype.kind == "f" and varies(n)]
    return sorted(usable, key=lambda n: post[n].size)[:MAX_VARS]


def trace_and_rank(idata, folder: Path) -> dict[str, Path | str]:
    """``trace.png`` and ``rank.png`` for up to :data:`MAX_VARS` posterior variables; returns
    ``{kind: path}``, or ``{kind: reason}`` where there is nothing to draw."""
    from ppgen.arviz_bridge import az

    names = _var_names(idata)
    if not names:
        return {kind: "no real-valued parameter varies across draws" for kind in ("trace", "rank")}
    coords = {}  # at most MAX_ELEMENTS panels per variable: the first entries of its first axis
    for name in names:
        for i, dim in enumerate(idata.posterior[name].dims[2:]):
            coords[dim] = idata.posterior[dim].values[:MAX_ELEMENTS if i == 0 else 1]
    out = {}
    for kind, plot in (("trace", az.plot_trace), ("rank", az.plot_rank)):
        options = {"compact": True} if kind == "trace" else {}
        with warnings.catch_warnings():  # a panel whose draws are all equal gets no density: not news
            warnings.simplefilter("ignore", UserWarning)
            axes = plot(idata, var_names=names, coords=coords, **options)
        fig = figure_of(axes)
        fig.tight_layout()
        out[kind] = save_png(fig, folder / f"{kind}.png")
    return out


def loss_curve(losses, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.asarray(losses))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (-ELBO)")
    if min(losses) > 0:
        ax.set_yscale("log")
    fig.tight_layout()
    save_png(fig, path)


PPC_DRAWS = 100  # replicated data sets drawn over the observed data


def predictive_checks(idata, folder: Path) -> dict[str, Path | str]:
    """``ppc.png`` (observed data over posterior-predictive draws) and ``prior_ppc.png`` (over
    prior-predictive draws), each where its group exists; returns ``{kind: path or reason}``."""
    from ppgen.arviz_bridge import az

    out = {}
    for kind, group, name in (("ppc", "posterior", "posterior_predictive"), ("prior_ppc", "prior", "prior_predictive")):
        if not hasattr(idata, name) or not hasattr(idata, "observed_data"):
            out[kind] = f"no {name.replace('_', ' ')} draws"
            continue
        draws = getattr(idata, name)
        total = draws.sizes["chain"] * draws.sizes["draw"]
        options = dict(group=group, observed=True, num_pp_samples=min(PPC_DRAWS, total), random_seed=0,
                       figsize=(6, 3.5 * len(draws.data_vars)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                axes = az.plot_ppc(idata, **options)
            except ValueError:  # ArviZ's KDE fails on near-constant or wide-spread integer draws: ECDFs do not
                plt.close("all")
                axes = az.plot_ppc(idata, kind="cumulative", **options)
        fig = figure_of(axes)
        fig.tight_layout()
        out[kind] = save_png(fig, folder / f"{kind}.png")
    return out
