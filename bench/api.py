"""``python -m bench api``: the HTTP API under load, against the same server's trivial endpoint.

Per engine, one fresh migrated database (a tenant, the bench program of ``bench.imports`` —
two rules, one with a monthly cap — 1,000 members, an admin key), and the real server
(``allegiance serve``, uvicorn, one worker) bound to 127.0.0.1 on a free port, started as a
child process and killed by its PID at the end. The load generator is asyncio + httpx in this
process; every load is bounded in time.

* ``api.events``: ``POST /v1/programs/{id}/events`` (1–3 lines, an ``Idempotency-Key``) at R
  requests/s offered, **open loop** (requests are sent on schedule whatever the answers; a
  latency is measured from the scheduled time, so a slow server cannot hide its queue) for D
  seconds. Goal: p99 ≤ 25 ms and 0 errors (R = 500, D = 20; ``--quick`` R = 200, D = 5).
* ``api.events.peak``: closed loop, 50 connections, D seconds; goal ≥ 0.25× the rate of
  ``GET /health`` measured the same way in the same run.
* ``api.balance``: ``GET /v1/wallets/{id}`` closed loop, goal ≥ 0.6× ``/health``; and open
  loop at 1,000 requests/s (quick 400), goal p99 ≤ 10 ms.
* ``api.durable`` (PostgreSQL): the events closed loop with ``synchronous_commit=on`` (the
  default) against a server whose connections run with ``synchronous_commit=off``; goal ≥
  0.7×. (SQLite always runs ``synchronous=FULL``: there is no non-durable mode to compare.)

Correctness after the load: one stored event per created answer; ``ledger.reconcile`` finds
no mismatch; resending 50 requests with their ``Idempotency-Key`` adds no event and no entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from allegiance import events, ledger, members, tenants
from allegiance.kit.db import Database
from bench.common import Check, Figure, databases, postgres_available, write_results
from bench.imports import N_MEMBERS, setup

Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(url: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "ALLEGIANCE_RATE_LIMIT_PER_MINUTE": "0",
           "ALLEGIANCE_IMPORT_WORKER": "none"}
    child = subprocess.Popen(
        [sys.executable, "-c", "from allegiance.cli import main; main()", "serve", "--host",
         "127.0.0.1", "--port", str(port), "--database-url", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # 30 s at most
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            if child.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        else:
            raise RuntimeError("the server did not answer in 30 s")
        yield base
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("inf")


async def open_loop(base: str, request: Request, rate: int, seconds: float,
                    first: int = 0) -> tuple[list[float], int]:
    """(latencies from the scheduled time, errors) of ``rate × seconds`` requests sent on
    schedule."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            try:
                answer = await request(client, first + i)
                if answer.status_code >= 300:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(loop.time() - scheduled)

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(int(rate * seconds)))),
                               timeout=seconds + 60)
    return latencies, errors


async def closed_loop(base: str, request: Request, connections: int, seconds: float,
                      first: int = 0) -> tuple[int, int]:
    """(completed, errors) of ``connections`` clients sending back to back for ``seconds``."""
    done = errors = 0
    counter = iter(range(first, first + 10**9))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        deadline = asyncio.get_running_loop().time() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while asyncio.get_running_loop().time() < deadline:
                try:
                    answer = await request(client, next(counter))
                    done += 1
                    if answer.status_code >= 300:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(connections))),
                               timeout=seconds + 60)
    return done, errors


