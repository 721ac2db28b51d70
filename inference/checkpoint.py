"""Checkpoints for long runs: SVI state (param store, optimizer state, RNG states, step, losses) and
finished MCMC chains, written atomically, plus a guard that turns SIGINT/SIGTERM into a clean stop
at the next step boundary.

Resuming an SVI run restores exactly what the next step reads, so an interrupted and resumed run on
the CPU gives bit-identical parameters to an uninterrupted one with the same seed.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import pyro
from pyro.util import get_rng_state, set_rng_state

from ppgen.errors import RunFolderError
from ppgen.runfolder import read_torch, write_torch

SVI_FORMAT = "ppgen-svi-checkpoint/1"
CHAIN_FORMAT = "ppgen-mcmc-chain/1"


class Interrupted(KeyboardInterrupt):
    """The run stopped on SIGINT/SIGTERM after saving its state; ``step`` says where."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


class StopRequest:
    """Context manager: while active, SIGINT and SIGTERM set ``requested`` instead of killing the
    process, so the loop can finish its step and save (main thread only; elsewhere a no-op)."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _load(path: Path, fmt: str) -> dict:
    state = read_torch(path, "a ppgen checkpoint", weights_only=False)  # RNG and optimizer states are not tensors
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise RunFolderError(f"{str(path)!r} is not a {fmt} checkpoint")
    return state


def save_svi(path: Path, step: int, losses: list, optim) -> None:
    state = {"format": SVI_FORMAT, "step": step, "losses": list(losses), "rng": get_rng_state(),
             "param_store": pyro.get_param_store().get_state(),
             "optim": optim.get_state() if hasattr(optim, "get_state") else None}
    write_torch(path, state)


def load_svi(path: Path, optim, warm_up) -> tuple[int, list]:
    """Restore the param store and optimizer state, run ``warm_up()`` (which lets a guide build its
    structure, consuming randomness), then restore the RNG states; return ``(step, losses)``."""
    state = _load(path, SVI_FORMAT)
    pyro.get_param_store().set_state(state["param_store"])
    if state["optim"] is not None and hasattr(optim, "set_state"):
        optim.set_state(state["optim"])
    warm_up()
    set_rng_state(state["rng"])
    return state["step"], state["losses"]


def chain_path(folder: Path, chain: int) -> Path:
    return Path(folder) / "chains" / f"chain_{chain}.pt"


def save_chain(folder: Path, chain: int, samples: dict, stats: dict) -> None:
    write_torch(chain_path(folder, chain), {"format": CHAIN_FORMAT, "samples": samples, "stats": stats})


def load_chain(folder: Path, chain: int) -> tuple[dict, dict] | None:
    path = chain_path(folder, chain)
    if not path.exists():
        return None
    state = _load(path, CHAIN_FORMAT)
    return state["samples"], state["stats"]
