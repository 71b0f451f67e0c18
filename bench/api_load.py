"""The load generator of ``python -m bench api``: HTTP/1.1 over raw asyncio sockets with
keep-alive, in a process of its own (``python -m bench.api_load`` reads one JSON job on stdin
and prints one JSON result on stdout), so the client costs a few microseconds per request and
never shares an interpreter with the benchmark's setup data.

* open loop: request ``i`` is due at ``start + i / rate`` whatever the answers; its latency is
  measured from that scheduled time (a queue in the server, or a client that fell behind, both
  count against the figure); connections come from a pool opened ahead (more are opened when
  every one is busy, up to ``max_connections``).
* closed loop: ``connections`` clients, each on its own connection, send back to back.

Every load is bounded: at most ``rate × seconds`` requests (open) or ``max_requests`` (closed),
and ``seconds + grace`` of wall time; a request still unanswered then counts as an error.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

GRACE = 20.0  # seconds an open loop waits for its last answers after the last send


# --------------------------------------------------------------------------------------------
# The requests


def event_body(prefix: str, members: int, i: int) -> dict[str, Any]:
    """The purchase event ``i`` (seeded by ``i``: the same request every time it is built)."""
    rng = random.Random(i)
    at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=i)
    return {"external_id": f"{prefix}-{i}",
            "member_number": f"{rng.randrange(members):05d}",
            "occurred_at": at.isoformat(),
            "lines": [{"sku": f"SKU-{rng.randrange(200)}", "quantity": rng.randint(1, 4),
                       "unit_price": rng.randint(100, 50_000)}
                      for _ in range(rng.randint(1, 3))]}


def redeem_body(spec: dict[str, Any], i: int) -> dict[str, Any]:
    """The redemption ``i`` of ``python -m bench redeem`` (seeded by the spec's seed and ``i``):
    a quarter ask for the gift whose stock runs out, the rest for the voucher."""
    rng = random.Random(int(spec["seed"]) * 1_000_003 + i)
    reward = spec["gift_id"] if rng.random() < 0.25 else spec["voucher_id"]
    return {"reward_id": reward, "account_id": rng.choice(spec["accounts"])}


class Requests:
    """Builds the bytes of request ``i`` of one kind: ``event``, ``redeem``, ``balance`` or
    ``health``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.kind = str(spec["kind"])
        self.spec = spec
        auth = f"Authorization: Bearer {spec.get('key', '')}\r\n"
        if self.kind == "health":
            self.fixed = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
        elif self.kind == "balance":
            self.gets = [(f"GET /v1/wallets/{w} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n").encode()
                         for w in spec["wallets"]]
        elif self.kind in ("event", "redeem"):
            path = "events" if self.kind == "event" else "redemptions"
            self.head = (f"POST /v1/programs/{spec['program_id']}/{path} HTTP/1.1\r\n"
                         f"Host: bench\r\n{auth}Content-Type: application/json\r\n")
        else:
            raise ValueError(f"unknown request kind {self.kind!r}")

    def build(self, i: int) -> bytes:
        if self.kind == "health":
            return self.fixed
        if self.kind == "balance":
            return self.gets[i % len(self.gets)]
        payload = (event_body(self.spec["prefix"], self.spec["members"], i)
                   if self.kind == "event" else redeem_body(self.spec, i))
        body = json.dumps(payload, separators=(",", ":")).encode()
        return (f"{self.head}Idempotency-Key: {self.spec['prefix']}-k-{i}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# --------------------------------------------------------------------------------------------
# One keep-alive connection


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send one request and read its whole answer; the status code."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            raise ConnectionResetError("the server closed the connection")
        return status

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle connections, opened ahead; a request with none idle opens one (up to ``most``) or
    waits for the next to be given back."""

    def __init__(self, host: str, port: int, most: int) -> None:
        self.host, self.port, self.most = host, port, most
        self.idle: list[Connection] = []
        self.opened = 0
        self.waiting: asyncio.Queue[Connection] = asyncio.Queue()

    async def fill(self, n: int) -> None:
        for _ in range(n):
            self.idle.append(await Connection.open(self.host, self.port))
            self.opened += 1

    async def get(self) -> Connection:
        if self.idle:
            return self.idle.pop()
        if not self.waiting.empty():
            return self.waiting.get_nowait()
        if self.opened < self.most:
            self.opened += 1
            try:
                return await Connection.open(self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.waiting.get()

    def give_back(self, conn: Connection) -> None:
        self.waiting.put_nowait(conn)

    def lost(self, conn: Connection) -> None:
        conn.close()
        self.opened -= 1

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        while not self.waiting.empty():
            self.waiting.get_nowait().close()


def _summary(latencies: list[float], statuses: Counter[str], errors: int, elapsed: float,
             ok: set[int]) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(q: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000, 3)

    bad = sum(n for s, n in statuses.items() if s.isdigit() and int(s) not in ok)
    return {"answered": len(latencies), "errors": errors + bad, "transport_errors": errors,
            "statuses": dict(statuses), "elapsed": round(elapsed, 3),
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1] * 1000, 3) if ordered else None}


async def open_loop(job: dict[str, Any]) -> dict[str, Any]:
    requests = Requests(job["request"])
    rate, seconds = float(job["rate"]), float(job["seconds"])
    first = int(job.get("first", 0))
    total = int(rate * seconds)
    pool = Pool(job["host"], job["port"], int(job.get("max_connections", 256)))
    await pool.fill(int(job.get("connections", 32)))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    ok = set(job.get("ok", [200, 201]))
    failed: list[int] = []  # request numbers without a good answer (the first 1,000)
    errors = 0
    loop = asyncio.get_running_loop()
    now = loop.time
    answered: set[int] = set()
    # (scheduled seconds from start, latency, how late it was sent), if asked
    trace: list[tuple[float, float, float]] = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        request = requests.build(first + i)
        try:
            conn = await pool.get()
        except OSError:
            errors += 1
            return
        sent = now()
        try:
            status = await conn.send(request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pool.lost(conn)
            errors += 1
            return
        pool.give_back(conn)
        statuses[str(status)] += 1
        latencies.append(now() - scheduled)
        trace.append((scheduled - start, latencies[-1], sent - scheduled))
        if status in ok:
            answered.add(i)

    tasks: set[asyncio.Task[None]] = set()
    start = now() + 0.05
    begun = time.perf_counter()
    i = 0
    while i < total:
        due = start + i / rate
        wait = due - now()
        if wait > 0:
            await asyncio.sleep(wait)
        current = now()
        while i < total and start + i / rate <= current:  # everything due by now
            task = loop.create_task(one(i, start + i / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=GRACE)
        for task in pending:
            task.cancel()
        errors += len(pending)
    elapsed = time.perf_counter() - begun
    pool.close()
    failed = [first + i for i in range(total) if i not in answered][:1000]
    result = _summary(latencies, statuses, errors, elapsed, ok)
    result.update(offered=total, rate=rate, seconds=seconds, connections=pool.opened,
                  failed=failed)
    if job.get("trace"):
        result["trace"] = [[round(at, 4), round(took, 4), round(late, 4)]
                           for at, took, late in sorted(trace)]
        result["trace_start_unix"] = time.time() - (now() - start)
    return result


async def closed_loop(job: dict[str, Any]) -> dict[str, Any]:
    requests = Requests(job["request"])
    seconds = float(job["seconds"])
    most = int(job.get("max_requests", 10**6))
    counter = iter(range(int(job.get("first", 0)), int(job.get("first", 0)) + most))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    ok = set(job.get("ok", [200, 201]))
    failed: list[int] = []  # request numbers without a good answer (the first 1,000)
    errors = 0
    loop = asyncio.get_running_loop()
    now = loop.time
    conns = [await Connection.open(job["host"], job["port"])
             for _ in range(int(job["connections"]))]
    deadline = now() + seconds

    async def client(conn: Connection) -> None:
        nonlocal errors
        for i in counter:
            if now() >= deadline:
                return
            sent = now()
            try:
                status = await conn.send(requests.build(i))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                errors += 1
                if len(failed) < 1000:
                    failed.append(i)
                conn.close()
                try:
                    conn = await Connection.open(job["host"], job["port"])
                except OSError:
                    return
                continue
            statuses[str(status)] += 1
            latencies.append(now() - sent)
            if status not in ok and len(failed) < 1000:
                failed.append(i)

    begun = now()
    tasks = [loop.create_task(client(c)) for c in conns]
    _, pending = await asyncio.wait(tasks, timeout=seconds + GRACE)
    for task in pending:
        task.cancel()
    errors += len(pending)
    elapsed = now() - begun
    for conn in conns:
        conn.close()
    result = _summary(latencies, statuses, errors, elapsed, ok)
    result.update(seconds=seconds, connections=len(conns), failed=sorted(failed),
                  rate=round(len(latencies) / elapsed, 1) if elapsed else 0.0)
    return result


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        runner = asyncio.run
    else:
        runner = uvloop.run
    if job["mode"] == "open":
        return runner(open_loop(job))
    if job["mode"] == "closed":
        return runner(closed_loop(job))
    raise ValueError(f"unknown mode {job['mode']!r}")


def main() -> None:
    job = json.loads(sys.stdin.read())
    print(json.dumps(run_job(job)), flush=True)


if __name__ == "__main__":
    main()
