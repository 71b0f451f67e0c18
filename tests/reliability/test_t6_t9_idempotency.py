"""T6-T9: exactly-once effects through the API.

T6  32 identical ``POST /v1/programs/{id}/points`` with one Idempotency-Key from 32 threads: one
    journal; every other answer is an identical replay or a 409. Run in-process (TestClient),
    again with the in-process in-flight guard disabled (as if every request hit another worker
    process), and over two real uvicorn processes on 127.0.0.1, so the database's own uniqueness
    is what keeps it exactly-once. Positive control: the same harness without the header must
    count the double postings.
T7  the same key with a different body: 422 ``idempotency_key_reused``, nothing posted.
T8  replay after the retention (30 days + 1 s, injected clock): the cache has expired, yet the
    ``entry_key`` business key still blocks a second earn.
T9  one ``entry_key`` 10x serially over two API keys of one tenant, a fresh ``entry_key`` 10x
    concurrently over the same two keys (so the race is real, not a lookup), and the first key
    once in another tenant: earned exactly once per key and tenant.

Program, unit and wallet are set up through the services; only the points requests go over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from allegiance import ledger, tenants
from allegiance.api.app import create_app
from allegiance.kit import clock
from allegiance.kit import web as context
from allegiance.kit.db import Database
from tests.reliability.harness import count, engine_name, run_threads
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

THREADS = 32


@dataclass
class Shop:
    client: TestClient
    db: Database
    tenant_id: str
    program_id: str
    unit_id: str
    wallet_id: str
    key: str

    def points(self, body: dict[str, Any], *, key: str | None = None,
               idempotency_key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response: httpx.Response = self.client.post(
            f"/v1/programs/{self.program_id}/points", json=body, headers=headers)
        return response

    def entries(self) -> int:
        return count(self.db, "SELECT COUNT(*) FROM journal_entry WHERE tenant_id = :t",
                     t=self.tenant_id)

    def postings_to_wallet(self) -> int:
        return count(self.db, "SELECT COUNT(*) FROM posting WHERE tenant_id = :t "
                     "AND account_id = :w", t=self.tenant_id, w=self.wallet_id)

    def balance(self) -> int:
        with self.db.read() as s:
            return ledger.balance_of(ledger.get_account(s, self.tenant_id, self.wallet_id)).posted


def new_shop(client: TestClient, db: Database, name: str = "Shop") -> Shop:
    with db.transaction() as s:
        t = tenants.create_tenant(s, name)
        p = tenants.create_program(s, t.id, code="main", name="Main", base_currency="USD")
        u = tenants.create_unit(s, t.id, p.id, code="points", name="Points", kind="points",
                                value_in_base="0.01")
        w = ledger.wallet(s, t.id, p.id, u.id, "account", "acc_buyer")
        key = tenants.create_api_key(s, t.id, name="pos", scopes=["integration"]).secret
        return Shop(client, db, t.id, p.id, u.id, w.id, key)


def second_key(shop: Shop) -> str:
    with shop.db.transaction() as s:
        return tenants.create_api_key(s, shop.tenant_id, name="pos-2",
                                      scopes=["integration"]).secret


@pytest.fixture
def client_for() -> Iterator[Any]:
    opened: list[tuple[TestClient, Database]] = []

    def make(db: Database) -> TestClient:
        client = TestClient(create_app(db, rate_limit_per_minute=0),
                            raise_server_exceptions=False)
        client.__enter__()
        opened.append((client, db))
        return client

    yield make
    for client, db in opened:
        client.__exit__(None, None, None)
        assert_ledger_invariants(db)


def _storm(shop: Shop, body: dict[str, Any], idempotency_key: str | None) -> list[httpx.Response]:
    def send(_: int, barrier: threading.Barrier) -> httpx.Response:
        barrier.wait()
        return shop.points(body, idempotency_key=idempotency_key)

    results = run_threads(THREADS, send, timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    return results


class _NeverInFlight(set[tuple[str, str]]):
    """Stands in for the in-process in-flight set as if each request ran in its own process."""

    def __contains__(self, item: object) -> bool:
        return False


def _t6_run(shop: Shop, label: str) -> dict[str, Any]:
    body = {"wallet_id": shop.wallet_id, "amount": 75, "kind": "earn", "memo": "order 1"}
    started = time.monotonic()
    responses = _storm(shop, body, idempotency_key=f"order-1-{label}")
    elapsed = time.monotonic() - started
    statuses = Counter(r.status_code for r in responses)
    created = [r for r in responses if r.status_code == 201]
    assert len(created) >= 1, statuses
    first_body = created[0].json()
    replays = [r for r in responses if r.status_code == 201 and r is not created[0]]
    assert all(r.json() == first_body for r in replays), "a replay differs from the original"
    conflicts = [r for r in responses if r.status_code == 409]
    assert all(r.json()["error"]["code"] in ("idempotency_in_flight", "conflict")
               for r in conflicts), [r.json() for r in conflicts[:3]]
    assert statuses[201] + statuses[409] == THREADS, statuses
    assert shop.entries() == 1, f"journals created: {shop.entries()}"
    assert shop.postings_to_wallet() == 1 and shop.balance() == 75
    # After the storm, a retry of the same request is an identical replay.
    again = shop.points(body, idempotency_key=f"order-1-{label}")
    assert again.status_code == 201 and again.json() == first_body
    assert again.headers.get("Idempotent-Replayed") == "true"
    return {"requests": THREADS, "status_counts": dict(statuses), "journals_created": 1,
            "double_postings": 0, "identical_replays": len(replays), "seconds": round(elapsed, 2)}


def test_t6_concurrent_same_idempotency_key_postgres(pg_db: Database, client_for: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = client_for(pg_db)
    in_process = _t6_run(new_shop(client, pg_db, "T6 in-process"), "a")
    monkeypatch.setattr(context, "_in_flight", _NeverInFlight())
    cross_process = _t6_run(new_shop(client, pg_db, "T6 cross-process"), "b")
    figures.record("T6", engine="postgres", in_process=in_process,
                   in_flight_guard_disabled=cross_process)


def test_t6_positive_control_without_idempotency_key_double_posts(
        pg_db: Database, client_for: Any) -> None:
    """The harness must see double postings when the client sends no Idempotency-Key."""
    shop = new_shop(client_for(pg_db), pg_db, "T6 control")
    body = {"wallet_id": shop.wallet_id, "amount": 75, "kind": "earn", "memo": "order 1"}
    responses = _storm(shop, body, idempotency_key=None)
    assert all(r.status_code == 201 for r in responses)
    figures.record("T6p", journals_created=shop.entries(), double_postings=shop.entries() - 1)
    assert shop.entries() == THREADS > 1, "the harness cannot see double postings"


def test_t7_same_key_different_body_is_refused(db: Database, client_for: Any) -> None:
    shop = new_shop(client_for(db), db, "T7")
    first = {"wallet_id": shop.wallet_id, "amount": 100, "kind": "earn"}
    assert shop.points(first, idempotency_key="k-7").status_code == 201
    variants = [
        {**first, "amount": 101},
        {**first, "kind": "redeem"},
        {**first, "memo": "changed"},
        {**first, "entry_key": "business-7"},
        {**first, "amount": 1, "memo": "tiny"},
    ]
    before = (shop.entries(), shop.postings_to_wallet(), shop.balance())
    codes = []
    for body in variants:
        r = shop.points(body, idempotency_key="k-7")
        codes.append((r.status_code, r.json()["error"]["code"]))
    assert codes == [(422, "idempotency_key_reused")] * len(variants), codes
    assert (shop.entries(), shop.postings_to_wallet(), shop.balance()) == before
    # The original request still replays.
    replay = shop.points(first, idempotency_key="k-7")
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    figures.record(f"T7.{engine_name(db)}", requests=len(variants),
                   refused_422=sum(1 for c in codes if c[0] == 422),
                   postings_from_second_request=0)


def test_t8_replay_after_retention_is_blocked_by_the_business_key(
        db: Database, client_for: Any) -> None:
    start = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    with clock.frozen(start) as frozen:
        shop = new_shop(client_for(db), db, "T8")
        body = {"wallet_id": shop.wallet_id, "amount": 40, "kind": "earn",
                "entry_key": "pos-txn-8"}
        first = shop.points(body, idempotency_key="k-8")
        assert first.status_code == 201
        frozen.set(start + timedelta(days=29))
        cached = shop.points(body, idempotency_key="k-8")
        assert cached.headers.get("Idempotent-Replayed") == "true"
        assert cached.status_code == 201 and cached.json() == first.json()

        frozen.set(start + timedelta(days=30, seconds=1))
        late = shop.points(body, idempotency_key="k-8")
        assert late.headers.get("Idempotent-Replayed") is None, "the cache should have expired"
        assert late.status_code == 200, late.text
        assert late.json()["entry"]["created"] is False
        assert late.json()["entry"]["id"] == first.json()["entry"]["id"]
        # Without the Idempotency-Key too, only the business key stands in the way.
        bare = shop.points(body)
        assert bare.status_code == 200 and bare.json()["entry"]["created"] is False
        assert shop.entries() == 1 and shop.balance() == 40
    figures.record(f"T8.{engine_name(db)}", retention_days=30, replay_after_seconds=30 * 86400 + 1,
                   cache_expired=True, duplicate_earns_after_pruning=shop.entries() - 1)


def test_t9_entry_key_dedupe_is_scoped_to_the_tenant(db: Database, client_for: Any) -> None:
    client = client_for(db)
    shop = new_shop(client, db, "T9 tenant A")
    other = new_shop(client, db, "T9 tenant B")
    keys = [shop.key, second_key(shop)]
    body = {"wallet_id": shop.wallet_id, "amount": 30, "kind": "earn", "entry_key": "invoice-9"}
    serial = [shop.points(body, key=keys[i % 2]) for i in range(10)]
    assert [r.status_code for r in serial] == [201] + [200] * 9, [r.text for r in serial[:2]]
    entry_id = serial[0].json()["entry"]["id"]
    assert all(r.json()["entry"]["id"] == entry_id for r in serial)

    fresh = {**body, "entry_key": "invoice-9b"}

    def send(i: int, barrier: threading.Barrier) -> httpx.Response:
        barrier.wait()
        return shop.points(fresh, key=keys[i % 2])

    concurrent = run_threads(10, send, timeout=60)
    assert not [r for r in concurrent if isinstance(r, BaseException)]
    statuses = Counter(r.status_code for r in concurrent)
    assert statuses[201] == 1 and set(statuses) <= {200, 201, 409}, statuses
    assert all(r.json()["error"]["code"] == "conflict" for r in concurrent
               if r.status_code == 409)

    theirs = other.points({**body, "wallet_id": other.wallet_id})
    assert theirs.status_code == 201, "another tenant's key was deduplicated against ours"
    assert shop.entries() == 2 and shop.balance() == 60
    assert other.entries() == 1 and other.balance() == 30
    figures.record(
        f"T9.{engine_name(db)}", serial=10, concurrent=10, api_keys=2,
        concurrent_status_counts={str(k): v for k, v in statuses.items()},
        earned_per_tenant={"a": shop.entries(), "b": other.entries()}, duplicates=0,
        cross_tenant_false_dedupe=0,
    )


@contextlib.contextmanager
def _servers(db: Database, count_: int, logs: Path) -> Iterator[list[str]]:
    """``count_`` uvicorn worker processes on 127.0.0.1 over one database; killed by PID."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    env = {**os.environ, "ALLEGIANCE_DATABASE_URL": db.url,
           "ALLEGIANCE_RATE_LIMIT_PER_MINUTE": "0"}
    try:
        for _ in range(count_):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "allegiance.api.app:create_app",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                env=env, stdout=subprocess.DEVNULL,
                stderr=open(logs / f"uvicorn-{port}.log", "wb")))  # noqa: SIM115
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 120  # generous: CI machines may be loaded
        for url, proc in zip(urls, procs, strict=True):
            while True:
                assert proc.poll() is None, f"{url} exited; see {logs}"
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{url} did not start"
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_t6_same_idempotency_key_across_server_processes(pg_db: Database, client_for: Any,
                                                         tmp_path: Path) -> None:
    """32 identical requests spread over two uvicorn processes (no shared in-flight guard)."""
    shop = new_shop(client_for(pg_db), pg_db, "T6 processes")
    body = {"wallet_id": shop.wallet_id, "amount": 75, "kind": "earn", "memo": "order 1"}
    headers = {"Authorization": f"Bearer {shop.key}", "Idempotency-Key": "order-1-processes"}
    with _servers(pg_db, 2, tmp_path) as urls:
        clients = [httpx.Client(base_url=url, timeout=30) for url in urls]
        try:
            def send(i: int, barrier: threading.Barrier) -> httpx.Response:
                barrier.wait()
                return clients[i % 2].post(f"/v1/programs/{shop.program_id}/points",
                                           json=body, headers=headers)

            started = time.monotonic()
            responses = run_threads(THREADS, send, timeout=120)
            elapsed = time.monotonic() - started
        finally:
            for c in clients:
                c.close()
    assert not [r for r in responses if isinstance(r, BaseException)], responses[:3]
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, {r.status_code: r.text for r in responses}
    bodies = {r.text for r in responses if r.status_code == 201}
    assert len(bodies) == 1, "responses with status 201 differ"
    assert shop.entries() == 1 and shop.postings_to_wallet() == 1 and shop.balance() == 75
    figures.record("T6.processes", engine="postgres", processes=2, requests=THREADS,
                   status_counts={str(k): v for k, v in statuses.items()},
                   journals_created=1, double_postings=0, seconds=round(elapsed, 2))


