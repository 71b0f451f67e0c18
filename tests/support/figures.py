"""Record a test's measured figures in ``test-figures.json`` at the repository root.

The file is one JSON object keyed by test id (``T3``, ``T6``…); each call replaces that test's
entry. At the end of a pytest run, :func:`summarize_run` adds ``"_run"``: when the run started
and ended, its exit status, which entries it recorded, which RELIABILITY.md tests (T1–T32)
they cover, and which of those recorded nothing in this run (the file keeps older entries, so
``_run`` is what tells this run's figures from earlier ones). Writes are atomic (temporary file + ``os.replace``) and serialised by an advisory lock,
so parallel workers never lose each other's figures. The file is git-ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIGURES = Path(os.environ.get("ALLEGIANCE_FIGURES_FILE", ROOT / "test-figures.json"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # The lock lives in the temp directory, so the checkout gains no untracked file.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"allegiance-figures-{digest}.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(test_id: str, **figures: Any) -> dict[str, Any]:
    """Store ``figures`` under ``test_id`` (with a UTC timestamp); returns what was stored."""
    entry = {**figures, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path = FIGURES
    with _locked(path):
        data = _load(path)
        data[test_id] = entry
        fd, tmp = tempfile.mkstemp(prefix=".figures-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=2, sort_keys=True, default=str)
                out.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return entry


def read(test_id: str) -> dict[str, Any] | None:
    entry = _load(FIGURES).get(test_id)
    return entry if isinstance(entry, dict) else None


RUN_KEY = "_run"
T_TESTS = [f"T{n}" for n in range(1, 33)]
_T_ID = re.compile(r"^[tT](\d+)(p?)(?:[._]|$)")


def t_test_of(entry_id: str) -> str | None:
    """``T13.sqlite`` → ``T13``; ``t29.audit_coverage`` → ``T29``; ``T3p`` → ``T3p``."""
    match = _T_ID.match(entry_id)
    return f"T{int(match.group(1))}{match.group(2)}" if match else None


def summarize_run(started_at: str, exit_status: int) -> dict[str, Any]:
    """Write ``_run`` for the pytest run that started at ``started_at`` (ISO, UTC, seconds)."""
    path = FIGURES
    with _locked(path):
        data = _load(path)
        recorded = sorted(k for k, v in data.items() if k != RUN_KEY and isinstance(v, dict)
                          and str(v.get("recorded_at", "")) >= started_at)
        ran = sorted({t for k in recorded if (t := t_test_of(k))},
                     key=lambda t: (int(t[1:].rstrip("p")), t))
        covered = {t.rstrip("p") for t in ran}
        entry = {
            "started_at": started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exit_status": exit_status, "recorded": recorded, "t_tests_ran": ran,
            "t_tests_not_recorded": [t for t in T_TESTS if t not in covered],
        }
        if not recorded and not path.exists():
            return entry  # a run that measured nothing leaves no file behind
        data[RUN_KEY] = entry
        fd, tmp = tempfile.mkstemp(prefix=".figures-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=2, sort_keys=True, default=str)
                out.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return entry
