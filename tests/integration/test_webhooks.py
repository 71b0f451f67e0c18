"""Webhooks end to end on SQLite and PostgreSQL, against a real HTTP receiver on 127.0.0.1.

T17 (at least once): the receiver fails the first k attempts of each message (500, timeout,
429 + Retry-After), the dispatcher is killed between a POST and its record, and one endpoint
answers 410: lost = 0, duplicates share ``webhook-id``, the 410 endpoint is disabled.
Also: signatures checked by the receiver on every request (and during rotation), redirects never
followed, the SSRF guard re-checked at delivery, the admin routes, tenancy."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from allegiance import tenants
from allegiance.api.app import create_app
from allegiance.kit import clock, outbox
from allegiance.kit.db import Database
from allegiance.webhooks import domain, service, ssrf
from allegiance.webhooks.dispatcher import dispatch_once, dispatch_until_idle, make_client
from allegiance.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.support import figures

CLIENT_TIMEOUT = 0.3
SLOW = 0.8  # a "timeout" answer sleeps longer than the client waits


@dataclass
class Receiver:
    """A loopback HTTP server. ``plan[webhook_id]`` lists the answers to give to that message's
    attempts in order (then 204): an int status, "timeout", "429" (with Retry-After: 60), or
    ("redirect", url). ``default`` answers everything else."""

    plan: dict[str, list[Any]] = field(default_factory=dict)
    default: Any = 204
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_request: Callable[[int], None] | None = None  # called with the request count

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, webhook_id: str) -> Any:
        with self.lock:
            queue = self.plan.get(webhook_id)
            if queue:
                return queue.pop(0)
            return self.default if webhook_id not in self.plan else 204

    def ok_ids(self) -> list[str]:
        return [r["headers"]["webhook-id"] for r in self.requests if r["answer"] == 204]


def _start(receiver: Receiver) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = receiver.answer(headers.get("webhook-id", ""))
            with receiver.lock:
                receiver.requests.append({"headers": headers, "body": body, "answer": answer,
                                          "path": self.path,
                                          "at": int(clock.now().timestamp())})
                count = len(receiver.requests)
            if receiver.on_request is not None:
                receiver.on_request(count)
            try:
                if answer == "timeout":
                    time.sleep(SLOW)
                    self.send_response(204)
                elif answer == "429":
                    self.send_response(429)
                    self.send_header("Retry-After", "60")
                elif isinstance(answer, tuple):
                    self.send_response(302)
                    self.send_header("Location", answer[1])
                else:
                    self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Up to three loopback receivers; http + loopback admitted for the test only."""
    made = [Receiver() for _ in range(3)]
    servers = [_start(r) for r in made]
    with ssrf.allow_loopback_for_tests():
        yield made
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def tenant(db: Database) -> str:
    with db.transaction() as s:
        return tenants.create_tenant(s, "Hooks tenant").id


def _endpoint(db: Database, tenant_id: str, url: str, types: list[str] | None = None
              ) -> WebhookEndpoint:
    with db.transaction() as s:
        return service.create_endpoint(s, tenant_id, url=url, event_types=types or ["*"])


def _emit(db: Database, tenant_id: str, n: int, event_type: str = "points.earned") -> list[str]:
    ids = []
    for i in range(n):
        with db.transaction() as s:
            ids.append(outbox.emit(s, tenant_id, event_type, {"n": i, "account_id": "acc_x"}))
    return ids


def _verify_all(receiver: Receiver, secrets: list[str]) -> None:
    """Every request the receiver got verifies with one of ``secrets`` at the (frozen) time it
    arrived, with the standard 5-minute tolerance."""
    for request in receiver.requests:
        domain.verify(secrets, request["headers"], request["body"], request["at"])


