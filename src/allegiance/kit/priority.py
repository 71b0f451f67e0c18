"""The CPU priority of background work: batch jobs and reports lower their own process's
priority so that, on a machine they share with the API, the operating system serves the
interactive requests first. The work itself is unchanged and still gets every CPU cycle
nobody else wants.

On Linux a niceness belongs to a thread, not to the process: ``os.nice`` in the main thread
leaves the worker threads that NumPy's BLAS, Polars and jemalloc started at import time at
the old priority — and those threads do the heavy part of a report. So every thread of the
process is lowered (``/proc/self/task``), and threads started later inherit the main
thread's niceness."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from allegiance.kit.settings import get_settings

_TASKS = Path("/proc/self/task")


def background(niceness: int | None = None) -> int:
    """Raise the niceness of this process's threads to ``niceness`` (default:
    ``ALLEGIANCE_BATCH_NICE``), never lower it; the calling thread's niceness now. Where
    the OS has no ``nice`` it does nothing."""
    target = get_settings().batch_nice if niceness is None else niceness
    if not hasattr(os, "nice"):
        return 0
    current = os.nice(0)
    if target > current:
        with contextlib.suppress(OSError):
            current = os.nice(target - current)
    for tid in _threads():
        with contextlib.suppress(OSError):  # a thread may end meanwhile
            if os.getpriority(os.PRIO_PROCESS, tid) < target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
    return current


def _threads() -> list[int]:
    """This process's thread ids (Linux); none elsewhere."""
    try:
        return [int(name) for name in os.listdir(_TASKS)]
    except OSError:
        return []
