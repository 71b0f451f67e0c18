"""Record a test's measured figures in ``test-figures.json`` at the repository root.

The file is one JSON object keyed by test id (``T3``, ``T6``…); each call replaces that test's
entry. Writes are atomic (temporary file + ``os.replace``) and serialised by an advisory lock,
so parallel workers never lose each other's figures. The file is git-ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
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
