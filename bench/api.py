"""``python -m bench api``: the HTTP API under load, against the same server's trivial endpoint.

Per engine, one fresh migrated database (a tenant, the bench program of ``bench.imports`` —
two rules, one with a monthly cap — 1,000 members, an admin key), and the real server
(``allegiance serve --no-access-log``, uvicorn, ``--api-workers`` processes) bound to
127.0.0.1 on a free port, started as a child process in a session of its own and killed with
its workers (its process group) at the end. The
load comes from ``bench.api_load`` (raw asyncio sockets, keep-alive) in a process of its own;
every load is bounded in time and count.

* ``api.events``: ``POST /v1/programs/{id}/events`` (1–3 lines, an ``Idempotency-Key``) at R
  requests/s offered, **open loop** (requests are sent on schedule whatever the answers; a
  latency is measured from the scheduled time, so a slow server cannot hide its queue) for D
  seconds. Goal: p99 ≤ 25 ms and 0 errors (R = 500, D = 20; ``--quick`` D = 5).
* ``api.events.peak``: closed loop, 50 connections, D seconds; goal ≥ 0.25× the rate of
  ``GET /health`` measured the same way in the same run.
* ``api.balance``: ``GET /v1/wallets/{id}`` closed loop, goal ≥ 0.6× ``/health``; and
  ``api.balance.latency``: open loop at 1,000 requests/s, goal p99 ≤ 10 ms.
* ``api.durable``: the events closed loop of the durable server (PostgreSQL
  ``synchronous_commit=on``, SQLite ``synchronous=FULL``, the defaults) against a server whose
  database does not wait for the disk (``synchronous_commit=off``; SQLite
  ``synchronous=NORMAL``), on a fresh database of the same content; goal ≥ 0.7×.

Correctness after the load: one stored event per 201 answer; ``ledger.reconcile`` finds no
mismatch; resending 50 events with their ``Idempotency-Key`` answers 200 and adds no event
and no entry.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from allegiance import events, ledger, members, tenants
from allegiance.kit.db import Database
from bench.api_load import GRACE
from bench.common import Check, Figure, databases, postgres_available, write_results
from bench.imports import N_MEMBERS, setup

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(url: str, workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """A served API on a free port (yields its base URL); killed by PID on exit. Its output
    goes to a temporary log, kept (and named on stderr) only when it holds a traceback."""
    port = free_port()
    env = {**os.environ, "ALLEGIANCE_RATE_LIMIT_PER_MINUTE": "0",
           "ALLEGIANCE_IMPORT_WORKER": "none", **(env or {})}
    fd, log_name = tempfile.mkstemp(prefix="allegiance-api-server-", suffix=".log")
    with os.fdopen(fd, "w+b") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", "from allegiance.cli import main; main()", "serve",
             "--host", "127.0.0.1", "--port", str(port), "--database-url", url,
             "--workers", str(workers), "--no-access-log"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            for _ in range(600):  # 60 s at most
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/health",
                                 timeout=1).status_code == 200:
                        break
                if child.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(
                        f"the server did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.1)
            else:
                raise RuntimeError("the server did not answer in 60 s")
            yield f"http://127.0.0.1:{port}"
        finally:
            # The server's own process group (its uvicorn workers with it): a worker left
            # running would go on storing the requests queued in it after the count.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            log.seek(0)
            text = log.read().decode(errors="replace")
    if "Traceback" in text:  # a 500 answer: keep the server's log to read
        print(f"bench api: the server logged errors, see {log_name}", file=sys.stderr)
    else:
        os.unlink(log_name)


def load(base: str, job: dict[str, Any]) -> dict[str, Any]:
    """Run one load against ``base`` in the generator's own process (``bench.api_load``);
    its JSON result."""
    host, _, port = base.removeprefix("http://").partition(":")
    job = {"host": host, "port": int(port), **job}
    answer = subprocess.run(
        [sys.executable, "-m", "bench.api_load"], input=json.dumps(job), capture_output=True,
        text=True, cwd=ROOT, timeout=float(job["seconds"]) + GRACE + 60, check=False)
    if answer.returncode != 0:
        raise RuntimeError(f"the load generator failed: {answer.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return result


class Target:
    """One database with the bench program, an admin key and the wallets read by the loads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tenant = setup(url)
        db = Database(url)
        try:
            with db.transaction() as s:
                self.key = tenants.create_api_key(s, self.tenant, name="bench",
                                                  scopes=["admin"]).secret
                program = tenants.program_by_code(s, self.tenant, "main")
                self.program_id = program.id
                unit = tenants.unit_by_code(s, self.tenant, program.id, "points")
                ids = [members.find_account(s, self.tenant, member_number=f"{n:05d}").id
                       for n in range(0, N_MEMBERS, 10)]
                self.wallets = [ledger.wallet(s, self.tenant, program.id, unit.id, "account",
                                              i).id for i in ids]
        finally:
            db.engine.dispose()

    def events(self, prefix: str) -> dict[str, Any]:
        return {"kind": "event", "program_id": self.program_id, "key": self.key,
                "prefix": prefix, "members": N_MEMBERS}

    def balances(self) -> dict[str, Any]:
        return {"kind": "balance", "wallets": self.wallets, "key": self.key}

    def counts(self) -> tuple[int, int, int]:
        db = Database(self.url)
        try:
            with db.read() as s:
                n_events = s.scalar(select(func.count()).select_from(events.Event)) or 0
                n_entries = s.scalar(select(func.count()).select_from(
                    ledger.JournalEntry)) or 0
                _, mismatches = ledger.reconcile(s)
            return int(n_events), int(n_entries), len(mismatches)
        finally:
            db.engine.dispose()


