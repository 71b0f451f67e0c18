"""T27 for portal users: every signed-in portal request (pages, htmx fragments, forms) draws from
a token bucket of its user; past it, 429 with ``Retry-After``. The limiter runs on a fake clock
here, so the count is exact (no refill while the burst is sent)."""

from __future__ import annotations

import pytest

from allegiance.kit.ratelimit import RateLimiter
from tests.support import figures
from tests.web.conftest import Web, csrf_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the limiter holds no data
def test_portal_user_burst_answers_429_with_retry_after(web: Web) -> None:
    clock = FakeClock()
    burst = 5
    web.app.state.portal_limiter = RateLimiter(  # type: ignore[attr-defined]
        60, burst=burst, message="too many requests: wait a moment and try again", now=clock)
    grace, priya = web.member(0), web.member(1)
    answers = [grace.get("/portal/home") for _ in range(2 * burst)]
    accepted = [r for r in answers if r.status_code == 200]
    limited = [r for r in answers if r.status_code == 429]
    with_retry_after = [r for r in limited if int(r.headers.get("Retry-After", "0")) >= 1]
    figures.record("t27.portal_rate_limit", burst=2 * burst, limit=burst,
                   accepted=len(accepted), refused=len(limited),
                   refused_with_retry_after=len(with_retry_after))
    assert len(accepted) == burst
    assert len(limited) == burst and len(with_retry_after) == burst
    assert "Too many requests" in limited[0].text
    # Forms of the same user are refused too; the CSRF token comes from an earlier page.
    token = csrf_of(accepted[0].text)
    refused_form = grace.post("/portal/switch", data={"csrf_token": token},
                              follow_redirects=False)
    assert refused_form.status_code == 429
    # The limit is per user: another member of the same tenant is served.
    assert priya.get("/portal/home").status_code == 200
    # After Retry-After seconds the bucket has refilled enough for the next request.
    clock.now += int(limited[-1].headers["Retry-After"])
    assert grace.get("/portal/home").status_code == 200
    assert grace.get("/portal/home").status_code == 429


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_portal_limit_is_on_by_default(web: Web) -> None:
    limiter = web.app.state.portal_limiter  # type: ignore[attr-defined]
    assert isinstance(limiter, RateLimiter)
    assert limiter.rate > 0 and limiter.capacity >= 1