def test_t7p_positive_control_body_blind_fingerprint_is_detected(
        db: Database, client_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a fingerprint that ignores the body, the T7 harness must see silent acceptance."""
    monkeypatch.setattr(context, "_fingerprint",
                        lambda request, body: f"{request.method} {request.url.path}")
    shop = new_shop(client_for(db), db, "T7 control")
    first = {"wallet_id": shop.wallet_id, "amount": 100, "kind": "earn"}
    assert shop.points(first, idempotency_key="k-7p").status_code == 201
    changed = shop.points({**first, "amount": 999}, idempotency_key="k-7p")
    silently_accepted = int(changed.status_code != 422)
    figures.record(f"T7p.{engine_name(db)}", silently_accepted=silently_accepted)
    assert silently_accepted == 1, "the harness cannot tell a body-blind fingerprint"


def test_t8p_positive_control_without_business_key_duplicates_after_retention(
        db: Database, client_for: Any) -> None:
    """Without an entry_key, a replay after the retention is a second earn: the T8 harness
    (journal count) must see it, so T8's zero means the business key did the work."""
    start = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    with clock.frozen(start) as frozen:
        shop = new_shop(client_for(db), db, "T8 control")
        body = {"wallet_id": shop.wallet_id, "amount": 40, "kind": "earn"}
        assert shop.points(body, idempotency_key="k-8p").status_code == 201
        frozen.set(start + timedelta(days=30, seconds=1))
        assert shop.points(body, idempotency_key="k-8p").status_code == 201
    duplicates = shop.entries() - 1
    figures.record(f"T8p.{engine_name(db)}", duplicate_earns_after_pruning=duplicates)
    assert duplicates == 1
