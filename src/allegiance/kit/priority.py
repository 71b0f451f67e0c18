"""The CPU priority of background work: batch jobs and reports lower their own process's
priority (``os.nice``) so that, on a machine they share with the API, the operating system
serves the interactive requests first. The work itself is unchanged and still gets every CPU
cycle nobody else wants."""

from __future__ import annotations

import contextlib
import os

from allegiance.kit.settings import get_settings


def background(niceness: int | None = None) -> int:
    """Raise this process's niceness to ``niceness`` (default: ``ALLEGIANCE_BATCH_NICE``),
    never lower it; the niceness now. Where the OS has no ``nice`` it does nothing."""
    target = get_settings().batch_nice if niceness is None else niceness
    if not hasattr(os, "nice"):
        return 0
    current = os.nice(0)
    if target > current:
        with contextlib.suppress(OSError):
            current = os.nice(target - current)
    return current
