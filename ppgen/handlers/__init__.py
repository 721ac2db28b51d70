"""ppgen's effect handlers, one per file, each a small Pyro ``Messenger`` (as in ``pyro/poutine``):

- :class:`~ppgen.handlers.full_data.FullData`: every subsampled plate takes all its rows;
- :class:`~ppgen.handlers.dependent_support.DependentSupport`: a site whose bounds move with another
  latent is sampled on its unconstrained space, as Stan does;
- :class:`~ppgen.handlers.replicate.Replicate`: observed sites drawn afresh (posterior predictive);
- :class:`~ppgen.handlers.epochs.epochs`: a subsampled plate draws its rows in shuffled epochs;
- :class:`~ppgen.handlers.site_tracker.SiteTracker`: the last sample site reached, to place an error.

:func:`is_plate_index` recognises the index site a subsampled ``pyro.plate`` makes.
"""
from __future__ import annotations

from pyro.poutine.subsample_messenger import _Subsample

__all__ = ["is_plate_index", "FullData", "DependentSupport", "Replicate", "epochs", "SiteTracker"]


def is_plate_index(fn) -> bool:
    """Whether ``fn`` (a site's distribution) is the index distribution of a ``pyro.plate``."""
    return isinstance(fn, _Subsample)


from ppgen.handlers.dependent_support import DependentSupport  # noqa: E402
from ppgen.handlers.epochs import epochs  # noqa: E402
from ppgen.handlers.full_data import FullData  # noqa: E402
from ppgen.handlers.replicate import Replicate  # noqa: E402
from ppgen.handlers.site_tracker import SiteTracker  # noqa: E402
