"""The portal's membership page: the account's paid plan with its state, and every perk of
the program with its state (active, or not available and why); in the portal nav, under the
portal's CSP with its nonce (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

from allegiance import memberships
from allegiance.kit import clock
from tests.web.conftest import Web


def _rows(page: str, kind: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(
        rf'<tr data-{kind}="([^"]+)">(.*?)</tr>', page, re.S)}


def test_the_member_sees_its_plan_and_perks(web: Web) -> None:
    program, account = web.program(), web.demo.accounts["dealer_west"]
    with web.db.transaction() as s:
        memberships.create_plan(s, web.tenant_id, program, code="pro", name="Pro membership",
                                fee=9_900, billing="monthly", currency="USD")
        memberships.create_plan(s, web.tenant_id, program, code="vip", name="VIP",
                                fee=50_000, billing="yearly", currency="USD")
        memberships.create_perk(s, web.tenant_id, program, code="priority-support",
                                name="24/7 priority support", plans=["pro"], tiers=[])
        memberships.create_perk(s, web.tenant_id, program, code="lounge", name="VIP lounge",
                                plans=["vip"], tiers=[])
    grace = web.member(0)
    empty = grace.get("/portal/membership")
    assert empty.status_code == 200
    assert "You have no paid plan in this program." in empty.text
    # the program's perks: these two and the demo's (support-line, early-access)
    assert _rows(empty.text, "perk").keys() == {"priority-support", "lounge", "support-line",
                                                "early-access"}
    with web.db.transaction() as s:
        sub = memberships.subscribe(s, web.tenant_id, program, account, "pro", actor="test")
        paid_until = sub.paid_until
    assert paid_until is not None
    response = grace.get("/portal/membership")
    page = response.text
    plans = _rows(page, "plan")
    assert list(plans) == ["pro"]
    assert "Pro membership" in plans["pro"] and "99.00 USD / month" in plans["pro"]
    assert '<span class="badge active" data-status>active</span>' in plans["pro"]
    assert paid_until.strftime("%Y-%m-%d") in plans["pro"]
    perks = _rows(page, "perk")
    assert 'data-state>active</span>' in perks["priority-support"]
    assert "plan pro" in perks["priority-support"]
    assert 'data-state>not available</span>' in perks["lounge"]
    assert "needs plan vip" in perks["lounge"]
    # in the nav, marked as the current page; the page's scripts carry the request's nonce
    assert '<a href="/portal/membership" aria-current="page">Membership</a>' in page
    assert '<a href="/portal/membership"' in grace.get("/portal/home").text
    nonce = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"])
    assert nonce is not None
    styles = re.findall(r"<style[^>]*>", page)
    assert styles and all(f'nonce="{nonce.group(1)}"' in tag for tag in styles)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # no inline script
    assert clock.now() < paid_until


def test_the_demo_shows_a_trial_and_its_perks(web: Web) -> None:
    page = web.member(1).get("/portal/membership").text  # Priya, Bolt & Wire: on the trial
    plans = _rows(page, "plan")
    assert list(plans) == ["partner-plus"] and "data-status>trial</span>" in plans["partner-plus"]
    perks = _rows(page, "perk")
    assert 'data-state>active</span>' in perks["support-line"]
    assert 'data-state>not available</span>' in perks["early-access"]
