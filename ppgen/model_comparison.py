"""``ppgen.compare_models``: different models fit to the same data, ranked by PSIS-LOO or WAIC
(``az.compare``), where :func:`ppgen.compare` ranks inference methods on one model."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ppgen.errors import DataError

__all__ = ["compare_models"]


def compare_models(fits, ic: str = "loo", var_name: str | None = None, **kwargs) -> pd.DataFrame:
    """Rank models fit to the same data by expected log predictive density, through ``az.compare``.

    :param fits: a list of fits (or ``InferenceData``), or ``{name: fit}``; names default to
        ``model-method``.
    :param ic: ``"loo"`` (PSIS-LOO; check the ``warning`` column and Pareto k) or ``"waic"``.
    :param var_name: the observed site whose log-likelihood counts, for models with several.
    :returns: ArviZ's table: ``rank``, ``elpd_<ic>``, ``p_<ic>``, ``elpd_diff``, ``weight``, ``se``, ``dse``, ...

    Fits of different data cannot be compared: that is refused with :class:`~ppgen.DataError`.
    """
    from ppgen.arviz_bridge import az

    named = dict(fits) if isinstance(fits, dict) else _names(fits)
    if len(named) < 2:
        raise ValueError(f"compare_models needs at least two fits, got {len(named)}")
    idatas = {name: f.to_arviz() if hasattr(f, "to_arviz") else f for name, f in named.items()}
    for name, idata in idatas.items():
        if not hasattr(idata, "log_likelihood"):
            raise ValueError(f"{name!r} has no pointwise log-likelihood (no posterior draws or no observed site); "
                             f"refit it with num_samples > 0")
    _same_data(idatas)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the warning column says it, per model
        return az.compare(idatas, ic=ic, var_name=var_name, **kwargs)


def _names(fits) -> dict:
    out = {}
    for f in fits:
        base = f"{f.model_name}-{f.method}" if hasattr(f, "model_name") else "model"
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out[name] = f
    return out


def _same_data(idatas: dict) -> None:
    first_name, first = next(iter(idatas.items()))
    for name, idata in idatas.items():
        if not hasattr(idata, "observed_data") or not hasattr(first, "observed_data"):
            continue
        for var in set(first.observed_data.data_vars) & set(idata.observed_data.data_vars):
            a, b = np.asarray(first.observed_data[var]), np.asarray(idata.observed_data[var])
            if a.shape != b.shape or not np.allclose(a, b):
                raise DataError(f"{name!r} and {first_name!r} were fit to different data (observed site {var!r}: "
                                f"shapes {b.shape} and {a.shape}); LOO/WAIC compare models on the same data only")