def _deliveries(db: Database, tenant_id: str) -> list[SimpleNamespace]:
    """Snapshots of the tenant's deliveries (plain values, readable after the session)."""
    with db.read() as s:
        rows = s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == tenant_id).order_by(WebhookDelivery.id))
        return [SimpleNamespace(**{c.name: getattr(r, c.name)
                                   for c in WebhookDelivery.__table__.columns}) for r in rows]


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the dispatcher catches it."""


def test_t17_at_least_once_with_failures_a_crash_and_410(
        db: Database, tenant: str, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    good, gone = receivers[0], receivers[1]
    ep = _endpoint(db, tenant, good.url, ["points.*"])
    ep_gone = _endpoint(db, tenant, gone.url)
    gone.default = 410
    produced = _emit(db, tenant, 12)
    _emit(db, tenant, 2, "member.enrolled")  # not subscribed by ``ep``
    answers: list[Any] = [500, "timeout", "429", 503]
    for i, msg_id in enumerate(produced):
        good.plan[msg_id] = [answers[j % len(answers)] for j in range(i % 4)]  # k = 0..3
    # The first run dies right after the receiver accepted a message (its 204 is never recorded).
    def die_after_a_success(response: httpx.Response) -> None:
        if response.status_code == 204:
            raise Crash()

    crashing = httpx.Client(timeout=CLIENT_TIMEOUT, follow_redirects=False,
                            event_hooks={"response": [die_after_a_success]})
    with pytest.raises(Crash):
        dispatch_once(db, client=crashing)
    crashing.close()
    client = make_client(CLIENT_TIMEOUT)
    try:
        for _ in range(40):
            dispatch_until_idle(db, client=client)
            if all(d.status != "pending" for d in _deliveries(db, tenant)):
                break
            frozen_clock.advance(timedelta(hours=11))  # past any retry delay and the lease
    finally:
        client.close()

    delivered = good.ok_ids()
    assert set(delivered) == set(produced)  # lost = 0, nothing unsubscribed arrives
    duplicates = len(delivered) - len(set(delivered))
    assert duplicates >= 1  # the crash after a 204 made one repeat, with the same webhook-id
    assert {r["headers"]["webhook-id"] for r in good.requests} == set(produced)
    for request in good.requests:  # the body is identical on every attempt of a message
        same = [r["body"] for r in good.requests
                if r["headers"]["webhook-id"] == request["headers"]["webhook-id"]]
        assert len(set(same)) == 1
        assert json.loads(request["body"])["type"] == "points.earned"
    _verify_all(good, [ep.secret])
    # the 410 endpoint: one request, disabled, its delivery failed, nothing more sent
    assert len(gone.requests) == 1
    with db.read() as s:
        assert service.get_endpoint(s, tenant, ep_gone.id).status == "disabled"
        failed = [d.last_status_code for d in service.list_deliveries(
            s, tenant, ep_gone.id, status="failed", limit=50)]
        pending = service.list_deliveries(s, tenant, ep_gone.id, status="pending", limit=50)
    assert failed == [410]
    assert len(pending) == 13  # kept for a replay once the endpoint is enabled again
    by_id = {d.message_id: d for d in _deliveries(db, tenant) if d.endpoint_id == ep.id}
    assert all(d.status == "succeeded" for d in by_id.values())
    assert by_id[produced[3]].attempts == 4  # 500, timeout, 429, then 204
    figures.record(f"T17.{'sqlite' if db.is_sqlite else 'postgres'}", produced=len(produced),
                   delivered=len(set(delivered)), lost=len(set(produced) - set(delivered)),
                   duplicate_deliveries=duplicates, duplicates_share_webhook_id=True,
                   attempts=len(good.requests), endpoint_disabled_after_410=True)


DISPATCH_SCRIPT = """
import sys
from allegiance.kit.db import Database
from allegiance.webhooks import dispatch_until_idle, ssrf
with ssrf.allow_loopback_for_tests():
    dispatch_until_idle(Database(sys.argv[1]))
