"""Run folders that are never half-written and never clobbered.

Every file goes to a temporary name in the same folder and is renamed into place (atomic on POSIX),
and ``metrics.json`` carries a format tag so a foreign or truncated folder is refused with a clear
error instead of read wrongly. A command claims its folder (:func:`claimed`) before it writes: a lock
file keeps a second process out while the first runs, a folder that already holds a run is refused
unless forced (then its old files are cleared), and a default name moves on to ``NAME-2``, ``NAME-3``.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from ppgen.errors import RunFolderError

FORMAT = "ppgen-run/1"
LOCK = ".ppgen.lock"  # {pid, host, started, command} of the process writing the folder
MARKER = ".ppgen"  # written into every folder ppgen claims: only such a folder is ever cleared
WRITTEN_BY_PPGEN = (MARKER, "metrics.json", "command.json", "config.json", "report.html")  # older folders too
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


class FolderInUse(RunFolderError):
    """Another live process holds the folder's lock."""


@contextmanager
def claimed(folder: str | Path, *, numbered: bool = False, force: bool = False, resume: bool = False):
    """Hold ``folder`` for one command and yield it.

    The lock file :data:`LOCK` is created atomically (a hard link, which fails if it exists) and
    removed when the block ends, however it ends; a lock left by a process that no longer runs on
    this host is taken over. Holding the lock, a folder with files in it is refused unless ``force``
    (its files are then removed first) or ``resume`` (an interrupted run continues in it); a folder
    ppgen did not write is never cleared. With ``numbered`` (a default name the user did not choose)
    a taken folder is no error: the first of ``folder``, ``folder-2``, ``folder-3``, ... that is free
    is used instead. A folder this call created and left empty is removed again.
    """
    folder = Path(folder)
    for candidate in _numbered(folder) if numbered else (folder,):
        if numbered and _entries(candidate):
            continue
        created = not candidate.exists()
        try:
            lock = _lock(candidate)
        except FolderInUse:
            if numbered:
                continue
            raise
        break
    try:
        if not resume:
            _make_room(candidate, force)
        (candidate / MARKER).touch()
        yield candidate
    finally:
        lock.unlink(missing_ok=True)
        if created and set(_entries(candidate)) <= {MARKER}:
            shutil.rmtree(candidate, ignore_errors=True)


def _numbered(folder: Path):
    yield folder
    for i in itertools.count(2):
        yield folder.with_name(f"{folder.name}-{i}")


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(LOCK)) if folder.is_dir() else []


def _lock(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)}
    fd, tmp = tempfile.mkstemp(prefix=f"{LOCK}.", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(holder, f)
        for _ in range(2):
            try:
                os.link(tmp, lock)
                return lock
            except FileExistsError:
                other = _holder(lock)
                if other is None or not _stale(other):
                    raise FolderInUse(_in_use_message(folder, other)) from None
                lock.unlink(missing_ok=True)  # its process is gone: take the folder over
        raise FolderInUse(_in_use_message(folder, _holder(lock)))
    finally:
        os.remove(tmp)


def _holder(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None


def _stale(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return False  # another machine's process: no way to tell from here
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def _in_use_message(folder: Path, holder: dict | None) -> str:
    who = (f"process {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')}: "
           f"{holder.get('command')})" if holder else "another process")
    return (f"run folder {str(folder)!r} is in use by {who}; wait for it to finish or choose another --out "
            f"(if no such process runs, delete {str(folder / LOCK)!r})")


def _make_room(folder: Path, force: bool) -> None:
    entries = _entries(folder)
    if set(entries) <= {MARKER}:
        return
    if not set(entries) & set(WRITTEN_BY_PPGEN):
        raise RunFolderError(f"{str(folder)!r} holds files ppgen did not write ({', '.join(entries[:5])}"
                             f"{', ...' if len(entries) > 5 else ''}); choose another --out")
    if not force:
        if (folder / "metrics.json").exists() or (folder / "report.html").exists():
            what = "a complete run"
        elif (folder / "command.json").exists():
            what = f"an interrupted run (continue it with: ppgen fit --resume {folder})"
        else:
            what = "the files of an earlier run"
        raise RunFolderError(f"run folder {str(folder)!r} already holds {what}; --force replaces it, "
                             f"--out NEW writes elsewhere")
    for entry in entries:
        path = folder / entry
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
