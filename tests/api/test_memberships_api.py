"""The memberships API: plans, subscription with trial, fees, cancellation, perks and "may
account X use perk Y now?"; tenant isolation, scopes and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from allegiance import members, tenants
from allegiance.kit import clock
from tests.api.conftest import Api

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)


def _setup(api: Api) -> tuple[str, str]:
    with api.db.transaction() as s:
        program = tenants.create_program(s, api.tenant_id, code="club", name="Club",
                                         base_currency="EUR")
        account = members.create_account(s, api.tenant_id, name="Acme")
        return program.id, account.id


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200,
          key: str | None = None, **kw: Any) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers(key, **kw))
    assert r.status_code == status, r.text
    return r.json()


def test_paid_membership_with_trial_renewal_and_perks(api: Api) -> None:
    with clock.frozen(NOW) as c:
        pid, acc = _setup(api)
        plan = _call(api, "POST", f"/programs/{pid}/plans",
                     {"code": "plus", "name": "Plus", "fee": 990, "billing": "monthly",
                      "trial_days": 30, "grace_days": 7}, 201)
        assert (plan["currency"], plan["status"]) == ("EUR", "active")
        _call(api, "POST", f"/programs/{pid}/perks",
              {"code": "priority-support", "name": "24/7 priority support", "plans": ["plus"],
               "tiers": ["partner"]}, 201)
        _call(api, "POST", f"/programs/{pid}/perks",
              {"code": "manager", "name": "Account manager", "tiers": ["partner"]}, 201)
        err = _call(api, "POST", f"/programs/{pid}/perks",
                    {"code": "x", "name": "X", "plans": ["nope"]}, 404)
        assert err["error"]["code"] == "plan_not_found"
        sub = _call(api, "POST", f"/programs/{pid}/subscriptions",
                    {"account_id": acc, "plan": "plus"}, 201, idempotency_key="s1")
        again = _call(api, "POST", f"/programs/{pid}/subscriptions",
                      {"account_id": acc, "plan": "plus"}, 201, idempotency_key="s1")
        assert again["id"] == sub["id"] and sub["status"] == "trial"
        assert _call(api, "POST", f"/programs/{pid}/subscriptions",
                     {"account_id": acc, "plan": "plus"}, 409)["error"][
            "code"] == "already_subscribed"
        perks = _call(api, "GET", f"/programs/{pid}/accounts/{acc}/perks")["items"]
        assert {p["code"]: p["allowed"] for p in perks} == {"manager": False,
                                                            "priority-support": True}
        one = _call(api, "GET", f"/programs/{pid}/accounts/{acc}/perks/priority-support")
        assert one["allowed"] and one["reason"] == "plan plus"
        assert one["until"].startswith("2026-06-07")  # trial end + 7 days of grace
        c.advance(timedelta(days=35))
        assert _call(api, "GET", f"/subscriptions/{sub['id']}")["status"] == "grace"
        charge = _call(api, "POST", f"/subscriptions/{sub['id']}/payments",
                       {"external_ref": "inv-1"})
        assert (charge["amount"], charge["currency"]) == (990, "EUR")
        read = _call(api, "GET", f"/subscriptions/{sub['id']}")
        assert read["status"] == "active" and read["paid_until"].startswith("2026-07-05")
        assert len(_call(api, "GET", f"/subscriptions/{sub['id']}/charges")["items"]) == 1
        cancelled = _call(api, "POST", f"/subscriptions/{sub['id']}/cancel",
                          {"at_period_end": True})
        assert cancelled["status"] == "active" and cancelled["cancel_at"].startswith(
            "2026-07-05")
        c.advance(timedelta(days=40))
        assert _call(api, "GET", f"/programs/{pid}/accounts/{acc}/subscriptions")["items"][
            0]["status"] == "cancelled"
        assert not _call(api, "GET",
                         f"/programs/{pid}/accounts/{acc}/perks/priority-support")["allowed"]
        assert _call(api, "GET", f"/programs/{pid}/accounts/{acc}/perks/nope",
                     status=404)["error"]["code"] == "perk_not_found"


def test_isolation_scopes_and_validation(api: Api) -> None:
    with clock.frozen(NOW):
        pid, acc = _setup(api)
        _, other = api.new_tenant()
        assert _call(api, "GET", f"/programs/{pid}/plans", key=other, status=404)
        reader = api.key_with(["read"])
        _call(api, "POST", f"/programs/{pid}/plans",
              {"code": "p", "name": "P", "fee": 1, "billing": "monthly"}, 403, key=reader)
        _call(api, "POST", f"/programs/{pid}/plans",
              {"code": "p", "name": "P", "fee": -1, "billing": "monthly"}, 422)
        _call(api, "POST", f"/programs/{pid}/plans",
              {"code": "p", "name": "P", "fee": 1, "billing": "weekly"}, 422)
        _call(api, "POST", f"/programs/{pid}/plans",
              {"code": "p", "name": "P", "fee": 1, "billing": "yearly"}, 201)
        assert _call(api, "POST", f"/programs/{pid}/plans",
                     {"code": "p", "name": "P", "fee": 1, "billing": "yearly"}, 409)
        assert _call(api, "POST", f"/programs/{pid}/subscriptions",
                     {"account_id": acc, "plan": "zzz"}, 404)["error"]["code"] == (
            "plan_not_found")
        sub = _call(api, "POST", f"/programs/{pid}/subscriptions",
                    {"account_id": acc, "plan": "p", "external_ref": "first"}, 201)
        assert sub["status"] == "active" and sub["paid_until"].startswith("2027-05-01")
        assert _call(api, "GET", f"/subscriptions/{sub['id']}", key=other, status=404)
        _call(api, "POST", f"/subscriptions/{sub['id']}/cancel", {"at_period_end": False})
        assert _call(api, "POST", f"/subscriptions/{sub['id']}/payments",
                     {"external_ref": "late"}, 409)["error"]["code"] == "not_renewable"