"""


def test_t17_dispatcher_killed_with_sigkill_mid_post_loses_nothing(
        db: Database, tenant: str, receivers: list[Receiver], tmp_path: Path) -> None:
    """A real dispatcher process is killed (SIGKILL) while its third POST is in flight."""
    receiver = receivers[0]
    ep = _endpoint(db, tenant, receiver.url)
    produced = _emit(db, tenant, 6)
    stderr = tmp_path / "dispatcher.err"
    with stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-c", DISPATCH_SCRIPT, db.url],
                                   stdout=subprocess.DEVNULL, stderr=err)
    # Set before the signal is sent, so it is visible once the process is gone (the handler
    # thread may run again only after the main thread has reaped the process).
    kill_sent = threading.Event()

    def kill_on_third(count: int) -> None:
        if count == 3 and not kill_sent.is_set():
            kill_sent.set()
            os.kill(process.pid, signal.SIGKILL)

    receiver.on_request = kill_on_third
    try:
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    receiver.on_request = None
    assert kill_sent.is_set() and process.returncode == -signal.SIGKILL, (
        process.returncode, len(receiver.requests), stderr.read_text(errors="replace"))
    in_flight = receiver.requests[2]["headers"]["webhook-id"]
    assert len(receiver.requests) == 3
    # A new dispatcher after the claim's lease ran out finishes the work.
    with clock.frozen(datetime.now(UTC) + timedelta(minutes=3)):
        dispatch_until_idle(db)
    received = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert set(received) == set(produced)  # lost = 0
    assert received.count(in_flight) == 2  # the duplicate carries the same webhook-id
    assert len(received) == len(produced) + 1
    assert all(d.status == "succeeded" for d in _deliveries(db, tenant))
    for request in receiver.requests:
        domain.verify([ep.secret], request["headers"], request["body"],
                      int(request["headers"]["webhook-timestamp"]))
    figures.record(f"T17.sigkill.{'sqlite' if db.is_sqlite else 'postgres'}",
                   produced=len(produced), delivered=len(set(received)),
                   lost=len(set(produced) - set(received)), kills=1,
                   duplicate_deliveries=len(received) - len(set(received)))


def test_retry_schedule_and_retry_after_are_followed(
        db: Database, tenant: str, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    receiver = receivers[0]
    receiver.default = 500
    _endpoint(db, tenant, receiver.url)
    [msg] = _emit(db, tenant, 1)
    receiver.plan[msg] = ["429"] + [500] * 10
    start = frozen_clock.now()
    times = []
    for _ in range(60):
        before = len(receiver.requests)
        dispatch_until_idle(db)
        if len(receiver.requests) > before:
            times.append(int((frozen_clock.now() - start).total_seconds()))
        if _deliveries(db, tenant)[0].status != "pending":
            break
        frozen_clock.advance(timedelta(seconds=5))
        if frozen_clock.now() - start > timedelta(days=3):
            break
        # jump straight to the next due time to keep the loop short
        due = _deliveries(db, tenant)[0].next_attempt_at
        if due is not None and due > frozen_clock.now():
            frozen_clock.set(due)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [60, 300, 1800, 7200, 18000, 36000, 36000]  # 429's Retry-After: 60 > 5
    [delivery] = _deliveries(db, tenant)
    assert delivery.status == "failed" and delivery.attempts == domain.MAX_ATTEMPTS


def test_rollback_means_no_delivery_and_commit_means_one(
        db: Database, tenant: str, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    receiver = receivers[0]
    _endpoint(db, tenant, receiver.url)
    with pytest.raises(RuntimeError), db.transaction() as s:
        outbox.emit(s, tenant, "points.earned", {"n": 1})
        raise RuntimeError("the change fails")
    dispatch_until_idle(db)
    assert receiver.requests == []
    [msg] = _emit(db, tenant, 1)
    dispatch_until_idle(db)
    dispatch_until_idle(db)
    assert receiver.ok_ids() == [msg]


def test_rotation_sends_both_signatures_for_24_hours(
        db: Database, tenant: str, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    receiver = receivers[0]
    ep = _endpoint(db, tenant, receiver.url)
    old = ep.secret
    with db.transaction() as s:
        new = service.rotate_secret(s, tenant, ep.id).secret
    assert new != old
    _emit(db, tenant, 1)
    dispatch_until_idle(db)
    [first] = receiver.requests
    assert len(first["headers"]["webhook-signature"].split(" ")) == 2
    now = int(clock.now().timestamp())
    for secret in (old, new):
        domain.verify([secret], first["headers"], first["body"], now)
    frozen_clock.advance(timedelta(hours=24, seconds=1))
    _emit(db, tenant, 1)
    dispatch_until_idle(db)
    second = receiver.requests[1]
    now = int(clock.now().timestamp())
    domain.verify([new], second["headers"], second["body"], now)
    with pytest.raises(domain.SignatureError):
        domain.verify([old], second["headers"], second["body"], now)


def test_redirects_are_never_followed(
        db: Database, tenant: str, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    receiver, canary = receivers[0], receivers[2]
    _endpoint(db, tenant, receiver.url)
    [msg] = _emit(db, tenant, 1)
    receiver.plan[msg] = [("redirect", canary.url), ("redirect", "http://169.254.169.254/")]
    dispatch_until_idle(db)
    frozen_clock.advance(timedelta(seconds=5))
    dispatch_until_idle(db)
    assert canary.requests == []  # loopback canary hits = 0
    [delivery] = _deliveries(db, tenant)
    assert delivery.status == "pending" and delivery.last_status_code == 302
    assert "not followed" in (delivery.last_error or "")


def test_the_guard_is_checked_again_before_each_delivery(
        db: Database, tenant: str, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    receiver = receivers[0]
    _endpoint(db, tenant, receiver.url)  # saved while loopback was admitted
    _emit(db, tenant, 1)
    with ssrf.allow_loopback_for_tests() as policy:
        pass
    assert policy.allow_loopback
    import allegiance.webhooks.ssrf as guard
    previous = guard._policy
    guard._policy = ssrf.Policy()  # production policy: https and public addresses only
    try:
        report = dispatch_until_idle(db)
    finally:
        guard._policy = previous
    assert report.unsafe == 1
    assert receiver.requests == []  # outbound connections attempted = 0
    [delivery] = _deliveries(db, tenant)
    assert delivery.status == "pending" and "unsafe URL" in (delivery.last_error or "")


# ---------------------------------------------------------------------------------------------
# Routes


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(db, rate_limit_per_minute=0), raise_server_exceptions=False) as c:
        yield c


def _key(db: Database, name: str, scopes: list[str]) -> tuple[str, dict[str, str]]:
    with db.transaction() as s:
        t = tenants.create_tenant(s, name)
        secret = tenants.create_api_key(s, t.id, name="k", scopes=scopes).secret
    return t.id, {"Authorization": f"Bearer {secret}"}


def test_routes_crud_failures_replay_and_tenancy(
        db: Database, client: TestClient, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    receiver = receivers[0]
    tenant_id, h = _key(db, "A", ["admin"])
    _, other = _key(db, "B", ["admin"])
    _, reader = _key(db, "C", ["read"])
    body = {"url": receiver.url, "event_types": ["points.earned"], "description": "crm"}
    created = client.post("/v1/webhook-endpoints", json=body, headers=h)
    assert created.status_code == 201, created.text
    ep = created.json()
    assert ep["secret"].startswith("whsec_") and ep["status"] == "enabled"
    assert client.post("/v1/webhook-endpoints", json=body, headers=reader).status_code == 403
    for bad in ({**body, "url": "https://10.0.0.1/"}, {**body, "url": "https://[fd00::1]/"},
                {**body, "secret": "whsec_AAAA"}, {**body, "status": "enabled"},
                {**body, "event_types": []}, {**body, "event_types": ["Bad Type"]}):
        assert client.post("/v1/webhook-endpoints", json=bad, headers=h).status_code == 422
    unsafe = client.post("/v1/webhook-endpoints", json={**body, "url": "https://169.254.169.254/"},
                         headers=h).json()
    assert unsafe["error"]["code"] == "unsafe_webhook_url" and unsafe["error"]["field"] == "url"

    listed = client.get("/v1/webhook-endpoints", headers=h).json()
    assert [e["id"] for e in listed["items"]] == [ep["id"]] and "secret" not in listed["items"][0]
    assert client.get("/v1/webhook-endpoints", headers=other).json()["items"] == []
    path = f"/v1/webhook-endpoints/{ep['id']}"
    assert client.get(path, headers=h).json()["description"] == "crm"
    for method, url in (("GET", path), ("PATCH", path), ("DELETE", path),
                        ("POST", f"{path}/rotate-secret"), ("GET", f"{path}/deliveries")):
        kwargs: dict[str, Any] = {"json": {"description": "x"}} if method == "PATCH" else {}
        assert client.request(method, url, headers=other, **kwargs).status_code == 404

    rotated = client.post(f"{path}/rotate-secret", headers=h).json()
    assert rotated["secret"] != ep["secret"] and rotated["previous_secret_expires_at"]

    # a delivery that fails with 410: listed as failed, the endpoint disabled; replay after
    # re-enabling sends the same webhook-id again
    receiver.default = 410
    [msg] = _emit(db, tenant_id, 1)
    dispatch_until_idle(db)
    failed = client.get(f"{path}/deliveries?status=failed", headers=h).json()["items"]
    assert [d["message_id"] for d in failed] == [msg]
    assert failed[0]["attempt_log"][0]["status_code"] == 410
    assert client.get(path, headers=h).json()["status"] == "disabled"
    replay = f"/v1/webhook-deliveries/{failed[0]['id']}/replay"
    assert client.post(replay, headers=other).status_code == 404
    assert client.post(replay, headers=h).status_code == 409  # endpoint disabled
    enabled = client.patch(path, json={"status": "enabled"}, headers=h)
    assert enabled.status_code == 200 and enabled.json()["disabled_reason"] is None
    assert client.patch(path, json={"secret": "x"}, headers=h).status_code == 422
    receiver.default = 204
    replayed = client.post(replay, headers=h)
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    dispatch_until_idle(db)
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [msg, msg]
    assert client.get(f"{path}/deliveries?status=failed", headers=h).json()["items"] == []
    done = client.get(f"{path}/deliveries", headers=h).json()["items"]
    assert done[0]["status"] == "succeeded" and len(done[0]["attempt_log"]) == 2

    assert client.delete(path, headers=h).status_code == 204
    assert client.get(path, headers=h).status_code == 404
    assert client.get("/v1/webhook-endpoints", headers=h).json()["items"] == []


def test_the_webhooks_job_delivers(
        db: Database, tenant: str, receivers: list[Receiver],
        frozen_clock: clock.FrozenClock) -> None:
    from allegiance.jobs import registry

    receiver = receivers[0]
    _endpoint(db, tenant, receiver.url, ["member.*"])
    produced = _emit(db, tenant, 3, "member.enrolled")
    _emit(db, tenant, 2, "points.earned")
    steps: list[tuple[str, int]] = []
    summary = registry.get("webhooks").run(db, 2, lambda step, n: steps.append((step, n)))
    assert summary["messages"] == 5 and summary["succeeded"] == 3 and summary["failed"] == 0
    assert sorted(receiver.ok_ids()) == sorted(produced)
    assert ("messages", 2) in steps
    assert registry.get("webhooks").run(db, 2, lambda step, n: None)["attempts"] == 0


def test_concurrent_dispatchers_share_the_work_without_sending_twice(
        db: Database, tenant: str, receivers: list[Receiver]) -> None:
    receiver = receivers[0]
    _endpoint(db, tenant, receiver.url)
    produced = _emit(db, tenant, 20)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            dispatch_until_idle(db, batch=5)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    received = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert sorted(received) == sorted(produced)  # every message once: claims are exclusive
    assert all(d.status == "succeeded" for d in _deliveries(db, tenant))
