"""Property: random events imported in bulk from files, and the same events sent one by one
through the API (POST /v1/programs/{id}/events), give identical state — the same balance per
member, the same awards per event (rule, type, unit, line, amount), the same limit usage,
tiers, tier metrics and leaderboard tallies. The program has what the bulk path must get
exactly right: caps per period (max and times), a budget that runs out, a tier ladder whose
level moves members up in the middle of a file, and a tier multiplier."""

from __future__ import annotations

import csv
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from allegiance import engagement, events, imports, ledger, members, tenants, tiers
from allegiance.api.app import create_app
from allegiance.kit.db import Database
from allegiance.rules.models import RuleUsage
from tests.integration.events_support import NOW, Shop, definition
from tests.support.invariants import assert_ledger_invariants

MEMBERS = ("M1", "M2", "M3")
EXTRA_RULES = [
    {"code": "web", "trigger": "purchase", "condition": 'event.channel == "web"',
     "effects": [{"type": "fixed", "unit": "points", "points": 10}],
     "limits": [{"per": "member", "period": "week", "times": 2}]},
    {"code": "sku9", "trigger": "purchase", "condition": 'line.sku == "SKU-9"',
     "effects": [{"type": "points_per_item", "unit": "points", "points": 30}],
     "limits": [{"per": "member", "period": "month", "max": 100}]},
    {"code": "big", "trigger": "purchase", "condition": "event.amount >= 60000",
     "budget": 700, "effects": [{"type": "fixed", "unit": "points", "points": 300}]},
    {"code": "spend", "trigger": "purchase",
     "effects": [{"type": "tier_credit", "metric": "spend"}]},
    {"code": "gold-double", "trigger": "purchase", "condition": 'member.tier == "gold"',
     "effects": [{"type": "multiplier", "factor": "2", "applies_to": ["base"]}]},
]
LADDER = {"code": "status", "name": "Status", "metric": "spend", "primary": True,
          "period": {"kind": "calendar_year"},
          "levels": [{"code": "silver", "name": "Silver", "threshold": 100_000},
                     {"code": "gold", "name": "Gold", "threshold": 300_000}]}

line = st.fixed_dictionaries({
    "sku": st.sampled_from(["SKU-1", "SKU-2", "SKU-9"]),
    "quantity": st.integers(1, 4),
    "unit_price": st.integers(0, 50_000),
})
purchase = st.fixed_dictionaries({
    "member": st.sampled_from(MEMBERS), "day": st.integers(0, 40),
    "channel": st.sampled_from(["web", "store"]),
    "lines": st.lists(line, min_size=1, max_size=3),
})
activity = st.fixed_dictionaries({
    "member": st.sampled_from(MEMBERS), "day": st.integers(0, 40),
    "mandatory": st.booleans(),
})


def bulk_definition() -> dict[str, Any]:
    doc = definition(*EXTRA_RULES)
    doc.pop("counters")  # a program with member counters takes the per-event path
    doc["rules"] = [r for r in doc["rules"] if r["code"] != "two-mandatory"]
    return doc


def shop(db: Database) -> Shop:
    s = Shop(db, bulk_definition())
    with db.transaction() as session:
        tiers.create_ladder(session, s.tenant_id, s.program_id, LADDER)
    for m in MEMBERS:
        s.account(name=m, member_number=m)
    return s


def write_files(folder: Path, purchases: list[dict[str, Any]],
                activities: list[dict[str, Any]]) -> tuple[Path, Path]:
    p_path, a_path = folder / "purchases.csv", folder / "activities.csv"
    with p_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["external_id", "occurred_at", "member_number", "channel", "sku",
                    "line_quantity", "unit_price"])
        for i, p in enumerate(purchases):
            at = (NOW + timedelta(days=p["day"])).isoformat()
            for ln in p["lines"]:
                w.writerow([f"P{i}", at, p["member"], p["channel"], ln["sku"], ln["quantity"],
                            ln["unit_price"]])
    with a_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["external_id", "occurred_at", "member_number", "activity_type",
                    "attributes.course_id", "attributes.mandatory"])
        for i, a in enumerate(activities):
            w.writerow([f"A{i}", (NOW + timedelta(days=a["day"])).isoformat(), a["member"],
                        "course_completed", f"c{i}", "true" if a["mandatory"] else "false"])
    return p_path, a_path