HEALTH = {"kind": "health"}


def _phase(engine: str, name: str) -> None:
    print(f"bench api [{engine}]: {name}", file=sys.stderr, flush=True)


def _latency_line(name: str, engine: str, result: dict[str, Any], goal_ms: float,
                  workers: int) -> tuple[str, bool]:
    worst = result["p99_ms"] if result["p99_ms"] is not None else float("inf")
    passed = worst <= goal_ms and result["errors"] == 0
    return (f"{name} engine={engine} offered={result['rate']:g}/s for {result['seconds']:g}s "
            f"answered={result['answered']} p50={result['p50_ms']}ms p99={worst:.1f}ms "
            f"max={result['max_ms']}ms errors={result['errors']} workers={workers} "
            f"goal=p99<={goal_ms:g}ms,0 errors {'PASS' if passed else 'FAIL'}"), passed


def created(*results: dict[str, Any]) -> int:
    return sum(int(r["statuses"].get("201", 0)) for r in results)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-seconds", type=float, default=None,
                        help="seconds per load (default 20; quick 5)")
    parser.add_argument("--api-rate", type=int, default=None,
                        help="events/s offered, open loop (default 500)")
    parser.add_argument("--api-balance-rate", type=int, default=None,
                        help="balance reads/s offered, open loop (default 1000)")
    parser.add_argument("--api-workers", type=int, default=None,
                        help="server worker processes (default: as `allegiance serve`)")


