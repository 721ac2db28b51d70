"""The options a method takes, each with its check: ``options={"lr": positive, ...}`` in
:func:`ppgen.inference.register`. :meth:`~ppgen.inference.MethodSpec.check` runs them before any
fitting, so a bad value is refused with its name and what it must be.

Example:
    >>> positive("lr", 0.01)
    >>> positive("lr", -1)
    Traceback (most recent call last):
    ...
    ppgen.errors.ConfigError: lr must be a positive number, got -1
"""
from __future__ import annotations

from typing import Any, Callable

from ppgen.errors import ConfigError

__all__ = ["anything", "positive", "positive_int", "flag", "probability", "one_of", "Check"]

Check = Callable[[str, Any], None]


def anything(name: str, value) -> None:
    """Any value: the engine or Pyro checks it (an optimizer, a callback, an init strategy)."""


def positive(name: str, value) -> None:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")


def probability(name: str, value) -> None:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value < 1):
        raise ConfigError(f"{name} must lie in (0, 1), got {value!r}")


def one_of(*choices) -> Check:
    """A check that the value is one of ``choices``."""

    def check(name: str, value) -> None:
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")

    return check
