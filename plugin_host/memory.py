"""How this process asks the C library for memory on Linux: fewer page faults, no heap fragmentation.

Two settings, both no-ops where they do not apply (other C libraries, other systems):

* :func:`use_huge_pages` asks torch's CPU allocator to back tensors of 2 MiB and more with
  transparent huge pages (its ``THP_MEM_ALLOC_ENABLE`` switch). Torch reads it once, before its
  first allocation, so the CLI calls this before it imports torch. Fewer, larger page faults:
  Gatys at 512² runs ~8 % faster on a 2-core EPYC.
* :func:`large_blocks_mapped` makes glibc give every block of 1 MiB or more its own ``mmap``,
  returned to the system when freed. An L-BFGS run keeps a few MiB of history per step between
  the activations it frees; inside glibc's heap those leave holes the next step's activations do
  not fit in, and at 512² the heap carried 150–390 MiB of such free space.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_M_MMAP_THRESHOLD = -3  # mallopt parameter number, from glibc's malloc.h
_GLIBC_MAX_DYNAMIC_THRESHOLD = 32 << 20  # where glibc's own adaptive threshold stops growing (64-bit)


def use_huge_pages() -> None:
    """Let torch's CPU allocator use transparent huge pages, unless the user set the switch already."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


@contextmanager
def large_blocks_mapped(threshold_mib: float = 1.0) -> Iterator[bool]:
    """Inside the block, glibc serves allocations of ``threshold_mib`` MiB or more with their own mapping.

    Yields whether the setting took effect (glibc only). On exit the threshold becomes 32 MiB, the
    value glibc's adaptive threshold settles at once large blocks have been freed (glibc cannot
    return to adapting once it was set).
    """
    libc = _glibc()
    applied = bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, int(threshold_mib * (1 << 20))))
    try:
        yield applied
    finally:
        if applied and libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MAX_DYNAMIC_THRESHOLD)
