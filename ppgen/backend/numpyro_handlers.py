"""The ``handlers`` module of the ``"ppgen-numpyro"`` backend: ``numpyro.handlers`` under ``pyro.poutine``'s names.

``substitute`` replaces ``param`` sites only, as Pyro's does (NumPyro's also replaces samples).
Added to ``numpyro.handlers``: ``enum`` and ``markov`` (NumPyro's funsor handlers); ``block`` taking
Pyro's ``expose_fn``/``hide_all``/``expose_all``/``hide_types`` with Pyro's rules; ``trace`` whose
``get_trace`` result also answers Pyro's ``.nodes`` and ``.log_prob_sum()``. Poutine handlers with no
NumPyro counterpart (``queue``, ``escape``, ``broadcast``, ``equalize``, ...) raise ``NotImplementedError``.
"""
from __future__ import annotations

from collections import OrderedDict

import jax.numpy as jnp
from numpyro import handlers as _handlers
from numpyro.contrib.funsor import enum, markov  # noqa: F401
from numpyro.handlers import *  # noqa: F401, F403


def block(fn=None, hide_fn=None, expose_fn=None, hide_all=True, expose_all=False, hide=None, expose=None,
          hide_types=None, expose_types=None):
    """Pyro's ``poutine.block``: the same arguments and the same rule for which sites are hidden."""
    if hide_fn is None and expose_fn is not None:
        hide_fn = lambda msg: not expose_fn(msg)  # noqa: E731
    if hide_fn is None:
        if not ((not hide_all and not expose_all) or hide_all != expose_all):
            raise ValueError("cannot hide and expose a site")
        if hide is not None or hide_types is not None:
            hide_all = False
        if expose is not None or expose_types is not None:
            hide_all = True
        hide, expose, hide_types, expose_types = (list(x or ()) for x in (hide, expose, hide_types, expose_types))

        def hide_fn(msg):
            kind = "observe" if msg["type"] == "sample" and msg.get("is_observed") else msg["type"]
            exposed = msg["name"] in expose or kind in expose_types
            return msg["name"] in hide or kind in hide_types or (not exposed and hide_all)
    return _handlers.block(fn, hide_fn=hide_fn)


def substitute(fn=None, data=None):
    """Pyro's ``poutine.substitute``: values for ``param`` sites; sample sites are left alone."""
    data = dict(data or {})

    def param_value(msg):
        return data.get(msg["name"]) if msg["type"] == "param" else None
    return _handlers.substitute(fn, substitute_fn=param_value)


class Trace(OrderedDict):
    """NumPyro's trace (name -> site) that also reads as Pyro's: ``.nodes`` and ``.log_prob_sum()``."""

    @property
    def nodes(self):
        return self

    def log_prob_sum(self, site_filter=lambda name, site: True):
        total = 0.0
        for name, site in self.items():
            if site["type"] == "sample" and site_filter(name, site):
                log_p = site["fn"].log_prob(site["value"])
                if site.get("scale") is not None:
                    log_p = site["scale"] * log_p
                total = total + jnp.sum(log_p)
        return total


class trace(_handlers.trace):
    """``numpyro.handlers.trace`` taking Pyro's ``graph_type``/``param_only``, returning a :class:`Trace`."""

    def __init__(self, fn=None, graph_type=None, param_only=None):
        self.param_only = bool(param_only)
        super().__init__(fn)

    def get_trace(self, *args, **kwargs):
        sites = super().get_trace(*args, **kwargs)
        return Trace((k, v) for k, v in sites.items() if not self.param_only or v["type"] == "param")
