from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allegiance.kit import clock
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import has_prefix, new_id
from allegiance.kit.money import Rounding, from_minor, round_to_int, to_minor
from allegiance.kit.pagination import decode_cursor, encode_cursor


def test_ids_are_prefixed_unique_and_sortable() -> None:
    ids = [new_id("acc") for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(has_prefix(i, "acc") for i in ids)
    assert ids[0][:14] <= ids[-1][:14]


def test_ids_of_one_thread_sort_in_the_order_they_were_made() -> None:
    """Many ids fall in one millisecond: they still sort in the order they were made (an
    outbox read in id order keeps one transaction's events in order), across prefixes."""
    ids = [new_id("evt") for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    mixed = [new_id(p)[4:] for p in ("acc", "txn", "aud", "out") * 50]
    assert mixed == sorted(mixed)


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    import os

    new_id("acc")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_id("acc") for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    parents = {new_id("acc") for _ in range(50)}
    with os.fdopen(read) as pipe:
        childs = set(pipe.read().split())
    os.waitpid(pid, 0)
    assert len(childs) == 50 and not parents & childs


def test_money_minor_units() -> None:
    assert to_minor("12.34", "USD") == 1234
    assert to_minor("1000", "JPY") == 1000
    assert to_minor("1.234", "KWD") == 1234
    assert from_minor(1234, "USD") == Decimal("12.34")
    with pytest.raises(ValueError):
        to_minor("0.001", "USD")


def test_rounding_policies() -> None:
    assert round_to_int(Decimal("2.7")) == 2
    assert round_to_int(Decimal("2.5"), Rounding.HALF_EVEN) == 2
    assert round_to_int(Decimal("2.5"), Rounding.HALF_UP) == 3
    assert round_to_int(Decimal("2.1"), Rounding.UP) == 3


def test_clock_can_be_frozen_and_moved() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with clock.frozen(at) as c:
        assert clock.now() == at
        c.advance(timedelta(days=1))
        assert clock.now() == at + timedelta(days=1)
    assert clock.now() > at


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor("txn_123")) == "txn_123"
    assert decode_cursor(None) is None
    with pytest.raises(ValidationFailed):
        decode_cursor("%%%")


def test_background_priority_raises_the_niceness_and_never_lowers_it() -> None:
    """In a child process (a raised niceness cannot be lowered again)."""
    import subprocess
    import sys

    code = ("from allegiance.kit import priority; a = priority.background(3); "
            "b = priority.background(1); print(a, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"ALLEGIANCE_BATCH_NICE": "0", "PATH": ""}).stdout
    first, second = (int(x) for x in out.split())
    assert first >= 3 and second == first


def test_background_priority_lowers_threads_started_before_it() -> None:
    """A niceness is per thread on Linux: the pools NumPy, Polars and jemalloc start at import
    time (where a report's heavy work runs) must be lowered too, and later threads too."""
    import os
    import subprocess
    import sys

    if not os.path.isdir("/proc/self/task"):
        pytest.skip("thread niceness is read from Linux's /proc")
    code = (
        "import os, threading\n"
        "gate = threading.Event()\n"
        "early = threading.Thread(target=gate.wait); early.start()\n"
        "from allegiance.kit import priority; priority.background(5)\n"
        "late = threading.Thread(target=gate.wait); late.start()\n"
        "print(os.getpriority(os.PRIO_PROCESS, early.native_id),"
        " os.getpriority(os.PRIO_PROCESS, late.native_id))\n"
        "gate.set()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"ALLEGIANCE_BATCH_NICE": "0", "PATH": ""}).stdout
    early, late = (int(x) for x in out.split())
    assert early >= 5 and late >= 5


_HOG = (
    "import os, sys, time\n"
    "from allegiance.kit import priority\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "if sys.argv[2] == 'background':\n"
    "    priority.background(10)\n"
    "start = float(sys.argv[3])\n"
    "while time.time() < start:\n"
    "    time.sleep(0.005)\n"
    "count = 0\n"
    "while time.time() < start + 1.0:\n"
    "    count += 1\n"
    "print(count)\n"
)


def test_background_work_yields_the_cpu_to_another_session() -> None:
    """With autogroups the CPU is shared between sessions before niceness counts: a report at
    nice 10 in its own session took as much CPU as the API server in another. Two busy loops
    on one CPU, each in a session of its own: the background one must get far less."""
    import os
    import subprocess
    import sys
    import time

    from allegiance.kit import priority

    if priority.autogroup_nice() is None or not hasattr(os, "sched_setaffinity"):
        pytest.skip("Linux autogroups are not enabled here")
    cpu = max(os.sched_getaffinity(0))
    start = str(time.time() + 1.5)
    env = {"ALLEGIANCE_BATCH_NICE": "0", "PATH": ""}
    hogs = [subprocess.Popen([sys.executable, "-c", _HOG, str(cpu), kind, start],
                             stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
            for kind in ("foreground", "background")]
    foreground, background = (int(hog.communicate(timeout=60)[0]) for hog in hogs)
    assert background < 0.5 * foreground, (foreground, background)


def test_background_work_without_a_terminal_leaves_its_parents_session_alone() -> None:
    """A worker started by a supervisor (no terminal) takes a session of its own and lowers
    that; the supervisor's session, which may hold the API, keeps its priority."""
    import subprocess
    import sys

    from allegiance.kit import priority

    if priority.autogroup_nice() is None:
        pytest.skip("Linux autogroups are not enabled here")
    worker = ("import os; from allegiance.kit import priority; priority.background(7); "
              "print(os.getsid(0) == os.getpid(), priority.autogroup_nice())")
    supervisor = (
        "import subprocess, sys; from allegiance.kit import priority\n"
        f"out = subprocess.run([sys.executable, '-c', {worker!r}], capture_output=True,"
        " text=True, check=True).stdout\n"
        "print(out.strip(), priority.autogroup_nice())\n"
    )
    out = subprocess.run([sys.executable, "-c", supervisor], capture_output=True, text=True,
                         check=True, start_new_session=True, stdin=subprocess.DEVNULL,
                         env={"ALLEGIANCE_BATCH_NICE": "0", "PATH": ""}).stdout
    own_session, worker_nice, supervisor_nice = out.split()
    assert own_session == "True" and worker_nice == "7" and supervisor_nice == "0"


def test_run_lowered_works_in_a_lowered_thread_and_leaves_the_caller_as_it_was() -> None:
    """A report copy recomputed inside the API's process runs at background priority in a
    thread of its own; the thread that serves requests keeps its priority."""
    import os
    import threading

    from allegiance.kit import priority

    if not hasattr(os, "getpriority"):
        pytest.skip("no per-thread priority here")
    me = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, me)
    seen = priority.run_lowered(
        lambda: (threading.get_native_id(),
                 os.getpriority(os.PRIO_PROCESS, threading.get_native_id())), niceness=before + 5)
    assert seen[0] != me and seen[1] == before + 5
    assert os.getpriority(os.PRIO_PROCESS, me) == before

    def broken() -> None:
        raise ValueError("report failed")

    with pytest.raises(ValueError, match="report failed"):
        priority.run_lowered(broken, niceness=before + 5)
