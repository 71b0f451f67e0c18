"""``python -m bench web``: server time of each main admin and portal page on 10,000 members.

:func:`build` adds demo-like members to the demo tenant fast (bulk inserts of accounts,
users, enrolments, wallets and purchase events; earnings through ``ledger.post_entry`` for
some of them, so every ledger invariant holds); ``tests/web/test_page_speed.py`` uses it to
bound each page's number of SQL statements. This benchmark times each page in-process
(TestClient, no network): the median and the worst of several requests after one warm-up,
against the goal of 200 ms a page. The analytics pages show stored report copies
(``analytics.snapshots``): the warm-up stores them, and the time each took to compute is
printed apart (``web.report`` lines).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select

from allegiance import events, ledger, members, tenants
from allegiance.analytics.models import ReportSnapshot
from allegiance.demo import DEMO_MEMBERS, DEMO_OPERATOR, DemoResult, build_demo
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.ids import new_id
from bench.common import Check, databases, postgres_available, write_results

GOAL_MS = 200.0
SEGMENTS = ("installer", "retailer", "wholesaler")


@dataclass
class Built:
    demo: DemoResult
    accounts: list[str] = field(default_factory=list)
    applied: int = 0


def build(db: Database, n_members: int = 10_000, earners: int = 1_000) -> Built:
    """The demo plus ``n_members`` accounts (one user each, enrolled in Partner Rewards, 1% of
    them waiting as applications), a wallet each, ``earners`` earnings through the ledger and
    two purchases per member plus NPS answers (processed events, as the import stores them)."""
    demo = build_demo(db)
    program = next(p for p in demo.programs if p.code == "partner-rewards")
    tenant = demo.tenant_id
    now = clock.now()
    out = Built(demo)
    accounts, users, enrolments, wallets, buys = [], [], [], [], []
    with db.read() as s:
        unit = tenants.unit_by_code(s, tenant, program.id, "tokens").id
        parent = demo.accounts["distributor"]
    for i in range(n_members):
        account_id, joined = new_id("acc"), now - timedelta(days=(i * 7) % 700)
        accounts.append({
            "tenant_id": tenant, "id": account_id, "parent_id": parent if i % 10 == 0 else None,
            "name": f"Dealer {i:05d}", "member_number": f"M-{i:05d}", "region": "US",
            "email": f"dealer{i:05d}@example.com", "tax_id": None,
            "attributes": {"segment": SEGMENTS[i % 3]}, "status": "active",
            "merged_into_id": None, "created_at": joined, "updated_at": joined})
        users.append({
            "tenant_id": tenant, "id": new_id("usr"), "account_id": account_id,
            "email": f"owner{i:05d}@example.com", "name": f"Owner {i:05d}", "role": "owner",
            "external_id": None, "status": "active", "password_hash": None,
            "created_at": joined, "updated_at": joined})
        status = "applied" if i % 100 == 99 else "active"
        out.applied += status == "applied"
        enrolments.append({
            "tenant_id": tenant, "id": new_id("enr"), "program_id": program.id,
            "account_id": account_id, "status": status, "tier": None, "application": {},
            "created_at": joined, "updated_at": joined})
        if i >= earners:
            wallets.append({
                "tenant_id": tenant, "id": new_id("wal"), "program_id": program.id,
                "unit_id": unit, "owner_type": "account", "owner_id": account_id,
                "purpose": "wallet", "normal": "credit", "no_overdraw": True, "floor": 0,
                "debits_posted": 0, "credits_posted": 0, "debits_pending": 0,
                "credits_pending": 0, "last_activity_at": None, "created_at": joined})
        for k in range(2):
            at = now - timedelta(days=(i * 13 + k * 40) % 330 + 1)
            buys.append(_event(tenant, program.id, account_id, at, 5_000 + (i % 50) * 1_000))
        if i % 10 == 0:
            buys.append(_event(tenant, program.id, account_id, now - timedelta(days=2), 0,
                               {"score": i % 11}))
        out.accounts.append(account_id)
    with db.transaction() as s:
        for model, rows in ((members.Account, accounts), (members.User, users),
                            (members.Enrolment, enrolments), (ledger.LedgerAccount, wallets),
                            (events.Event, buys)):
            for start in range(0, len(rows), 5_000):
                s.execute(insert(model), rows[start:start + 5_000])
    with db.transaction() as s:
        issued = ledger.program_account(s, tenant, program.id, unit, "issued").id
        for i, account_id in enumerate(out.accounts[:earners]):
            wallet = ledger.wallet(s, tenant, program.id, unit, "account", account_id).id
            amount = 100 + (i % 40) * 25
            ledger.post_entry(s, tenant, ledger.EntryRequest(
                program_id=program.id, kind="earn", entry_key=f"bench-web:{account_id}",
                actor="bench", memo="sales", effective_at=now - timedelta(days=i % 300),
                lines=(ledger.Line(issued, unit, ledger.Side.DEBIT, amount),
                       ledger.Line(wallet, unit, ledger.Side.CREDIT, amount))))
    if db.engine.dialect.name == "postgresql":
        # Fresh statistics after the bulk load, as autovacuum would gather them in service;
        # without them the planner joins the wallets' postings by nested loops.
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "ANALYZE")
    return out


def _event(tenant: str, program: str, account: str, at: Any, amount: int,
           nps: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"tenant_id": tenant, "id": new_id("evt"), "program_id": program,
            "kind": "activity" if nps else "purchase", "activity_type": "nps" if nps else None,
            "source": "bench", "external_id": new_id("ext"), "reported_by": "operator",
            "reporter_account_id": None, "account_id": account, "match_key": {},
            "user_id": None, "occurred_at": at, "currency": None if nps else "USD",
            "amount": amount, "quantity": 0, "returned_amount": 0, "channel": None,
            "attributes": nps or {}, "status": "processed", "reason": None,
            "original_event_id": None, "version": None, "created_at": at, "processed_at": at}


def pages(built: Built) -> list[str]:
    """The main admin pages (Member 360 of a demo dealer and of a generated member)."""
    return ["/admin/dashboard", "/admin/members", "/admin/members?q=dealer%2009",
            f"/admin/members/{built.demo.accounts['dealer_west']}",
            f"/admin/members/{built.accounts[0]}", "/admin/redemptions", "/admin/adjustments",
            "/admin/applications", "/admin/co-marketing", "/admin/catalogue", "/admin/imports",
            "/admin/analytics/kpis", "/admin/analytics/liability", "/admin/analytics/breakage",
            "/admin/analytics/retention", "/admin/analytics/clv", "/admin/analytics/uplift",
            "/admin/analytics/nps", "/admin/designer", "/admin/operators", "/admin/claims",
            "/admin/requests", "/admin/audit"]


PORTAL_PAGES = ["/portal/home", "/portal/history", "/portal/catalogue", "/portal/orders",
                "/portal/claims", "/portal/co-marketing", "/portal/referrals",
                "/portal/events", "/portal/challenges", "/portal/requests", "/portal/academy",
                "/portal/team"]


def signed_in(app: Any, where: str = "admin") -> Any:
    """A TestClient signed in as the demo's owner (``admin``) or its first member user
    (``portal``)."""
    import re

    from fastapi.testclient import TestClient

    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get(f"/{where}/sign-in").text)
    assert token is not None
    email, password = DEMO_OPERATOR[:2] if where == "admin" else DEMO_MEMBERS[0]
    response = client.post(f"/{where}/sign-in", data={
        "email": email, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def _engine(engine: str, args: argparse.Namespace, lines: list[str],
            checks: list[Check]) -> None:
    from allegiance.api.app import create_app

    with databases(engine) as dbs:
        db = Database(dbs.new())
        try:
            started = time.perf_counter()
            built = build(db, n_members=args.web_members)
            lines.append(f"web engine={engine} build {args.web_members} members "
                         f"{time.perf_counter() - started:.1f}s")
            print(lines[-1], flush=True)
            app = create_app(db, rate_limit_per_minute=0)
            admin_client, portal_client = signed_in(app), signed_in(app, "portal")
            repeat = 3 if args.quick else 7
            for path in [*pages(built), *PORTAL_PAGES]:
                client = portal_client if path.startswith("/portal") else admin_client
                client.get(path)  # warm-up: templates compiled, session touched
                times = []
                status = 200
                for _ in range(repeat):
                    start = time.perf_counter()
                    status = client.get(path).status_code
                    times.append((time.perf_counter() - start) * 1000)
                median = statistics.median(times)
                lines.append(f"web.page engine={engine} {path} median={median:.0f}ms "
                             f"max={max(times):.0f}ms goal<={GOAL_MS:.0f}ms "
                             f"{'PASS' if median <= GOAL_MS else 'MISS'}")
                print(lines[-1], flush=True)
                checks.append(Check(f"page{path}", engine, status == 200 and median <= GOAL_MS,
                                    f"status {status}, median {median:.0f} ms"))
            with db.read() as s:
                for kind, seconds in s.execute(select(
                        ReportSnapshot.kind, ReportSnapshot.seconds).order_by(
                        ReportSnapshot.kind)):
                    lines.append(f"web.report engine={engine} {kind} computed={seconds:.3f}s "
                                 "(stored; its page reads the copy)")
                    print(lines[-1], flush=True)
        finally:
            db.dispose()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-members", type=int, default=10_000,
                        help="web: members added to the demo (default 10,000)")


def run(args: argparse.Namespace) -> bool:
    lines: list[str] = []
    checks: list[Check] = []
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("web engine=postgres SKIPPED (no server)")
            continue
        _engine(engine, args, lines, checks)
    write_results("web", {"members": args.web_members, "quick": args.quick, "lines": lines},
                  [], checks)
    return all(c.ok for c in checks)


