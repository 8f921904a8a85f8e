"""Mixed precision: autocast to bf16 (CPU or CUDA) or fp16 (CUDA, with loss scaling); weights stay fp32."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import ContextManager

import torch

from .errors import UserError


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices in hardware (AMX or AVX512-BF16); read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.precision`, or None for plain fp32."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        if device.type != "cuda":
            raise UserError("precision fp16 needs a CUDA device; on a CPU use bf16 (or auto)")
        return torch.float16
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    raise UserError(f"precision {name!r}: expected fp32, bf16, fp16 or auto")


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
