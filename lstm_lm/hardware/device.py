"""Choosing the device a command runs on."""

from __future__ import annotations

import torch

from ..errors import UserError
from .allocator import reuse_large_blocks


def resolve_device(name: str) -> torch.device:
    """auto -> CUDA when present, else CPU; asking for CUDA where there is none is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        return torch.device(name)
    raise UserError(f"--device {name}: expected auto, cpu or cuda")


def flush_denormals() -> None:
    """Make CPU arithmetic treat denormal floats (below 1.2e-38) as zero, in this thread and in the threads it starts.

    Adam's moments of words that stop occurring decay into denormals, which x86 CPUs compute about 20 times slower:
    a WikiText-2 run lost a quarter of its speed within 15 minutes. The flag is per thread and OpenMP's workers copy
    it only when they are created, at torch's first parallel operation, so this must run before any."""
    torch.set_flush_denormal(True)


def prepare_process() -> None:
    """What every command starts with, before torch starts its threads (the benchmark scripts too, to time what the
    commands run): denormals flushed, large freed blocks kept for reuse (lstm_lm/hardware/allocator.py)."""
    flush_denormals()
    reuse_large_blocks()
