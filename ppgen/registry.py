"""A name -> entry registry filled by the modules of one package, imported on first use: the shape
shared by the model registry (:mod:`ppgen.models`) and the method registry (:mod:`ppgen.inference`)."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, TypeVar

from ppgen.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries registered by the modules of ``package`` (every module not starting with ``_``)."""

    def __init__(self, package: str, path, kind: str):
        self.package, self.path, self.kind = package, path, kind
        self.entries: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, entry: T) -> None:
        self.entries[name] = entry

    def load_all(self) -> None:
        if self._loaded:
            return
        for module in pkgutil.iter_modules(self.path):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
        self._loaded = True

    def names(self) -> list[str]:
        self.load_all()
        return sorted(self.entries)

    def specs(self) -> list[T]:
        return [self.entries[n] for n in self.names()]

    def get(self, name: str) -> T:
        self.load_all()
        try:
            return self.entries[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; "
                                   f"{self.kind}s: {', '.join(sorted(self.entries))}") from None
