"""What CPU this is: its name and feature flags (from /proc/cpuinfo on Linux), and the kernel level torch chose.

Benchmarks print this beside their figures, since the same step runs at very different speeds on an AVX2 laptop,
an AVX-512 server and one with AMX units. The environment variables that make oneDNN, ATen and MKL act as on an
older CPU (scripts/avx2_emulation.sh) are shown too, because /proc/cpuinfo still lists the real CPU's flags.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo flags of CPUs whose matrix units multiply bf16: x86's AMX and AVX512-BF16, Arm's BF16 extension.
BF16_FLAGS = {"x86_64": ("amx_bf16", "avx512_bf16"), "aarch64": ("bf16",)}
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def cpuinfo_fields() -> dict[str, str]:
    """The first processor's `key: value` lines of /proc/cpuinfo; empty where there is none (macOS, Windows)."""
    try:
        text = CPUINFO.read_text(encoding="ascii", errors="ignore")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> set[str]:
    """The CPU's feature flags ('flags' on x86, 'Features' on Arm)."""
    fields = cpuinfo_fields()
    return set((fields.get("flags") or fields.get("Features") or "").split())


def bf16_unit_flags() -> list[str]:
    """The bf16 flags this CPU lists, e.g. ['amx_bf16', 'avx512_bf16']."""
    return [flag for flag in BF16_FLAGS.get(platform.machine(), ()) if flag in cpu_flags()]


def cpu_description() -> dict[str, Any]:
    """What decides the CPU's speed here, for a benchmark's report."""
    fields = cpuinfo_fields()
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "architecture": platform.machine(), "aten_kernels": torch.backends.cpu.get_cpu_capability(),
            "bf16_unit_flags": bf16_unit_flags(), "threads": torch.get_num_threads(),
            "isa_caps": {name: os.environ[name] for name in ISA_CAPS if name in os.environ}}
