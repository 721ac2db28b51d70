"""A model's graph: its program drawn by :func:`pyro.render_model` on the problem's data.

Sample sites are ellipses (observed ones filled gray, deterministic ones dashed), plates are boxes
labelled with their names, ``pyro.param`` sites are plain labels, and a legend lists each site's
distribution and each param's constraint. A network's weights (``pyro.module``) are left out: dozens
of nodes that say nothing about the model. The format follows the file's suffix (:data:`FORMATS`);
all but the dot source need Graphviz's ``dot`` executable.
"""
from __future__ import annotations

from pathlib import Path

import pyro
import pyro.poutine as poutine
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.params.param_store import _MODULE_NAMESPACE_DIVIDER

from ppgen.errors import ConfigError, NotApplicableError
from ppgen.init import init_to_median
from ppgen.problem import Problem
from ppgen.runfolder import atomic_path, write_text

__all__ = ["FORMATS", "digraph", "write"]

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": None, ".gv": None}  # None: the dot source
NO_DOT = "model graph needs Graphviz's `dot` (apt install graphviz / conda install graphviz)"


def _network_weight(msg: dict) -> bool:
    return msg["type"] == "param" and _MODULE_NAMESPACE_DIVIDER in msg["name"]


def _graphviz():
    """The ``graphviz`` package (which :func:`pyro.render_model` imports), or an error saying how to install it."""
    try:
        import graphviz
    except ImportError:
        raise NotApplicableError("model graph needs the graphviz Python package (pip install graphviz)") from None
    return graphviz


def digraph(problem: Problem):
    """The ``graphviz.Digraph`` of ``problem.program`` run on ``problem.data``, its latents at their prior
    medians as :func:`~ppgen.problem.prepare` first tries them (Stan's rule where a prior cannot be sampled:
    a flat prior draws too)."""
    _graphviz()
    program = InitMessenger(init_to_median)(poutine.block(problem.program, hide_fn=_network_weight))
    with problem.placement():
        return pyro.render_model(program, model_kwargs=problem.data, render_distributions=True, render_params=True,
                                 render_deterministic=True)


def write(problem: Problem, path: str | Path) -> Path:
    """Draw ``problem``'s graph into ``path`` (``.svg``, ``.png``, ``.pdf``; ``.dot``/``.gv``: the source)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"a model graph is written as {', '.join(FORMATS)}, not {path.suffix or path.name!r}")
    graph, fmt = digraph(problem), FORMATS[path.suffix.lower()]
    if fmt is None:
        write_text(path, graph.source)
        return path
    try:
        image = graph.pipe(format=fmt)
    except _graphviz().ExecutableNotFound:
        raise NotApplicableError(NO_DOT) from None
    with atomic_path(path) as tmp:
        tmp.write_bytes(image)
    return path
