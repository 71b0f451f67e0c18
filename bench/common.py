"""Shared benchmark plumbing: timing, result lines, JSON results and throwaway databases."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from allegiance.kit.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = os.environ.get("ALLEGIANCE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# ---------------------------------------------------------------------------------------------
# Timing and results


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (wall clock) and its return value."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


@dataclass
class Figure:
    """One measured rate, optionally compared with a limit against a goal ratio."""

    name: str
    engine: str
    count: int
    seconds: float
    limit_name: str | None = None
    limit_rate: float | None = None
    goal: float | None = None  # the ratio rate/limit must be >= goal
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    @property
    def ratio(self) -> float | None:
        if self.limit_rate is None or self.limit_rate <= 0:
            return None
        return self.rate / self.limit_rate

    @property
    def passed(self) -> bool | None:
        if self.goal is None or self.ratio is None:
            return None
        return self.ratio >= self.goal

    def line(self) -> str:
        parts = [self.name, f"engine={self.engine}", f"rate={self.rate:.0f}/s"]
        if self.limit_name is not None and self.limit_rate is not None:
            parts.append(f"limit={self.limit_name}:{self.limit_rate:.0f}/s")
            parts.append(f"ratio={self.ratio:.2f}")
        if self.goal is not None:
            parts.append(f"goal=>={self.goal:g}")
            parts.append("PASS" if self.passed else "FAIL")
        if self.note:
            parts.append(f"({self.note})")
        return " ".join(parts)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(rate=self.rate, ratio=self.ratio, passed=self.passed)
        return data


@dataclass
class Check:
    """A correctness check; a benchmark whose answer is wrong fails whatever its speed."""

    name: str
    engine: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"check.{self.name} engine={self.engine} {'PASS' if self.ok else 'FAIL'}" + (
            f" ({self.detail})" if self.detail else ""
        )


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_end": os.getloadavg(),
    }
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_kb"] = int(line.split()[1])
                break
    with contextlib.suppress(psycopg.Error), psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        info["postgres"] = row[0] if row else None
    return info


def version() -> dict[str, Any]:
    from importlib.metadata import version as dist_version

    out: dict[str, Any] = {"allegiance": dist_version("allegiance")}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            timeout=10, check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()
        out["git"] = rev + ("-dirty" if dirty else "")
    return out


def write_results(
    name: str, params: dict[str, Any], figures: list[Figure], checks: list[Check]
) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    payload = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(),
        "version": version(),
        "machine": machine(),
        "params": params,
        "figures": [f.as_json() for f in figures],
        "checks": [asdict(c) for c in checks],
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Databases


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def pg_url(name: str) -> str:
    base, _, _ = PG_ADMIN.rpartition("/")
    return f"{base}/{name}"


def create_pg_database(template: str | None = None) -> str:
    name = f"allegiance_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Databases:
    """Fresh migrated databases of one engine, copied from a template built once by the
    migrations (a SQLite file; a PostgreSQL template database). Everything is removed on
    ``close()``."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self._dir = Path(tempfile.mkdtemp(prefix="allegiance-bench-"))
        self._pg: list[str] = []
        self._template: str | None = None

    def _build_template(self) -> str:
        if self.engine == "sqlite":
            path = self._dir / "template.db"
            upgrade(f"sqlite:///{path}")
            return str(path)
        name = create_pg_database()
        self._pg.append(name)
        upgrade(pg_url(name))
        return name

    def new(self) -> str:
        """The URL of a new, empty, migrated database."""
        if self._template is None:
            self._template = self._build_template()
        if self.engine == "sqlite":
            target = self._dir / f"bench-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(self._template, target)
            return f"sqlite:///{target}"
        name = create_pg_database(self._template)
        self._pg.append(name)
        return pg_url(name)

    def close(self) -> None:
        for name in reversed(self._pg):
            with contextlib.suppress(psycopg.Error):
                drop_pg_database(name)
        self._pg.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def databases(engine: str) -> Iterator[Databases]:
    dbs = Databases(engine)
    try:
        yield dbs
    finally:
        dbs.close()


Rows = Iterable[tuple[str, Sequence[str], Iterable[Sequence[Any]]]]


def bulk_load(engine: str, url: str, tables: Rows, *,
              trigger_aside: str | Sequence[str] | None = None, before: Sequence[str] = (),
              after: Sequence[str] = (), analyze: str = "") -> None:
    """Load ``(table, columns, rows)`` with the driver in one transaction, constraint checks
    off (the benchmarks' rows are consistent by construction): SQLite ``executemany`` with
    ``foreign_keys`` off, PostgreSQL ``COPY`` in replica mode (no triggers). On SQLite the
    trigger(s) ``trigger_aside`` are dropped for the load and put back. ``before``/``after``:
    statements run first/last in the same transaction (triggers still aside: ``after`` can
    build what they would have kept). Then ``ANALYZE`` (PostgreSQL: ``VACUUM ANALYZE
    analyze``)."""
    if engine == "sqlite":
        lite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            lite.execute("PRAGMA journal_mode = WAL")
            lite.execute("PRAGMA synchronous = OFF")
            lite.execute("PRAGMA foreign_keys = OFF")
            lite.execute("BEGIN IMMEDIATE")
            names = [trigger_aside] if isinstance(trigger_aside, str) else list(trigger_aside or ())
            triggers = []
            for name in names:
                (trigger,) = lite.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                                          "AND name = ?", (name,)).fetchone()
                triggers.append(trigger)
                lite.execute(f"DROP TRIGGER {name}")
            for statement in before:
                lite.execute(statement)
            for table, cols, rows in tables:
                lite.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                                 f"({', '.join('?' for _ in cols)})", rows)
            for statement in after:
                lite.execute(statement)
            for trigger in triggers:
                lite.execute(trigger)
            lite.execute("COMMIT")
            lite.execute("ANALYZE")
            lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            lite.close()
        return
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        with pg.transaction(), pg.cursor() as cur:
            cur.execute("SET LOCAL session_replication_role = replica")  # no triggers
            for statement in before:
                cur.execute(statement)
            for table, cols, rows in tables:
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
            for statement in after:
                cur.execute(statement)
        pg.autocommit = True
        pg.execute(f"VACUUM ANALYZE {analyze}".strip())
