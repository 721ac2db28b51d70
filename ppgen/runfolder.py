"""Run folders that are never half-written: every file goes to a temporary name in the same folder
and is renamed into place (atomic on POSIX), and ``metrics.json`` carries a format tag so a foreign
or truncated folder is refused with a clear error instead of read wrongly."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from ppgen.errors import RunFolderError

FORMAT = "ppgen-run/1"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: files get the usual 0o666 & ~umask, not mkstemp's owner-only 0o600


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_jsonable))


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise RunFolderError(f"{str(path)!r} is missing: not a complete ppgen run folder")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{str(path)!r} is truncated or not JSON ({e})") from None


def write_torch(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_torch(path: str | Path, what: str, weights_only: bool = True):
    """``torch.load`` onto the CPU; a truncated or foreign file raises :class:`RunFolderError`
    saying it is not ``what`` (e.g. ``"a ppgen checkpoint"``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # torch raises several types for a truncated or foreign file
        raise RunFolderError(f"{str(path)!r} is truncated or not {what} ({e})") from None


def check_format(metrics: dict, folder: Path) -> None:
    if metrics.get("format") != FORMAT:
        raise RunFolderError(f"{str(folder)!r} was not written by ppgen (metrics.json has format "
                             f"{metrics.get('format')!r}, expected {FORMAT!r})")


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    return str(x)
