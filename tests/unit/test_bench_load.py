"""The load generator of ``python -m bench api`` (``bench.api_load``) against a tiny local
HTTP/1.1 server: every request is sent, answered on its keep-alive connection and counted,
request bytes are well formed, and a non-2xx answer counts as an error."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.api_load import Requests, closed_loop, event_body, open_loop


async def _serve(seen: list[bytes], status: int) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                seen.append(head + body)
                answer = b'{"ok":true}'
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _run(mode: str, status: int, **job: Any) -> tuple[dict[str, Any], list[bytes]]:
    seen: list[bytes] = []

    async def main() -> dict[str, Any]:
        server, port = await _serve(seen, status)
        async with server:
            spec = {"host": "127.0.0.1", "port": port, **job}
            return await (open_loop(spec) if mode == "open" else closed_loop(spec))

    # In its own thread: a browser test earlier in the same worker leaves Playwright's
    # event loop running in the main thread, where asyncio.run() refuses to start.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result(), seen


def test_open_loop_sends_every_request_on_schedule_and_counts_answers() -> None:
    spec = {"kind": "event", "program_id": "prg_1", "key": "sk_1", "prefix": "t",
            "members": 10}
    result, seen = _run("open", 201, rate=200, seconds=0.25, connections=4, request=spec)
    assert result["offered"] == 50 and result["answered"] == 50 and result["errors"] == 0
    assert result["statuses"] == {"201": 50} and result["failed"] == []
    assert result["p99_ms"] is not None and result["p99_ms"] >= result["p50_ms"]
    assert len(seen) == 50
    head, _, body = seen[7].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/programs/prg_1/events HTTP/1.1")
    assert b"Idempotency-Key: t-k-7" in head and b"Authorization: Bearer sk_1" in head
    assert json.loads(body) == event_body("t", 10, 7)
    assert result["connections"] <= 256


def test_closed_loop_counts_non_2xx_as_errors() -> None:
    result, seen = _run("closed", 500, seconds=0.2, connections=3, max_requests=30,
                        request={"kind": "health"})
    assert result["answered"] == len(seen) == 30
    assert result["errors"] == 30 and result["statuses"] == {"500": 30}
    assert result["failed"] == list(range(30))


def test_requests_are_the_same_every_time_they_are_built() -> None:
    spec = {"kind": "balance", "wallets": ["wal_a", "wal_b"], "key": "k"}
    built = Requests(spec)
    assert built.build(0) == built.build(2) != built.build(1)
    assert built.build(1).startswith(b"GET /v1/wallets/wal_b HTTP/1.1\r\n")
    events = Requests({"kind": "event", "program_id": "p", "key": "k", "prefix": "x",
                       "members": 5})
    assert events.build(3) == events.build(3)
