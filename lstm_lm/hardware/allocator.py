"""Keeping the C allocator from handing large tensors back to the operating system after every step.

glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh mapping and unmaps it on free.
A training step allocates and frees several blocks larger than that (WikiText-2's 33,278 x 650 embedding
gradient is 86 MB), so every step the kernel would hand out fresh zeroed pages whose first writes fault. Served
from the heap and never trimmed, freed blocks are reused by later steps; the process keeps its peak heap size.
What it gained is in docs/performance.md ("The allocator").
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def reuse_large_blocks() -> bool:
    """Serve every allocation from the heap (no mmap) and never give the heap's top back; True if applied.
    A no-op returning False where the C library is not glibc (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)  # the symbols already in this process, the C library's among them: nothing to search
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    # mallopt returns 1 on success; the trim threshold is an int, so its largest value means "never".
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
