"""The delivery loop. It reads only committed outbox rows (its own transactions), fans them out
into deliveries, and for each due delivery: claims it (a short committed transaction), checks
the URL against the SSRF guard again, POSTs it with httpx (10 s timeout, redirects never
followed), and records the attempt in another transaction. A crash between the POST and the
record leaves the delivery due again once the claim's lease runs out, so delivery is at least
once and every repeat carries the same ``webhook-id``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from allegiance.kit.db import Database
from allegiance.webhooks import service, ssrf

TIMEOUT_SECONDS = 10.0
LEASE = timedelta(minutes=2)


@dataclass
class Report:
    messages: int = 0
    attempts: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    unsafe: int = 0
    statuses: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"messages": self.messages, "attempts": self.attempts,
                "succeeded": self.succeeded, "retrying": self.retrying, "failed": self.failed,
                "unsafe": self.unsafe}


def _no_progress(_step: str, _count: int) -> None:
    return None


def make_client(timeout: float = TIMEOUT_SECONDS) -> httpx.Client:
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def _post(client: httpx.Client, send: service.Send) -> tuple[int | None, str | None, str | None]:
    """POST without reading the answer's body (a receiver cannot make the dispatcher buffer
    an unbounded response)."""
    try:
        with client.stream("POST", send.url, content=send.body, headers=send.headers) as response:
            status_code = response.status_code
            retry_after = response.headers.get("retry-after")
            redirect = response.is_redirect
    except httpx.TimeoutException:
        return None, "timeout", None
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}", None
    error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
    if redirect:
        error = f"HTTP {status_code} (redirects are not followed)"
    return status_code, error, retry_after


def dispatch_once(db: Database, *, client: httpx.Client | None = None, batch: int = 100,
                  lease: timedelta = LEASE,
                  progress: Callable[[str, int], None] = _no_progress) -> Report:
    """Fan out the pending outbox, then make one attempt of every delivery due now."""
    report = Report()
    while True:
        with db.transaction() as session:
            handled = service.fan_out(session, limit=batch)
        report.messages += handled
        progress("messages", handled)
        if handled < batch:
            break
    own_client = client is None
    http = client or make_client()
    try:
        while True:
            with db.read() as session:
                due = service.due_deliveries(session, limit=batch)
            if not due:
                break
            sent = 0
            for tenant_id, delivery_id in due:
                with db.transaction() as session:
                    send = service.claim(session, tenant_id, delivery_id, lease)
                if send is None:
                    continue
                sent += 1
                started = time.monotonic()
                status_code: int | None
                error: str | None
                retry_after: str | None
                try:
                    ssrf.check_url(send.url)
                except ssrf.UnsafeUrl as exc:
                    status_code, error, retry_after = None, f"unsafe URL: {exc.message}", None
                    report.unsafe += 1
                else:
                    status_code, error, retry_after = _post(http, send)
                duration = int((time.monotonic() - started) * 1000)
                with db.transaction() as session:
                    status = service.record_attempt(
                        session, send, status_code=status_code, error=error,
                        retry_after=retry_after, duration_ms=duration)
                report.attempts += 1
                report.statuses.append(status)
                if status == "succeeded":
                    report.succeeded += 1
                elif status == "failed":
                    report.failed += 1
                else:
                    report.retrying += 1
            progress("attempts", sent)
            if sent == 0:
                break
    finally:
        if own_client:
            http.close()
    return report


def dispatch_until_idle(db: Database, *, client: httpx.Client | None = None, batch: int = 100,
                        lease: timedelta = LEASE, max_rounds: int = 1000,
                        progress: Callable[[str, int], None] = _no_progress) -> Report:
    """Run :func:`dispatch_once` until a round finds nothing to do (retries scheduled for later
    are left for a later run)."""
    total = Report()
    for _ in range(max_rounds):
        report = dispatch_once(db, client=client, batch=batch, lease=lease, progress=progress)
        for name in ("messages", "attempts", "succeeded", "retrying", "failed", "unsafe"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        total.statuses.extend(report.statuses)
        if report.messages == 0 and report.attempts == 0:
            break
    return total