def send_one_by_one(client: TestClient, key: str, s: Shop, purchases: list[dict[str, Any]],
                    activities: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    url = f"/v1/programs/{s.program_id}/events"
    for i, p in enumerate(purchases):
        body = {"external_id": f"P{i}", "source": "import", "member_number": p["member"],
                "occurred_at": (NOW + timedelta(days=p["day"])).isoformat(),
                "channel": p["channel"], "lines": p["lines"]}
        assert client.post(url, json=body, headers=headers).status_code == 201
    for i, a in enumerate(activities):
        body = {"external_id": f"A{i}", "source": "import", "member_number": a["member"],
                "kind": "activity", "activity_type": "course_completed",
                "occurred_at": (NOW + timedelta(days=a["day"])).isoformat(),
                "attributes": {"course_id": f"c{i}", "mandatory": a["mandatory"]}}
        assert client.post(url, json=body, headers=headers).status_code == 201


def state_of(db: Database, s: Shop) -> dict[str, Any]:
    """Everything an event leaves behind, by member number and external id (ids differ)."""
    with db.read() as session:
        number = {a.id: a.member_number for a in session.scalars(
            select(members.Account).where(members.Account.tenant_id == s.tenant_id))}
        awards: dict[str, list[Any]] = {}
        for ext, *rest in session.execute(
                select(events.Event.external_id, events.EventAward.award_no,
                       events.EventAward.rule_code, events.EventAward.type,
                       events.EventAward.unit_code, events.EventAward.line_no,
                       events.EventAward.amount, events.EventAward.data,
                       events.EventAward.entry_id.is_not(None))
                .join(events.Event, (events.Event.tenant_id == events.EventAward.tenant_id)
                      & (events.Event.id == events.EventAward.event_id))
                .where(events.EventAward.tenant_id == s.tenant_id)):
            awards.setdefault(ext, []).append(tuple(rest))
        entries = sorted(session.scalars(select(ledger.JournalEntry.kind).where(
            ledger.JournalEntry.tenant_id == s.tenant_id)).all())
        usage = sorted((number[u.member_id], u.rule_code, u.limit_index, u.period_key,
                        u.used_amount, u.used_times) for u in session.scalars(
            select(RuleUsage).where(RuleUsage.tenant_id == s.tenant_id)))
        metrics = sorted((number[m.account_id], m.metric, m.bucket, m.value, m.updated_at)
                         for m in session.scalars(select(tiers.TierMetric).where(
                             tiers.TierMetric.tenant_id == s.tenant_id)))
        statuses = sorted((number[t.account_id], t.level_code, t.anchor_month, t.version)
                          for t in session.scalars(select(tiers.TierStatus).where(
                              tiers.TierStatus.tenant_id == s.tenant_id)))
        enrolled = sorted((number[e.account_id], e.tier) for e in session.scalars(
            select(members.Enrolment).where(members.Enrolment.tenant_id == s.tenant_id)))
        tallies = sorted((number[t.account_id], t.day, t.sales, t.purchases, t.activities,
                          t.points) for t in session.scalars(select(engagement.Tally).where(
                              engagement.Tally.tenant_id == s.tenant_id)))
        accounts = {m: members.find_account(session, s.tenant_id, member_number=m).id
                    for m in MEMBERS}
    balances = {}
    for m, account_id in accounts.items():
        balance = s.wallet(account_id)
        balances[m] = (balance.posted, balance.available)
    return {"balances": balances, "awards": {k: sorted(v, key=repr) for k, v in awards.items()},
            "entries": entries, "usage": usage, "metrics": metrics, "statuses": statuses,
            "enrolled": enrolled, "tallies": tallies}


@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(purchases=st.lists(purchase, min_size=1, max_size=14),
       activities=st.lists(activity, max_size=5), batch=st.sampled_from([3, 8, 1000]))
def test_bulk_import_and_one_by_one_give_identical_state(
        db: Database, purchases: list[dict[str, Any]], activities: list[dict[str, Any]],
        batch: int) -> None:
    bulk, api = shop(db), shop(db)
    with db.transaction() as session:
        key = tenants.create_api_key(session, api.tenant_id, name="k",
                                     scopes=["admin"]).secret
    with tempfile.TemporaryDirectory() as folder:
        p_path, a_path = write_files(Path(folder), purchases, activities)
        mapping = imports.mapping_from({"types": {"mandatory": "bool"}}, "activities")
        report = imports.run(db, bulk.tenant_id, "main", "purchases", p_path, batch=batch)
        assert report.created == len(purchases) and report.rejected_rows == 0
        # a member whose tier could move takes the per-event path
        assert report.paths.bulk + report.paths.per_event == len(purchases)
        report = imports.run(db, bulk.tenant_id, "main", "activities", a_path, batch=batch,
                             mapping=mapping)
        assert report.created == len(activities) and report.rejected_rows == 0
    with TestClient(create_app(db, rate_limit_per_minute=0)) as client:
        send_one_by_one(client, key, api, purchases, activities)
    assert state_of(db, bulk) == state_of(db, api)
    assert_ledger_invariants(db)
