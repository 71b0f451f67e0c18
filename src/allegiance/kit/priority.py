"""The CPU priority of background work: batch jobs and reports lower their own process's
priority so that, on a machine they share with the API, the operating system serves the
interactive requests first. The work itself is unchanged and still gets every CPU cycle
nobody else wants.

On Linux a niceness belongs to a thread, not to the process: ``os.nice`` in the main thread
leaves the worker threads that NumPy's BLAS, Polars and jemalloc started at import time at
the old priority — and those threads do the heavy part of a report. So every thread of the
process is lowered (``/proc/self/task``), and threads started later inherit the main
thread's niceness.

And a thread's niceness only ranks it among the threads of its own *session*: with
autogroups (``kernel.sched_autogroup_enabled``, on by default in most distributions) the
scheduler first shares the CPU between sessions, each weighted by its autogroup's niceness,
and the API server — a service, a container, a terminal of its own — is always in another
session. A report at nice 10 in its own session took as much CPU as the server (measured:
two busy loops on one CPU in two sessions, nice 0 and nice 19, got 50 % each). So
background work also lowers its session's autogroup (``/proc/self/autogroup``), in a session
of its own where it can take one (see ``_lower_autogroup``)."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from allegiance.kit.settings import get_settings

_TASKS = Path("/proc/self/task")
_AUTOGROUP = Path("/proc/self/autogroup")
_T = TypeVar("_T")


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
        _lower_thread(tid, target)
    _lower_autogroup(target)
    return current


def run_lowered(work: Callable[[], _T], niceness: int | None = None) -> _T:
    """``work()`` in a thread of its own at ``niceness`` (default ``ALLEGIANCE_BATCH_NICE``);
    its result, or its exception. For background work inside the API's process (a report
    copy recomputed after a page's response): the threads that serve requests keep their
    priority, which an unprivileged thread could not get back once lowered. The caller
    waits, idle."""
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def lowered() -> None:
        lower_this_thread(niceness)
        try:
            outcome.append(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=lowered, name="allegiance-background", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def lower_this_thread(niceness: int | None = None) -> None:
    """Raise the calling thread's niceness to ``niceness`` (default
    ``ALLEGIANCE_BATCH_NICE``), never lower it: for a thread that does only background work
    in the API's process (the import worker)."""
    target = get_settings().batch_nice if niceness is None else niceness
    if target > 0 and hasattr(os, "setpriority"):
        _lower_thread(threading.get_native_id(), target)


def _lower_thread(tid: int, target: int) -> None:
    """Raise thread ``tid``'s niceness to ``target``, never lower it (it may end meanwhile)."""
    with contextlib.suppress(OSError):
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)


def autogroup_nice() -> int | None:
    """The niceness of this process's autogroup, or None where there are no autogroups."""
    try:
        return int(_AUTOGROUP.read_text().split()[-1])  # "/autogroup-85 nice 0"
    except (OSError, ValueError, IndexError):
        return None


def _lower_autogroup(target: int) -> None:
    """Raise this session's autogroup niceness to ``target`` (never lower it).

    * A session leader (``setsid``, a systemd service, cron's ``sh -c``): the session is the
      job's own, lower it.
    * No controlling terminal (a worker under a supervisor, a spawned child): start a session
      of our own first (``setsid``; nothing is lost, no terminal sends us signals), so the
      supervisor's session — which may hold the API — keeps its priority. Where that fails
      (a process group leader) the shared session is left alone.
    * A terminal (someone ran ``allegiance report`` by hand): the session is that terminal's;
      ``setsid`` would detach us from its Ctrl-C, so the terminal's session is lowered while
      the command runs and given its niceness back at exit.
    """
    before = autogroup_nice()
    if before is None or before >= target:
        return
    shared = os.getsid(0) != os.getpid()
    if shared and not _has_terminal():
        try:
            os.setsid()
        except OSError:
            return
        shared = False
    try:
        _AUTOGROUP.write_text(str(target))
    except OSError:
        return
    if shared:
        atexit.register(_restore_autogroup, before)


def _restore_autogroup(niceness: int) -> None:
    with contextlib.suppress(OSError):
        _AUTOGROUP.write_text(str(niceness))


def _has_terminal() -> bool:
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _threads() -> list[int]:
    """This process's thread ids (Linux); none elsewhere."""
    try:
        return [int(name) for name in os.listdir(_TASKS)]
    except OSError:
        return []
