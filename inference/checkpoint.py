"""Checkpoints for long runs: finished MCMC chains, written atomically, the format of SVI's (the state
object itself is :class:`ppgen.inference.svi.SVIState`), and a guard that turns SIGINT/SIGTERM into
a clean stop at the next step boundary.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

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
