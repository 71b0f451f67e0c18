"""Two tenants, each with one object of every kind an API route takes an id of, built through
the API with each tenant's admin key. The security tests walk ``create_app().routes`` and fill
every path parameter from :attr:`TenantWorld.ids`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from allegiance import definitions, operators, tenants
from allegiance.imports import jobs as import_jobs
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.webhooks import service as webhook_service
from allegiance.webhooks import ssrf
from tests.integration.events_support import EPOCH
from tests.integration.money_support import money_definition


@dataclass
class TenantWorld:
    tenant_id: str
    admin: str
    integration: str
    read: str
    ids: dict[str, str] = field(default_factory=dict)

    def key(self, scope: str) -> str:
        return {"admin": self.admin, "integration": self.integration, "read": self.read}[scope]


def _call(client: TestClient, key: str, method: str, path: str, body: Any = None) -> Any:
    r = client.request(method, f"/v1{path}", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
    return r.json()


def build_tenant(client: TestClient, db: Database, name: str) -> TenantWorld:
    with db.transaction() as s:
        t = tenants.create_tenant(s, name)
        keys = {scope: tenants.create_api_key(s, t.id, name=scope, scopes=[scope]).secret
                for scope in ("admin", "integration", "read")}
    w = TenantWorld(t.id, keys["admin"], keys["integration"], keys["read"])
    ids = w.ids
    a = w.admin

    def call(method: str, path: str, body: Any = None) -> Any:
        return _call(client, a, method, path, body)

    with db.transaction() as s:
        version = definitions.apply(s, t.id, money_definition(), actor="test",
                                    effective_from=EPOCH)
    ids["program_id"] = pid = version.program_id
    units = {u["code"]: u["id"] for u in call("GET", f"/programs/{pid}/units")["items"]}
    ids["unit_id"], ids["money_unit_id"] = units["points"], units["usd"]
    ids["account_id"] = call("POST", "/accounts", {"name": f"{name} dealer"})["id"]
    ids["user_id"] = call("POST", f"/accounts/{ids['account_id']}/users",
                          {"name": "Ann", "role": "owner", "email": "ann@example.com"})["id"]
    ids["enrolment_id"] = call("POST", f"/programs/{pid}/enrolments",
                               {"account_id": ids["account_id"]})["id"]
    ids["invitation_id"] = call("POST", f"/programs/{pid}/invitations",
                                {"email": "bob@example.com"})["id"]
    ids["key_id"] = call("POST", "/api-keys", {"name": "spare", "scopes": ["read"]})["id"]
    ids["ladder_id"] = call("POST", f"/programs/{pid}/tier-ladders", {
        "code": "status", "name": "Status", "metric": "combined_balance",
        "period": {"kind": "calendar_month"},
        "levels": [{"code": "gold", "name": "Gold", "threshold": 100}]})["id"]
    ids["wallet_id"] = call("POST", "/wallets", {
        "program_id": pid, "unit_id": ids["unit_id"], "owner_type": "account",
        "owner_id": ids["account_id"]})["id"]
    ids["entry_id"] = call("POST", f"/programs/{pid}/points", {
        "wallet_id": ids["wallet_id"], "amount": 5000, "kind": "earn"})["entry"]["id"]
    ids["hold_id"] = call("POST", "/holds", {"program_id": pid, "wallet_id": ids["wallet_id"],
                                             "amount": 10})["id"]
    ids["adjustment_id"] = call("POST", "/adjustments", {
        "wallet_id": ids["wallet_id"], "amount": 5, "reason": "goodwill"})["id"]
    ids["reward_id"] = call("POST", f"/programs/{pid}/rewards", {
        "code": "mug", "name": "Mug", "kind": "physical", "unit_id": ids["unit_id"],
        "cost": 100, "requires_approval": True})["id"]
    ids["redemption_id"] = call("POST", f"/programs/{pid}/redemptions", {
        "reward_id": ids["reward_id"], "account_id": ids["account_id"]})["id"]
    ids["event_id"] = call("POST", f"/programs/{pid}/events", {
        "external_id": "INV-1", "member_number": "nobody", "channel": "pos",
        "occurred_at": "2026-03-01T10:00:00+00:00",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": 1500}]})["id"]
    with ssrf.allow_loopback_for_tests():
        ids["endpoint_id"] = call("POST", "/webhook-endpoints", {
            "url": "http://127.0.0.1:9/hook", "event_types": ["*"]})["id"]
    with db.transaction() as s:
        webhook_service.fan_out(s, limit=1000)
    deliveries = call("GET", f"/webhook-endpoints/{ids['endpoint_id']}/deliveries")["items"]
    assert deliveries, "the world needs a webhook delivery"
    ids["delivery_id"] = deliveries[0]["id"]
    _build_new_features(client, db, w)
    _build_money(client, w)
    _build_engage(client, db, w)
    return w


# An import file with one good row and one rejected row (so the job has an error report).
IMPORT_CSV = ("Invoice,Date,Dealer,Article,Qty,Price\n"
              "IMP-1,2026-03-01T10:00:00+00:00,nobody,SKU-1,1,1000\n"
              "IMP-2,2026-03-01T10:00:00+00:00,nobody,SKU-2,many,100\n")
IMPORT_MAPPING = {"columns": {"external_id": "Invoice", "occurred_at": "Date",
                              "member_number": "Dealer", "sku": "Article",
                              "line_quantity": "Qty", "unit_price": "Price"}}


def _build_new_features(client: TestClient, db: Database, w: TenantWorld) -> None:
    """Imports, engagement, memberships, campaigns and reports: one object of each kind."""
    ids = w.ids
    pid, uid, account = ids["program_id"], ids["unit_id"], ids["account_id"]
    later = clock.now() + timedelta(days=365)
    future = (later.isoformat(), (later + timedelta(days=1)).isoformat())

    def call(method: str, path: str, body: Any = None) -> Any:
        return _call(client, w.admin, method, path, body)

    # Imports: a saved mapping (path values source and kind) and a finished upload job.
    ids["source"], ids["kind"] = "erp", "purchases"
    call("PUT", f"/programs/{pid}/import-mappings/erp/purchases", {"mapping": IMPORT_MAPPING})
    r = client.request("POST", f"/v1/programs/{pid}/imports",
                       headers={"Authorization": f"Bearer {w.admin}"},
                       files={"file": ("sales.csv", IMPORT_CSV.encode(), "text/csv")},
                       data={"kind": "purchases", "source": "erp"})
    assert r.status_code == 202, r.text
    ids["job_id"] = r.json()["id"]
    import_jobs.run_pending(db)
    assert call("GET", f"/imports/{ids['job_id']}")["has_error_report"] is True
    # Engagement: a badge, a challenge, a leaderboard, a survey, a member event, a menu.
    call("POST", f"/programs/{pid}/badges",
         {"code": "helper", "name": "Helper", "levels": ["Bronze", "Silver"]})
    call("POST", f"/programs/{pid}/accounts/{account}/badges", {"badge": "helper"})
    ids["challenge_id"] = call("POST", f"/programs/{pid}/challenges", {
        "code": "courses", "name": "Complete a course", "trigger": "activity:course_completed",
        "target": 1, "effects": [{"type": "points", "unit": "points", "amount": 10},
                                 {"type": "badge", "badge": "helper"}]})["id"]
    ids["metric"] = "points_earned"
    ids["survey_id"] = call("POST", f"/programs/{pid}/surveys", {
        "code": "nps-q1", "name": "Q1", "reward_unit_id": uid, "reward_points": 20,
        "questions": [{"code": "nps", "text": "Recommend us?", "kind": "nps"}]})["id"]
    call("POST", f"/surveys/{ids['survey_id']}/responses",
         {"account_id": account, "answers": {"nps": 9}})
    ids["member_event_id"] = call("POST", f"/programs/{pid}/member-events", {
        "code": "awards", "name": "Awards night", "capacity": 10, "starts_at": future[0],
        "ends_at": future[1], "attendance_unit_id": uid, "attendance_points": 5})["id"]
    call("POST", f"/member-events/{ids['member_event_id']}/registrations",
         {"account_id": account})
    call("POST", f"/member-events/{ids['member_event_id']}/sponsors",
         {"name": "Inks Ltd", "contribution": 1000, "account_id": account})
    ids["menu_id"] = call("POST", f"/programs/{pid}/reward-menus", {
        "code": "monthly", "name": "Pick one", "reward_ids": [ids["reward_id"]]})["id"]
    # Memberships: a plan, a perk (path value perk), a subscription with a charge.
    call("POST", f"/programs/{pid}/plans", {"code": "plus", "name": "Plus", "fee": 990,
                                            "billing": "monthly", "trial_days": 0})
    call("POST", f"/programs/{pid}/perks",
         {"code": "priority-support", "name": "Priority support", "plans": ["plus"]})
    ids["perk"] = "priority-support"
    ids["subscription_id"] = call("POST", f"/programs/{pid}/subscriptions",
                                  {"account_id": account, "plan": "plus"})["id"]
    call("POST", f"/subscriptions/{ids['subscription_id']}/payments", {"external_ref": "inv-1"})
    # Campaigns: a refreshed segment and a draft campaign for it.
    ids["segment_id"] = call("POST", f"/programs/{pid}/segments", {
        "code": "everyone", "name": "Everyone", "condition": "member.enrolled_days >= 0"})["id"]
    call("POST", f"/segments/{ids['segment_id']}/refresh")
    ids["campaign_id"] = call("POST", f"/programs/{pid}/campaigns", {
        "code": "double", "name": "Double points", "segments": ["everyone"],
        "starts_at": future[0], "ends_at": future[1],
        "rule": {"trigger": "purchase", "effects": [{"type": "multiplier", "factor": "2"}]}})[
        "id"]
    # Analytics: the report kind of GET /programs/{program_id}/reports/{kind}.
    ids["report_kind"] = "kpis"


def _build_money(client: TestClient, w: TenantWorld) -> None:
    """Rebates, referrals, claims, co-marketing funds and payouts: one object of each kind."""
    ids = w.ids
    pid, usd, account = ids["program_id"], ids["money_unit_id"], ids["account_id"]
    now = clock.now()

    def call(method: str, path: str, body: Any = None) -> Any:
        return _call(client, w.admin, method, path, body)

    ids["schedule_id"] = call("POST", f"/programs/{pid}/rebate-schedules", {
        "code": "volume", "name": "Volume", "unit_id": usd, "period": "quarter",
        "brackets": [{"up_to": 500000, "percent": "1"}, {"percent": "1.5"}]})["id"]
    call("POST", f"/programs/{pid}/discount-schedules", {
        "code": "loyal", "name": "Loyal", "period": "lifetime",
        "brackets": [{"from": 0, "percent": "2"}]})
    call("POST", f"/programs/{pid}/orders",
         {"account_id": account, "order_id": "ORD-1", "amount": 10000})
    ids["plan_id"] = call("POST", f"/programs/{pid}/referral-plans", {
        "code": "mgm", "name": "MGM", "bounty_unit_id": usd, "bounty": 500,
        "referee_reward": 300, "lock_days": 0})["id"]
    code = call("POST", f"/referral-plans/{ids['plan_id']}/codes", {"account_id": account})
    ids["code_id"] = code["id"]
    ids["visitor_id"] = "visitor-1"  # an anonymous visitor's id (clicks): not a stored object
    friend = call("POST", "/accounts", {"name": "Friend"})["id"]
    ids["referral_id"] = call("POST", f"/programs/{pid}/referrals",
                              {"code": code["code"], "account_id": friend})["id"]
    ids["claim_id"] = call("POST", f"/programs/{pid}/claims", {
        "account_id": account, "invoice_number": "INV-0042",
        "invoice_date": (now - timedelta(days=2)).isoformat(), "seller": "Acme Ltd",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": 10000}],
        "proof_ref": "uploads/inv-42.pdf"})["id"]
    ids["fund_id"] = call("POST", f"/programs/{pid}/mdf-funds", {
        "code": "h1", "name": "H1", "unit_id": usd, "budget": 100000,
        "period_start": now.isoformat(), "period_end": (now + timedelta(days=90)).isoformat(),
        "claim_deadline": (now + timedelta(days=120)).isoformat(),
        "formula": {"percent": "50"}})["id"]
    call("POST", f"/mdf-funds/{ids['fund_id']}/allocations",
         {"account_id": account, "amount": 40000})
    ids["mdf_claim_id"] = call("POST", f"/mdf-funds/{ids['fund_id']}/requests", {
        "account_id": account, "activity": "flyer", "estimated_cost": 20000})["id"]
    call("PUT", f"/units/{usd}/payout-policy", {"withdrawable": True, "minimum": 1000})
    wallet = call("POST", "/wallets", {"program_id": pid, "unit_id": usd,
                                       "owner_type": "account", "owner_id": account})["id"]
    call("POST", f"/programs/{pid}/points", {"wallet_id": wallet, "amount": 4200,
                                             "kind": "earn"})
    ids["batch_id"] = call("POST", f"/programs/{pid}/payout-batches",
                           {"unit_id": usd, "label": "2026-01"})["id"]
    ids["item_id"] = call("GET", f"/payout-batches/{ids['batch_id']}")["items"][0]["id"]


def _build_engage(client: TestClient, db: Database, w: TenantWorld) -> None:
    """Account managers and custom requests, courses and certifications, super tickets."""
    ids = w.ids
    pid, uid, account = ids["program_id"], ids["unit_id"], ids["account_id"]
    now = clock.now()

    def call(method: str, path: str, body: Any = None) -> Any:
        return _call(client, w.admin, method, path, body)

    with db.transaction() as s:
        ids["operator_id"] = operators.create_operator(
            s, w.tenant_id, email="manager@example.com", name="Mia Manager",
            role="support", password="a long enough password 42", actor="test").id
    call("PUT", f"/accounts/{account}/manager", {"operator_id": ids["operator_id"]})
    ids["custom_request_id"] = call("POST", f"/programs/{pid}/custom-requests", {
        "account_id": account, "description": "A branded server rack"})["id"]
    call("POST", f"/custom-requests/{ids['custom_request_id']}/quote",
         {"operator_id": ids["operator_id"], "unit_id": uid, "price": 50})
    ids["course_id"] = call("POST", f"/programs/{pid}/courses",
                            {"code": "basics", "name": "Basics"})["id"]
    ids["certification_id"] = call("POST", f"/programs/{pid}/certifications", {
        "code": "certified", "name": "Certified", "courses": ["basics"]})["id"]
    ids["super_ticket_id"] = call("POST", f"/programs/{pid}/super-tickets", {
        "code": "concert", "name": "Concert", "reward_id": ids["reward_id"],
        "mode": "lottery", "winners": 1, "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(days=7)).isoformat()})["id"]
