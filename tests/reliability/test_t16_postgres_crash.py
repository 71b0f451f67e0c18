"""T16: PostgreSQL crash (``pg_ctl stop -m immediate``) mid-load; WAL recovery keeps every
acknowledged commit and every invariant.

The shared server other tests use is never touched: the test makes a private cluster
(``initdb`` into a temporary directory, a free port on 127.0.0.1, ``fsync=on`` as by default),
migrates it, and runs earn writers (the service layer, one entry per transaction, each with its
own business key) as the application role under row-level security. Each crash comes once the
writers have had a few more commits acknowledged (progress, not a timer): ``pg_ctl stop -m
immediate`` (every server process is SIGQUIT-killed, no checkpoint), then ``pg_ctl start``
replays the WAL. A writer whose commit got no answer retries the same business key until it
is answered: ``created`` says whether the first attempt had been committed (an unknown op
applied once) or not (applied 0 times, now applied by the retry).

Checks: acknowledged-but-missing = 0 (each acknowledged key present, as the entry its commit
returned), no key twice, unknown ops resolved to 0 or 1 prior application, each wallet's
balance equals the opening plus every op once, the ledger invariants (balanced journals,
gapless numbers, hash chain, …) hold after every recovery. Figures: crashes, ops, recovery
time (start command until the first query answers).

Size: CI 2 crashes (≈ 15 s); nightly (``ALLEGIANCE_NIGHTLY=1``) 10; ``ALLEGIANCE_T16_CRASHES``
overrides. Needs PostgreSQL's server binaries (``initdb``, ``pg_ctl``); as root they run as the
``postgres`` OS user (``runuser``), as PostgreSQL refuses to run as root. Without them the test
is skipped with the reason, or fails when ``ALLEGIANCE_REQUIRE_POSTGRES_CRASH=1``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from allegiance import ledger
from allegiance.kit.db import Database
from allegiance.kit.migrate import grant_app_role, upgrade
from tests.conftest import World, build_world
from tests.reliability.harness import run_threads
from tests.support import databases, figures
from tests.support.invariants import assert_ledger_invariants

NIGHTLY = os.environ.get("ALLEGIANCE_NIGHTLY") == "1"
CRASHES = int(os.environ.get("ALLEGIANCE_T16_CRASHES", "10" if NIGHTLY else "2"))
WRITERS = 4
WALLETS = 8
COMMITS_PER_LIFE = 40  # acknowledged commits between two crashes
SEED = int(os.environ.get("ALLEGIANCE_T16_SEED", "16"))


def _bin_dir() -> Path | None:
    candidates = [os.environ.get("ALLEGIANCE_PG_BIN", ""), "/usr/lib/postgresql/15/bin"]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True,
                                             text=True, timeout=30).stdout.strip())
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (
                Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("ALLEGIANCE_REQUIRE_POSTGRES_CRASH") == "1":
        pytest.fail(f"ALLEGIANCE_REQUIRE_POSTGRES_CRASH=1 but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A private PostgreSQL cluster in a temporary directory."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.as_user: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="allegiance-t16-"))
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                owner = None
            if runuser is None or owner is None:
                shutil.rmtree(self.dir, ignore_errors=True)
                _unavailable("running as root without runuser or a postgres OS user "
                             "(initdb refuses root)")
            assert owner is not None and runuser is not None
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.as_user = [runuser, "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout}\n{done.stderr}"

    def init(self) -> None:
        # --no-sync only skips initdb's own flush of the template files; the server below runs
        # with fsync=on, and the crashes are process crashes, not power loss.
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> float:
        """Start (recovering from the WAL after a crash); seconds until a query answers."""
        began = time.monotonic()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                   "-c max_connections=40 -c fsync=on -c synchronous_commit=on")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.dir / "server.log"), "-w", "-t", "120", "start")
        deadline = time.monotonic() + 120
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return time.monotonic() - began
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the private cluster did not come back"
                time.sleep(0.05)

    def crash(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")

    def log_tail(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl) found; set "
                     "ALLEGIANCE_PG_BIN")
    assert bin_dir is not None
    private = Cluster(bin_dir)
    try:
        private.init()
        private.start()
        with psycopg.connect(private.url, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "allegiance"')
        private.url = private.url.rpartition("/")[0] + "/allegiance"
        upgrade(private.url)
        grant_app_role(private.url)
        yield private
    finally:
        private.stop()
        shutil.rmtree(private.dir, ignore_errors=True)


@dataclass
class Load:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # key->entry,wallet,n
    unknown: dict[str, bool] = field(default_factory=dict)  # key -> applied before its retry
    commits: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)


def _writer(i: int, world: World, wallets: list[str], load: Load) -> None:
    rng = random.Random(SEED * 100 + i)
    n = 0
    while not load.stop.is_set():
        n += 1
        key, wallet_id, amount = f"t16-{i}-{n}", rng.choice(wallets), rng.randint(1, 500)
        failed = False
        deadline = time.monotonic() + 180
        while True:
            try:
                result = world.earn(wallet_id, amount, key=key)
                break
            except DBAPIError as exc:  # the server went away: the outcome is unknown
                failed = True
                with load.lock:
                    load.errors[type(getattr(exc, "orig", exc)).__name__] += 1
                assert time.monotonic() < deadline, f"writer {i} could not reach the server"
                time.sleep(0.05)  # back-off before retrying the same key
        with load.lock:
            load.acked[key] = (result.entry_id, wallet_id, amount)
            load.commits += 1
            if failed:
                load.unknown[key] = not result.created


@pytest.mark.timeout(1200 if NIGHTLY else 300)
def test_t16_postgres_crash_mid_load_keeps_acknowledged_commits(cluster: Cluster) -> None:
    db = Database(databases.app_role_url(cluster.url))
    try:
        _crash_run(cluster, db)
    finally:
        db.dispose()


def _crash_run(cluster: Cluster, db: Database) -> None:
    world = build_world(db)
    wallets = [world.wallet(f"acc_{k}") for k in range(WALLETS)]
    load = Load()
    outcomes: list[object] = []

    def writer(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        _writer(i, world, wallets, load)

    threads = threading.Thread(target=lambda: outcomes.extend(
        run_threads(WRITERS, writer, timeout=1100 if NIGHTLY else 280)), daemon=True)
    started = time.monotonic()
    threads.start()
    recovery: list[float] = []
    missing_after: list[int] = []
    try:
        for _ in range(CRASHES):
            with load.lock:
                target = load.commits + COMMITS_PER_LIFE
            deadline = time.monotonic() + 120
            while load.commits < target:  # bounded wait for progress
                assert time.monotonic() < deadline, f"no progress\n{cluster.log_tail()}"
                time.sleep(0.01)
            with load.lock:
                acked_before = dict(load.acked)
            cluster.crash()
            recovery.append(cluster.start())
            missing_after.append(_missing(cluster.url, acked_before))
        with load.lock:
            target = load.commits + COMMITS_PER_LIFE
        deadline = time.monotonic() + 120
        while load.commits < target and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        load.stop.set()
        threads.join(timeout=240)
    assert not threads.is_alive(), "writers did not stop"
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, f"seed {SEED}: {errors[:3]!r}\n{cluster.log_tail()}"
    elapsed = time.monotonic() - started

    assert missing_after == [0] * CRASHES, f"acknowledged commits lost: {missing_after}"
    with db.read() as s:
        rows = s.execute(text("SELECT entry_key, id FROM journal_entry WHERE tenant_id = :t "
                              "AND entry_key LIKE 't16-%'"), {"t": world.tenant_id}).all()
        balances = {w: ledger.balance_of(ledger.get_account(s, world.tenant_id, w)).posted
                    for w in wallets}
    per_key = Counter(key for key, _ in rows)
    entry_of = dict(rows)
    missing = [k for k, (entry_id, _, _) in load.acked.items() if entry_of.get(k) != entry_id]
    assert not missing, f"seed {SEED}: acknowledged but missing: {missing[:5]}"
    assert max(per_key.values()) == 1 and set(per_key) == set(load.acked)
    expected = Counter[str]()
    for _, wallet_id, amount in load.acked.values():
        expected[wallet_id] += amount
    assert balances == {w: expected[w] for w in wallets}
    counts = assert_ledger_invariants(db)
    figures.record(
        "T16", engine="postgres", nightly=NIGHTLY, seed=SEED, crashes=CRASHES,
        writers=WRITERS, ops=len(load.acked), acked_but_missing=len(missing),
        acked_missing_after_each_recovery=missing_after,
        unknown=len(load.unknown), unknown_applied_before_retry=sum(load.unknown.values()),
        double_applied=sum(1 for v in per_key.values() if v > 1), invariant_violations=0,
        recovery_seconds=[round(r, 3) for r in recovery],
        recovery_seconds_max=round(max(recovery, default=0.0), 3),
        client_errors=dict(load.errors), seconds=round(elapsed, 2), entries=counts["entries"],
    )


def _missing(url: str, acked: dict[str, tuple[str, str, int]]) -> int:
    """Right after recovery, as the owner: how many acknowledged entries are gone."""
    with psycopg.connect(url) as conn:
        present = {r[0] for r in conn.execute(
            "SELECT id FROM journal_entry WHERE entry_key LIKE 't16-%'")}
    return sum(1 for entry_id, _, _ in acked.values() if entry_id not in present)