def _engine(engine: str, args: argparse.Namespace, figures: list[Figure],
            checks: list[Check], lines: list[str], raw: dict[str, Any]) -> bool:
    """The loads of one engine. A server that falls behind an open loop keeps working
    through the requests queued in it after the client gave up, so every open loop gets a
    server of its own (started on the same database, killed after the load), and the closed
    loops (at most 50 requests in flight) run first on another."""
    seconds = args.api_seconds or (5.0 if args.quick else 20.0)
    rate = args.api_rate or 500
    balance_rate = args.api_balance_rate or 1000
    workers = args.api_workers or 1
    closed = {"mode": "closed", "connections": 50, "seconds": seconds}
    warm = {**closed, "request": HEALTH, "seconds": 1.0}
    ok = True
    with databases(engine) as dbs:
        target = Target(dbs.new())
        relaxed_target = Target(dbs.new())
        _phase(engine, f"closed loops ({workers} workers): /health, events, balance")
        with server(target.url, workers) as base:
            load(base, warm)
            health = load(base, {**closed, "request": HEALTH})
            peak = load(base, {**closed, "request": target.events("pk")})
            balance = load(base, {**closed, "request": target.balances()})
        figures.append(Figure("api.events.peak", engine, created(peak), peak["elapsed"],
                              "trivial:/health", health["rate"], 0.25,
                              note=f"50 connections, {peak['errors']} errors, "
                                   f"p50 {peak['p50_ms']} ms, {workers} workers"))
        figures.append(Figure("api.balance", engine, balance["answered"] - balance["errors"],
                              balance["elapsed"], "trivial:/health", health["rate"], 0.6,
                              note=f"50 connections, {balance['errors']} errors, "
                                   f"{workers} workers"))
        _phase(engine, f"api.balance.latency (open loop, {balance_rate}/s)")
        with server(target.url, workers) as base:
            load(base, warm)
            balance_open = load(base, {"mode": "open", "rate": balance_rate,
                                       "seconds": seconds, "request": target.balances()})
        line, passed = _latency_line("api.balance.latency", engine, balance_open, 10, workers)
        lines.append(line)
        ok = ok and passed
        _phase(engine, f"api.events (open loop, {rate}/s)")
        with server(target.url, workers) as base:
            load(base, warm)
            events_open = load(base, {"mode": "open", "rate": rate, "seconds": seconds,
                                      "request": target.events("ev")})
        line, passed = _latency_line("api.events", engine, events_open, 25, workers)
        lines.append(line)
        ok = ok and passed
        _phase(engine, "checks")
        n_events, n_entries, mismatches = target.counts()
        answered = created(events_open, peak)
        # Requests the client gave up on may have been stored after all (the server was
        # killed with them in its queue): exact only when every request was answered.
        unanswered = events_open["transport_errors"] + peak["transport_errors"]
        checks.append(Check("api.events.stored", engine,
                            answered <= n_events <= answered + unanswered,
                            f"{n_events} events, {answered} created answers, "
                            f"{unanswered} unanswered"))
        checks.append(Check("api.ledger.reconcile", engine, mismatches == 0,
                            f"{n_entries} entries, {mismatches} mismatches"))
        with server(target.url, workers) as base:
            again = load(base, {"mode": "open", "rate": 50, "seconds": 1.0,
                                "request": target.events("pk")})
        after = target.counts()
        # A resent request whose first attempt was refused (503) may be stored now; one that
        # was answered 201 must be replayed, adding nothing.
        refused = len([i for i in peak["failed"] if i < 50])
        checks.append(Check("api.replay_adds_nothing", engine,
                            again["errors"] == 0 and after[0] - n_events <= refused,
                            f"50 resent: {again['statuses']}, "
                            f"{after[0] - n_events} new events, "
                            f"{after[1] - n_entries} new entries, "
                            f"{refused} refused the first time"))
        _phase(engine, "api.durable (closed loop, non-durable server)")
        if engine == "postgres":
            relaxed_url = relaxed_target.url + "?options=-c%20synchronous_commit%3Doff"
            relaxed_env: dict[str, str] = {}
            mode = "synchronous_commit=off"
        else:
            relaxed_url = relaxed_target.url
            relaxed_env = {"ALLEGIANCE_SQLITE_SYNCHRONOUS": "NORMAL"}
            mode = "synchronous=NORMAL"
        with server(relaxed_url, workers, relaxed_env) as base:
            load(base, warm)
            relaxed = load(base, {**closed, "request": relaxed_target.events("pk")})
        figures.append(Figure("api.durable", engine, created(peak), peak["elapsed"], mode,
                              created(relaxed) / relaxed["elapsed"], 0.7,
                              note=f"{relaxed['errors']} errors without durability"))
        raw[engine] = {"workers": workers, "health": health, "events_open": events_open,
                       "events_peak": peak, "balance_closed": balance,
                       "balance_open": balance_open, "replay": again, "relaxed": relaxed}
    return ok


def run(args: argparse.Namespace) -> bool:
    figures: list[Figure] = []
    checks: list[Check] = []
    lines: list[str] = []
    raw: dict[str, Any] = {}
    ok = True
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("api engine=postgres SKIPPED (no server)")
            continue
        ok = _engine(engine, args, figures, checks, lines, raw) and ok
    for line in lines:
        print(line)
    for figure in figures:
        print(figure.line())
    for check in checks:
        print(check.line())
    write_results("api", {"seed": args.seed, "quick": args.quick, "open_loop": lines,
                          "loads": raw, "load_average": os.getloadavg()},
                  figures, checks)
    return ok and all(f.passed is not False for f in figures) and all(c.ok for c in checks)