class Load:
    """The requests of one database: events, balances, health."""

    def __init__(self, url: str, seed: int, prefix: str) -> None:
        self.url, self.prefix = url, prefix
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
        self.headers = {"Authorization": f"Bearer {self.key}"}
        self.rng = random.Random(seed)
        self.at = datetime(2026, 3, 1, tzinfo=UTC)

    def event_body(self, i: int) -> dict[str, Any]:
        rng = random.Random(i)
        return {"external_id": f"{self.prefix}-{i}",
                "member_number": f"{rng.randrange(N_MEMBERS):05d}",
                "occurred_at": (self.at + timedelta(seconds=i)).isoformat(),
                "lines": [{"sku": f"SKU-{rng.randrange(200)}", "quantity": rng.randint(1, 4),
                           "unit_price": rng.randint(100, 50_000)}
                          for _ in range(rng.randint(1, 3))]}

    async def event(self, client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(f"/v1/programs/{self.program_id}/events",
                                 json=self.event_body(i),
                                 headers={**self.headers, "Idempotency-Key": f"k-{i}"})

    async def balance(self, client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.get(f"/v1/wallets/{self.wallets[i % len(self.wallets)]}",
                                headers=self.headers)

    @staticmethod
    async def health(client: httpx.AsyncClient, _i: int) -> httpx.Response:
        return await client.get("/health")

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


def _phase(engine: str, name: str) -> None:
    print(f"bench api [{engine}]: {name}", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-seconds", type=float, default=None,
                        help="seconds per load (default 20; quick 5)")
    parser.add_argument("--api-rate", type=int, default=None,
                        help="events/s offered, open loop (default 500; quick 200)")


def _engine(engine: str, args: argparse.Namespace, figures: list[Figure],
            checks: list[Check], lines: list[str]) -> bool:
    seconds = args.api_seconds or (5.0 if args.quick else 20.0)
    rate = args.api_rate or (200 if args.quick else 500)
    balance_rate = 400 if args.quick else 1000
    ok = True
    with databases(engine) as dbs:
        load = Load(dbs.new(), args.seed, "ev")
        _phase(engine, "server")
        with server(load.url) as base:
            _phase(engine, "api.events (open loop)")
            latencies, errors = asyncio.run(open_loop(base, load.event, rate, seconds))
            created = len(latencies) - errors
            worst = p99(latencies) * 1000
            passed = worst <= 25 and errors == 0
            lines.append(f"api.events engine={engine} offered={rate}/s for {seconds:g}s "
                         f"p99={worst:.1f}ms errors={errors} goal=p99<=25ms,0 errors "
                         f"{'PASS' if passed else 'FAIL'}")
            ok = ok and passed
            _phase(engine, "closed loops")
            health, _ = asyncio.run(closed_loop(base, load.health, 50, seconds))
            first = 10**6
            peak, peak_errors = asyncio.run(closed_loop(base, load.event, 50, seconds, first))
            figures.append(Figure("api.events.peak", engine, peak - peak_errors, seconds,
                                  "trivial:/health", health / seconds, 0.25,
                                  note=f"50 connections, {peak_errors} errors"))
            balances, _ = asyncio.run(closed_loop(base, load.balance, 50, seconds))
            figures.append(Figure("api.balance", engine, balances, seconds, "trivial:/health",
                                  health / seconds, 0.6, note="50 connections"))
            b_latencies, b_errors = asyncio.run(open_loop(base, load.balance, balance_rate,
                                                          seconds))
            b_worst = p99(b_latencies) * 1000
            b_pass = b_worst <= 10 and b_errors == 0
            lines.append(f"api.balance.latency engine={engine} offered={balance_rate}/s "
                         f"p99={b_worst:.1f}ms errors={b_errors} goal=p99<=10ms "
                         f"{'PASS' if b_pass else 'FAIL'}")
            ok = ok and b_pass
            _phase(engine, "checks")
            n_events, n_entries, mismatches = load.counts()
            expected = created + peak - peak_errors
            checks.append(Check("api.events.stored", engine, n_events == expected,
                                f"{n_events} events, {expected} created answers"))
            checks.append(Check("api.ledger.reconcile", engine, mismatches == 0,
                                f"{n_entries} entries"))
            _, again_errors = asyncio.run(open_loop(base, load.event, 50, 1.0))
            after = load.counts()
            checks.append(Check("api.replay_adds_nothing", engine,
                                again_errors == 0 and after[:2] == (n_events, n_entries),
                                f"50 resent, {after[0] - n_events} new events"))
        if engine == "postgres":
            fast = Load(dbs.new(), args.seed, "nd")
            relaxed = fast.url + "?options=-c%20synchronous_commit%3Doff"
            with server(relaxed) as base:
                off, _ = asyncio.run(closed_loop(base, fast.event, 50, seconds))
            durable = next(f for f in figures if f.name == "api.events.peak"
                           and f.engine == engine)
            figures.append(Figure("api.durable", engine, durable.count, durable.seconds,
                                  "synchronous_commit=off", off / seconds, 0.7))
    return ok


def run(args: argparse.Namespace) -> bool:
    figures: list[Figure] = []
    checks: list[Check] = []
    lines: list[str] = []
    ok = True
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("api engine=postgres SKIPPED (no server)")
            continue
        ok = _engine(engine, args, figures, checks, lines) and ok
    for line in lines:
        print(line)
    for figure in figures:
        print(figure.line())
    for check in checks:
        print(check.line())
    write_results("api", {"seed": args.seed, "quick": args.quick, "open_loop": lines},
                  figures, checks)
    return ok and all(f.passed is not False for f in figures) and all(c.ok for c in checks)
