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

Both savings cost time (a page fault per 4 KiB of every large block), so they are a decision:
:func:`spend_memory` says, from ``--memory auto|low|high`` and the memory available, whether a
run takes the fast path instead, where :func:`heap_kept` keeps even the largest blocks' pages.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # mallopt parameter numbers, from glibc's malloc.h
_GLIBC_MMAP_MAX = 65536  # glibc's default cap on blocks mapped at once
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


#: How long ``Session.run`` leaves the heap kept after a run with memory to spend (:func:`heap_kept`'s
#: ``linger_s``): long enough for the next filter a GIMP user applies, short enough to give the memory back.
HEAP_LINGER_S = 60.0

_heap_kept_lock = threading.Lock()
_heap_kept_depth = 0  # nested or concurrent heap_kept blocks; the outermost one sets and restores
_heap_kept_set = False  # glibc's settings are ours (inside a block, or lingering after one)
_heap_release: threading.Timer | None = None  # the lingering heap's release, pending
_heap_kept_blocks = 0  # blocks begun so far: a release timed after one is void once another began


@contextmanager
def heap_kept(linger_s: float = 0.0) -> Iterator[bool]:
    """Inside the block, glibc maps no block of its own and keeps freed memory in its heap.

    glibc maps every block over 32 MiB (at 512² VGG's first activations are 64 MiB, a 1024² picture
    through a style network's first layers 128 MiB) and unmaps it when freed, so every optimisation
    step, and every layer of a forward pass, faults in and zeroes those pages again. Kept in the heap,
    the next tensor reuses the last one's pages: faster, at the cost of the heap's free space staying
    resident until the block ends (then it is trimmed). Blocks may nest; the outermost one restores
    glibc's settings. With ``linger_s``, the heap stays as it is that long after the outermost block
    and is trimmed in the background unless another block begins first: a warm process restyling
    again soon reuses the pages it faulted in (a 1024² style network: about 0.2 s a call on a 2-core
    EPYC). Yields whether the setting took effect.
    """
    global _heap_kept_depth, _heap_kept_set, _heap_release, _heap_kept_blocks
    libc = _glibc()
    with _heap_kept_lock:
        _heap_kept_depth += 1
        _heap_kept_blocks += 1
        if _heap_release is not None:
            _heap_release.cancel()
            _heap_release = None
        if libc is not None and not _heap_kept_set:
            _heap_kept_set = bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
        applied = _heap_kept_set
    try:
        yield applied
    finally:
        with _heap_kept_lock:
            _heap_kept_depth -= 1
            if _heap_kept_depth == 0 and _heap_kept_set:
                if linger_s > 0:
                    _heap_release = threading.Timer(linger_s, _release_after, args=(_heap_kept_blocks,))
                    _heap_release.daemon = True
                    _heap_release.start()
                else:
                    _restore_heap()


def release_lingering_heap() -> None:
    """Trim a heap that :func:`heap_kept` left lingering and restore glibc's settings now (a no-op inside a
    block, or when nothing lingers): before a run that must stay lean."""
    global _heap_release
    with _heap_kept_lock:
        if _heap_release is not None:
            _heap_release.cancel()
            _heap_release = None
        if _heap_kept_depth == 0 and _heap_kept_set:
            _restore_heap()


def _release_after(blocks: int) -> None:
    """The lingering release, unless a block began since it was timed."""
    global _heap_release
    with _heap_kept_lock:
        if blocks == _heap_kept_blocks and _heap_kept_depth == 0 and _heap_kept_set:
            _heap_release = None
            _restore_heap()


def _restore_heap() -> None:
    """glibc's own settings back and the heap's free pages returned; the caller holds the lock."""
    global _heap_kept_set
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _GLIBC_MAX_DYNAMIC_THRESHOLD)  # glibc's own pairing
        libc.malloc_trim(0)
    _heap_kept_set = False


# -- spending memory for speed ------------------------------------------------------------------

MEMORY_CHOICES = ("auto", "low", "high")
#: ``auto`` spends memory for speed when at least this much is available to the process. At 512² the
#: fast path of a Gatys run needs about 0.5 GiB more than the lean one (the heap keeps its free
#: space, the max-pools their indices); 4 GiB leaves room for GIMP and the rest of the desktop.
AMPLE_MEMORY_MIB = 4096


def available_memory_mib() -> float | None:
    """Memory the system could give this process without swapping (``MemAvailable``), in MiB; None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unix systems: free pages only (a lower bound: caches not counted)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (AttributeError, ValueError, OSError):
        return None


def spend_memory(choice: str, available_mib: float | None = None) -> bool:
    """Whether to trade memory for speed: ``high`` yes, ``low`` no, ``auto`` when :data:`AMPLE_MEMORY_MIB`
    or more is available (``available_mib``, else :func:`available_memory_mib`; unknown counts as scarce)."""
    if choice not in MEMORY_CHOICES:
        raise ValueError(f"memory: expected one of {MEMORY_CHOICES}, got {choice!r}")
    if choice != "auto":
        return choice == "high"
    available = available_memory_mib() if available_mib is None else available_mib
    return available is not None and available >= AMPLE_MEMORY_MIB
