"""T15: kill -9 of the API server under client retry load.

Client threads send earn and redeem requests (``POST /v1/programs/{id}/points``), each with its
own ``Idempotency-Key`` and the same key as memo, to a real uvicorn server process on 127.0.0.1.
The test kills the serving process with SIGKILL, by PID, ``KILLS`` times, each time once the
clients have had a few more answers since the last start (progress, not a timer), and starts a
new one. A request that gets no answer (connection reset, refused, timeout, 5xx) is retried with
the same key and body until it is answered, except every fourth one, which its client abandons
after the first failure: its outcome stays unknown.

Checks, from the database afterwards:

* every acknowledged op (2xx) is present exactly once, as the entry its answer named (100%);
* no op is applied twice (double-applied = 0): one journal entry per key at most;
* refused ops (4xx, e.g. not enough points) are absent;
* every unknown op is applied 0 or 1 times (100% resolved);
* replaying every acknowledged request after the last restart returns the same entry and
  writes nothing; each wallet's balance equals opening + acknowledged + applied unknown ops;
  every ledger invariant holds.

Server restarts: importing the application takes 8-15 s on two busy cores, so 20 cold starts
would not fit a CI run. The server therefore runs under a pre-fork parent
(``tests/reliability/forkserver.py``) that imported it once and forks a fresh server process
per start on the same listening socket, as gunicorn's master does; the killed process is gone
with its connections, transactions and in-process state, as in a real crash. Both engines: a
SQLite file and a PostgreSQL database. kill -9 covers process crashes, not power loss (the
database's fsync settings cover that: SQLite ``synchronous=FULL``, PostgreSQL ``fsync=on``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest
from sqlalchemy import text

from allegiance import ledger, tenants
from allegiance.kit.db import Database
from tests.reliability.harness import engine_name, run_threads
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

KILLS = int(os.environ.get("ALLEGIANCE_T15_KILLS", "20"))
CLIENTS = 4
WALLETS = 6
OPENING = 5_000
ANSWERS_PER_LIFE = 6  # new answers the clients get before the next kill
SEED = int(os.environ.get("ALLEGIANCE_T15_SEED", "15"))
FORKSERVER = Path(__file__).with_name("forkserver.py")


@dataclass
class Op:
    key: str
    wallet_id: str
    kind: str
    amount: int
    abandon: bool
    outcome: str = "unknown"  # acked / refused / unknown
    entry_id: str | None = None
    attempts: int = 0


@dataclass
class Run:
    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: list[Op] = field(default_factory=list)
    answers: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)


class Servers:
    """The pre-fork parent and the server process it currently runs."""

    def __init__(self, url: str, log: Path) -> None:
        self.log = log.open("wb")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.parent = subprocess.Popen([sys.executable, str(FORKSERVER), url], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=self.log, text=True, bufsize=1)
        self.port = int(self._read("port"))
        self.base = f"http://127.0.0.1:{self.port}"
        self.pids: list[int] = []
        self.killed: set[int] = set()

    def _read(self, word: str) -> str:
        stdout: IO[str] | None = self.parent.stdout
        assert stdout is not None
        line = stdout.readline()  # the parent answers every command; EOF means it died
        assert line.startswith(word + " "), f"fork server said {line!r}; see {self.log.name}"
        return line.split()[1]

    def start(self) -> int:
        assert self.parent.stdin is not None
        self.parent.stdin.write("spawn\n")
        self.parent.stdin.flush()
        pid = int(self._read("pid"))
        self.pids.append(pid)
        deadline = time.monotonic() + 120
        while True:  # bounded wait until the new process answers
            try:
                if httpx.get(f"{self.base}/health", timeout=5).status_code == 200:
                    return pid
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"server {pid} did not start"
            time.sleep(0.05)

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self.killed.add(pid)

    def close(self) -> None:
        # Only the server still running: earlier PIDs were reaped and may belong to others now.
        if self.pids and self.pids[-1] not in self.killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pids[-1], signal.SIGKILL)
        if self.parent.poll() is None:
            assert self.parent.stdin is not None
            self.parent.stdin.close()
            try:
                self.parent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.parent.pid, signal.SIGKILL)
                self.parent.wait(timeout=30)
        self.log.close()


@pytest.fixture
def servers(db: Database, tmp_path: Path) -> Iterator[Servers]:
    running = Servers(db.url, tmp_path / "server.log")
    try:
        yield running
    finally:
        running.close()


def _client(i: int, run: Run, base: str, key: str, program_id: str, wallets: list[str]) -> None:
    rng = random.Random(SEED * 100 + i)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=10) as http:
        n = 0
        while not run.stop.is_set():
            n += 1
            op = Op(f"t15-{i}-{n}", rng.choice(wallets), rng.choice(("earn", "earn", "redeem")),
                    rng.randint(1, 200), abandon=n % 4 == 0)
            with run.lock:
                run.ops.append(op)
            body = {"wallet_id": op.wallet_id, "amount": op.amount, "kind": op.kind,
                    "memo": op.key}
            while True:
                op.attempts += 1
                try:
                    response = http.post(f"/v1/programs/{program_id}/points", json=body,
                                         headers={**headers, "Idempotency-Key": op.key})
                except httpx.HTTPError as exc:
                    failure = type(exc).__name__
                else:
                    if response.status_code < 300:
                        op.outcome, op.entry_id = "acked", response.json()["entry"]["id"]
                        break
                    if response.status_code < 500 and response.status_code != 409:
                        op.outcome = "refused"  # a definite answer: nothing was written
                        break
                    failure = str(response.status_code)  # 5xx, or 409 key in flight
                with run.lock:
                    run.failures[failure] += 1
                if op.abandon or run.stop.is_set():
                    break  # the outcome stays unknown
                time.sleep(0.02)  # back-off before a retry, not synchronisation
            if op.outcome != "unknown":
                with run.lock:
                    run.answers += 1


def test_t15_kill_9_of_the_api_server_under_retry_load(
        db: Database, servers: Servers, tmp_path: Path) -> None:
    with db.transaction() as s:
        t = tenants.create_tenant(s, "T15")
        p = tenants.create_program(s, t.id, code="main", name="Main", base_currency="USD")
        u = tenants.create_unit(s, t.id, p.id, code="points", name="Points", kind="points",
                                value_in_base="0.01")
        issued = ledger.program_account(s, t.id, p.id, u.id, "issued")
        wallets = [ledger.wallet(s, t.id, p.id, u.id, "account", f"acc_{k}").id
                   for k in range(WALLETS)]
        for wallet_id in wallets:
            ledger.post_entry(s, t.id, ledger.EntryRequest(
                program_id=p.id, kind="earn", lines=(
                    ledger.Line(issued.id, u.id, ledger.Side.DEBIT, OPENING),
                    ledger.Line(wallet_id, u.id, ledger.Side.CREDIT, OPENING))))
        key = tenants.create_api_key(s, t.id, name="pos", scopes=["integration"]).secret

    run = Run()
    pid = servers.start()
    started = time.monotonic()
    outcomes: list[object] = []

    def client(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        _client(i, run, servers.base, key, p.id, wallets)

    clients = threading.Thread(target=lambda: outcomes.extend(
        run_threads(CLIENTS, client, timeout=280)), daemon=True)
    clients.start()
    kills_done, restart_seconds = 0, []
    try:
        for _ in range(KILLS):
            with run.lock:
                target = run.answers + ANSWERS_PER_LIFE
            deadline = time.monotonic() + 60
            while True:  # bounded wait for progress
                with run.lock:
                    if run.answers >= target:
                        break
                assert time.monotonic() < deadline, f"no progress; see {servers.log.name}"
                time.sleep(0.01)
            servers.kill(pid)
            kills_done += 1
            down = time.monotonic()
            pid = servers.start()
            restart_seconds.append(time.monotonic() - down)
        with run.lock:  # some load on the last server too
            target = run.answers + ANSWERS_PER_LIFE
        deadline = time.monotonic() + 60
        while run.answers < target and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        run.stop.set()
        clients.join(timeout=120)
    assert not clients.is_alive(), "clients did not stop"
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, f"seed {SEED}: {errors[:3]!r}"
    elapsed = time.monotonic() - started

    # Replay every acknowledged request: the same entry, nothing new written.
    acked = [op for op in run.ops if op.outcome == "acked"]
    with httpx.Client(base_url=servers.base, timeout=30) as http:
        for op in acked:
            response = http.post(f"/v1/programs/{p.id}/points", json={
                "wallet_id": op.wallet_id, "amount": op.amount, "kind": op.kind,
                "memo": op.key}, headers={"Authorization": f"Bearer {key}",
                                          "Idempotency-Key": op.key})
            assert response.status_code < 300, (op, response.text)
            assert response.json()["entry"]["id"] == op.entry_id, op

    with db.read() as s:
        applied = Counter(r[0] for r in s.execute(text(
            "SELECT memo FROM journal_entry WHERE tenant_id = :t AND memo LIKE 't15-%'"),
            {"t": t.id}))
        entry_of = {r[0]: r[1] for r in s.execute(text(
            "SELECT memo, id FROM journal_entry WHERE tenant_id = :t AND memo LIKE 't15-%'"),
            {"t": t.id})}
        balances = {w: ledger.balance_of(ledger.get_account(s, t.id, w)).posted for w in wallets}
    unknown = [op for op in run.ops if op.outcome == "unknown"]
    refused = [op for op in run.ops if op.outcome == "refused"]
    acked_present = sum(1 for op in acked if applied[op.key] == 1
                        and entry_of[op.key] == op.entry_id)
    double_applied = sum(1 for n in applied.values() if n > 1)
    refused_present = sum(1 for op in refused if applied[op.key])
    unknown_resolved = sum(1 for op in unknown if applied[op.key] in (0, 1))
    strangers = set(applied) - {op.key for op in run.ops}
    expected = dict.fromkeys(wallets, OPENING)
    for op in run.ops:
        if applied[op.key]:
            expected[op.wallet_id] += op.amount if op.kind == "earn" else -op.amount
    assert kills_done == KILLS
    assert acked_present == len(acked), f"seed {SEED}: acknowledged ops missing"
    assert double_applied == 0 and not strangers
    assert refused_present == 0
    assert unknown_resolved == len(unknown)
    assert balances == expected
    counts = assert_ledger_invariants(db)
    figures.record(
        f"T15.{engine_name(db)}", seed=SEED, kills=kills_done, clients=CLIENTS,
        seconds=round(elapsed, 2), ops=len(run.ops), acked=len(acked), refused=len(refused),
        unknown=len(unknown), unknown_applied=sum(1 for op in unknown if applied[op.key]),
        acked_present_percent=100.0 * acked_present / max(1, len(acked)),
        double_applied=double_applied, unknown_resolved_percent=100.0 * unknown_resolved
        / max(1, len(unknown)), retries=sum(op.attempts - 1 for op in run.ops),
        client_failures=dict(run.failures), replays_identical=len(acked),
        restart_seconds_max=round(max(restart_seconds, default=0.0), 3),
        entries=counts["entries"],
    )

