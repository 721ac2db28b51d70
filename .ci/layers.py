"""The layer contract, checked on the package as it is installed, and the import graph it rests on.

    python .ci/layers.py            # import-linter's contract (pyproject.toml) on ppgen as installed
    python .ci/layers.py --graph    # which file imports which layer, read from the source

ppgen installs ``models/`` and ``inference/`` as ``ppgen.models`` and ``ppgen.inference`` (setuptools
``package-dir``), so no static tool sees them inside ``ppgen/`` in the source tree. This script lays
the package out as pip does (symlinks in a temporary folder) and runs ``lint-imports`` there.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"ppgen": ROOT / "ppgen", "ppgen.models": ROOT / "models", "ppgen.inference": ROOT / "inference"}
LAYERS = ["core", "models", "inference", "front door"]
FRONT_DOOR = {"ppgen", "ppgen.__main__", "ppgen.api", "ppgen.cli", "ppgen.compare", "ppgen.estimators",
              "ppgen.model_comparison", "ppgen.references", "ppgen.report", "ppgen.sbc"}


def lint() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "ppgen"
        package.mkdir()
        for entry in FOLDERS["ppgen"].iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        for name in ("models", "inference"):
            (package / name).symlink_to(FOLDERS[f"ppgen.{name}"])
        env = {**os.environ, "PYTHONPATH": tmp + os.pathsep + os.environ.get("PYTHONPATH", "")}
        return subprocess.call(["lint-imports", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp, env=env)


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> str:
    if module.startswith(("ppgen.models", "ppgen.inference")):
        return module.split(".")[1]
    return "front door" if ".".join(module.split(".")[:2]) in FRONT_DOOR else "core"


def imported(path: Path, module: str, known: dict) -> set[str]:
    """The ppgen modules a file imports (``from pkg import name`` counts as ``pkg.name`` where that is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            stem = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([stem] if stem else []))
            out |= {f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names}
    return {m for m in out if m == "ppgen" or m.startswith("ppgen.")}


def graph() -> int:
    known = modules()
    up = 0
    for module, path in known.items():
        own = layer(module)
        targets = {}
        for target in imported(path, module, known):
            if layer(target) != own:
                targets.setdefault(layer(target), set()).add(target)
        above = [t for t in sorted(targets, key=LAYERS.index) if LAYERS.index(t) > LAYERS.index(own)]
        up += bool(above) and module != "ppgen"  # the package's __init__ exports the front door
        names = ", ".join(sorted(targets, key=LAYERS.index)) or "-"
        flag = "   UP: " + "; ".join(f"{t} ({', '.join(sorted(targets[t]))})" for t in above) if above else ""
        print(f"{str(path.relative_to(ROOT)):40s} {own:10s} imports {names}{flag}")
    print(f"\n{up} of {len(known)} files import a layer above their own (ppgen/__init__.py, the package's face, aside)")
    return 0


if __name__ == "__main__":
    sys.exit(graph() if "--graph" in sys.argv else lint())
