"""How many CPU threads torch should use, from what the machine has free right now.

The warm server shares a small laptop with GIMP. On a two-core machine with one core busy, two
torch threads ran slower than one (each of torch's parallel regions waits for the thread whose
core is taken; benchmarks/README.md, "threads"), and on an idle one two threads ran faster. So
before each job the server counts the other runnable tasks and leaves their cores to them.
Standard library only.
"""
from __future__ import annotations

import os
import statistics
import time


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def runnable_elsewhere(samples: int = 5, interval_s: float = 0.01) -> float | None:
    """Tasks running or ready to run on the machine besides the caller, a median over a few samples.

    Linux's ``/proc/loadavg`` counts them at this instant (its fourth field, ``running/total``, includes
    the reading thread itself); elsewhere the one-minute load average stands in. None if neither exists.
    """
    counts: list[int] = []
    for index in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as loadavg:
                running = int(loadavg.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            break
        counts.append(running - 1)
        if index + 1 < samples:
            time.sleep(interval_s)
    if counts:
        return float(statistics.median(counts))
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def choose_threads(usable: int, busy_elsewhere: float | None) -> int:
    """Threads for the next job: the usable CPUs others leave free, at least one.

    ``busy_elsewhere`` is what other tasks keep busy (:func:`runnable_elsewhere`); unknown counts as none.
    """
    if busy_elsewhere is None:
        return max(1, usable)
    return max(1, min(usable, usable - round(busy_elsewhere)))


def threads_for_next_job() -> int:
    return choose_threads(usable_cpus(), runnable_elsewhere())
