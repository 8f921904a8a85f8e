"""Mixed precision: autocast to bf16 (CPU or CUDA) or fp16 (CUDA, with loss scaling); weights stay fp32.

What runs differs between machines. On the CPU, bf16 needs matrix units for it (AMX or AVX512-BF16 on x86, the
BF16 extension on Arm): without them oneDNN refuses the bf16 LSTM outright ("could not create a primitive
descriptor"). On a GPU, bf16 needs compute capability 8.0 (Ampere); older GPUs emulate it slowly, and fp16 with
loss scaling is what their tensor cores run. `auto` picks, per device, what runs and is fastest there.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Callable, ContextManager

import torch

from ..errors import UserError
from .machine import bf16_unit_flags


@functools.cache
def cpu_bf16_problem() -> str | None:
    """None where the CPU trains in bf16 at hardware speed; otherwise why not, in a few words.

    The flags alone can be wrong: oneDNN may be capped below them (ONEDNN_MAX_CPU_ISA), or a kernel may refuse
    what the flag promises. So where the flags say yes, one tiny LSTM step under bf16 autocast settles it."""
    if not bf16_unit_flags():
        return "this CPU has no bf16 units (AMX or AVX512-BF16)"
    try:
        with torch.random.fork_rng(devices=[]):  # the probe's random weights leave the seeded stream as it was
            lstm = torch.nn.LSTM(8, 8)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output, _ = lstm(torch.randn(2, 2, 8))
            output.float().sum().backward()
    except RuntimeError as error:
        first_sentence = re.split(r"\.\s", str(error), maxsplit=1)[0]
        return f"this CPU lists bf16 units, but its kernels refuse bf16 ({first_sentence})"
    return None


def cuda_problem(dtype: torch.dtype, device: torch.device) -> str | None:
    """None where the GPU runs `dtype` natively; otherwise why not."""
    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        major, minor = torch.cuda.get_device_capability(device)
        return (f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) has no bf16 units; "
                f"bf16 needs 8.0 (Ampere) or newer")
    return None


def precision_problem(dtype: torch.dtype | None, device: torch.device) -> str | None:
    """None where `dtype` (None: fp32) runs natively on `device`; otherwise why not."""
    if dtype is None:
        return None
    if device.type == "cuda":
        return cuda_problem(dtype, device)
    if dtype is torch.float16:
        return "fp16 needs a CUDA device"
    return cpu_bf16_problem()


def fastest_precision(device: torch.device) -> torch.dtype | None:
    """What `auto` means here: bf16 where it runs natively; on GPUs without it, fp16 where tensor cores run it
    (compute capability 7.0: V100, T4); else fp32."""
    if precision_problem(torch.bfloat16, device) is None:
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 7:
        return torch.float16
    return None


def parse_precision(name: str, option: str) -> torch.dtype | None | str:
    """The dtype a precision name asks for (None: fp32), or "auto"."""
    names = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "auto": "auto"}
    if name not in names:
        raise UserError(f"{option} {name!r}: expected fp32, bf16, fp16 or auto")
    return names[name]


def checked_precision(name: str, device: torch.device, option: str) -> tuple[torch.dtype | None, str | None]:
    """The dtype a precision name asks for on `device` (None: fp32; auto: the fastest that runs there), and why
    the device cannot run it natively, if it cannot."""
    dtype = parse_precision(name, option)
    if dtype == "auto":
        return fastest_precision(device), None
    return dtype, precision_problem(dtype, device)


def resolve_precision(name: str, device: torch.device, option: str = "train.precision") -> torch.dtype | None:
    """The autocast dtype for a precision name `option` was given (None: plain fp32). A precision this device
    cannot run natively is refused in one line naming the option."""
    dtype, problem = checked_precision(name, device, option)
    if problem:
        hint = "fp32 or auto" if device.type == "cpu" else "fp16, fp32 or auto"
        raise UserError(f"{option}={name}: {problem}; use {hint}")
    return dtype


def run_precision(name: str, device: torch.device, warn: Callable[[str], None]) -> torch.dtype | None:
    """The precision a run was trained in, for scoring it here: where this device cannot run it, fp32, with a
    warning line (a bf16 run from an AMX server evaluated on a laptop)."""
    dtype, problem = checked_precision(name, device, "train.precision")
    if problem:
        warn(f"warning: the run was trained in {name}, which this machine cannot run ({problem}); scoring in "
             f"fp32")
        return None
    return dtype


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
