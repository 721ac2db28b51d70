"""Bundled data sets and readers for users' data files.

Bundled (no download, ever): Old Faithful (R's ``datasets::faithful``), the eight schools
(posteriordb), scikit-learn's ``load_digits`` (:mod:`ppgen.data.images`) and 2-D toy densities
generated in code (:mod:`ppgen.data.toy2d`).
"""
from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

import numpy as np

from ppgen.errors import DataError

__all__ = ["load_faithful", "load_eight_schools", "eight_schools_reference", "read_data_file"]


def _open(name: str):
    return resources.files(__name__).joinpath(name).open("r", encoding="utf-8")


def load_faithful(standardize: bool = False) -> np.ndarray:
    """Old Faithful: 272 eruptions as rows ``(duration in minutes, waiting time in minutes)``.

    With ``standardize=True`` each column has mean 0 and sd 1.
    """
    with _open("faithful.csv") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r["eruptions"]), float(r["waiting"])] for r in rows])
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
    return x


def load_eight_schools() -> dict:
    """The eight schools: ``J`` schools, effect estimates ``y`` and their standard errors ``sigma``."""
    with _open("eight_schools.json") as f:
        d = json.load(f)
    return {"J": int(d["J"]), "sigma": np.array(d["sigma"], dtype=float), "y": np.array(d["y"], dtype=float)}


def eight_schools_reference() -> dict:
    """posteriordb's reference summary (Stan, 10k draws) for the non-centered eight schools,
    keyed by ppgen's site names: ``mu``, ``tau``, ``theta[0]`` ... ``theta[7]`` (0-based)."""
    with _open("eight_schools_reference.json") as f:
        params = json.load(f)["eight_schools-eight_schools_noncentered"]["params"]
    return {stan_to_python_index(k): v for k, v in params.items()}


def stan_to_python_index(name: str) -> str:
    """``"theta[1]"`` -> ``"theta[0]"``; ``"beta[2,3]"`` -> ``"beta[1,2]"``; plain names unchanged."""
    if "[" not in name:
        return name
    base, idx = name[:-1].split("[")
    return f"{base}[{','.join(str(int(i) - 1) for i in idx.split(','))}]"


def read_data_file(path: str | Path) -> dict:
    """Read a user's data: JSON (an object of arrays/scalars) or CSV (one array per column)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.suffix == ".json":
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"data file {str(path)!r} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise DataError(f"data file {str(path)!r} must hold a JSON object (name -> array), got {type(d).__name__}")
        return {k: np.asarray(v) if isinstance(v, list) else v for k, v in d.items()}
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise DataError(f"data file {str(path)!r} has no rows")
        try:
            return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
        except ValueError as e:
            raise DataError(f"data file {str(path)!r}: every CSV value must be a number ({e})") from None
    raise DataError(f"data file {str(path)!r}: expected a .json or .csv file")
