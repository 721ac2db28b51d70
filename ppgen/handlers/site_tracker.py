"""``SiteTracker``: remembers the last sample site a program reached, so an error raised inside the
program can be placed ("after site 'theta'").

Example:
    >>> import pyro, pyro.distributions as dist
    >>> def model():
    ...     pyro.sample("a", dist.Normal(0., 1.))
    ...     raise ValueError("bad shape")
    >>> tracker = SiteTracker()
    >>> try:
    ...     with tracker:
    ...         model()
    ... except ValueError:
    ...     tracker.last
    'a'
"""
from __future__ import annotations

from pyro.poutine.messenger import Messenger

__all__ = ["SiteTracker"]


class SiteTracker(Messenger):
    """``last``: the name of the last sample site reached (``None`` before the first)."""

    last: str | None = None

    def _pyro_sample(self, msg):
        self.last = msg["name"]
