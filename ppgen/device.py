"""Where tensors live. ``resolve_device`` turns ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a
:class:`torch.device` (with a clear error when CUDA is asked for and absent); ``placement`` makes
that device and a dtype the defaults while a model runs, so even a bare ``dist.Normal(0., 1.)``
inside a user's program is created on the data's device and dtype."""
from __future__ import annotations

import contextlib
import os

import torch

from ppgen.errors import UnknownNameError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Under ``torchrun`` (``LOCAL_RANK`` set), ``"auto"`` and ``"cuda"`` mean this process's own GPU."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UnknownNameError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UnknownNameError(f"device {device!r} asked for, but CUDA is not available here; "
                                   f"use device='cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UnknownNameError(f"device {device!r} asked for, but only {torch.cuda.device_count()} "
                                   f"CUDA device(s) exist")
    elif dev.type != "cpu":
        raise UnknownNameError(f"unsupported device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return dev


@contextlib.contextmanager
def placement(device: torch.device, dtype: torch.dtype):
    """Make ``device`` and ``dtype`` torch's defaults inside the block, restoring both after.

    On the CPU, the default device already is the CPU: the device context (which intercepts every
    torch call) is entered only for other devices.
    """
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device) if device.type != "cpu" else contextlib.nullcontext():
            yield
    finally:
        torch.set_default_dtype(old_dtype)
