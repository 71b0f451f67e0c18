"""The tiers API: ladders, account tiers with progress, placement, metric reports,
certifications, recalculation and history; tenant isolation, scopes and validation."""

from __future__ import annotations

from typing import Any

from allegiance import members, tenants, tiers
from tests.api.conftest import Api

LADDER: dict[str, Any] = {
    "code": "status", "name": "Status", "metric": "combined_balance",
    "period": {"kind": "calendar_month"},
    "levels": [
        {"code": "gold", "name": "Gold", "threshold": 2_000_000},
        {"code": "platinum", "name": "Platinum", "threshold": 5_000_000,
         "benefits": {"earn_multiplier": "1.5", "perks": ["priority support"]}},
        {"code": "diamond", "name": "Diamond", "threshold": 10_000_000},
    ],
    "primary": True,
}


def _setup(api: Api) -> tuple[str, str]:
    with api.db.transaction() as s:
        program = tenants.create_program(s, api.tenant_id, code="main", name="Main",
                                         base_currency="USD")
        account = members.create_account(s, api.tenant_id, name="Acme")
        members.enrol(s, api.tenant_id, program.id, account.id, actor="test")
        return program.id, account.id


def _post(api: Api, path: str, body: Any, status: int = 200, key: str | None = None,
          **kw: Any) -> Any:
    r = api.client.post(f"/v1{path}", json=body, headers=api.headers(key, **kw))
    assert r.status_code == status, r.text
    return r.json()


def _get(api: Api, path: str, status: int = 200, key: str | None = None, **params: Any) -> Any:
    r = api.client.get(f"/v1{path}", headers=api.headers(key), params=params)
    assert r.status_code == status, r.text
    return r.json()


def test_ladder_lifecycle(api: Api) -> None:
    program_id, _ = _setup(api)
    ladder = _post(api, f"/programs/{program_id}/tier-ladders", LADDER, 201)
    assert ladder["code"] == "status" and ladder["is_primary"] is True
    assert ladder["definition"]["levels"][1]["benefits"]["earn_multiplier"] == "1.5"
    listed = _get(api, f"/programs/{program_id}/tier-ladders")
    assert [x["id"] for x in listed["items"]] == [ladder["id"]]
    assert _get(api, f"/tier-ladders/{ladder['id']}")["name"] == "Status"
    changed = {**LADDER, "name": "Preferred", "downgrade": {"grace": "one_step"}}
    r = api.client.put(f"/v1/tier-ladders/{ladder['id']}", json=changed, headers=api.headers())
    assert r.status_code == 200, r.text
    assert r.json()["definition"]["downgrade"] == {"grace": "one_step"}
    # Duplicate code in the same program.
    err = _post(api, f"/programs/{program_id}/tier-ladders", {**LADDER, "primary": False}, 409)
    assert err["error"]["field"] == "code"


def test_validation_names_the_field(api: Api) -> None:
    program_id, _ = _setup(api)
    levels = [{"code": "a", "threshold": 10}, {"code": "b", "threshold": 5}]
    err = _post(api, f"/programs/{program_id}/tier-ladders", {**LADDER, "levels": levels}, 422)
    assert err["error"]["field"] == "levels[1].threshold"
    assert "greater than levels[0].threshold" in err["error"]["message"]
    err = _post(api, f"/programs/{program_id}/tier-ladders", {**LADDER, "tenant_id": "x"}, 422)
    err = _post(api, f"/programs/{program_id}/tier-ladders",
                {**LADDER, "period": {"kind": "weekly"}}, 422)


def test_metric_report_status_history_and_placement(api: Api) -> None:
    program_id, account_id = _setup(api)
    _post(api, f"/programs/{program_id}/tier-ladders", LADDER, 201)
    body = {"account_id": account_id, "metric": "combined_balance", "value": 6_000_000}
    out = _post(api, f"/programs/{program_id}/metrics", body, idempotency_key="m-1")
    assert out["moves"] == [{"ladder_code": "status", "account_id": account_id,
                             "from_level": None, "to_level": "platinum", "reason": "upgrade"}]
    replay = api.client.post(f"/v1/programs/{program_id}/metrics", json=body,
                             headers=api.headers(idempotency_key="m-1"))
    assert replay.headers.get("Idempotent-Replayed") == "true"
    state = _get(api, f"/programs/{program_id}/accounts/{account_id}/tiers")
    tier = state["tiers"][0]
    assert (tier["level"], tier["value"], tier["next_level"], tier["needed"]) == (
        "platinum", 6_000_000, "diamond", 4_000_000)
    assert tier["benefits"]["perks"] == ["priority support"]
    assert float(tier["ratio"]) == 0.6
    with api.db.read() as s:
        # enrolment.tier follows the primary ladder
        tier_code = s.query(members.Enrolment.tier).filter_by(account_id=account_id).scalar()
    assert tier_code == "platinum"
    placed = _post(api, f"/programs/{program_id}/accounts/{account_id}/tier-placement",
                   {"level": "diamond", "reason": "key account", "lock": True})
    assert (placed["from_level"], placed["to_level"], placed["reason"]) == (
        "platinum", "diamond", "manual")
    tier = _get(api, f"/programs/{program_id}/accounts/{account_id}/tiers")["tiers"][0]
    assert tier["locked"] is True and tier["lock_reason"] == "key account"
    page = _get(api, f"/programs/{program_id}/accounts/{account_id}/tiers/history", limit=1)
    assert page["items"][0]["to_level"] == "diamond" and page["items"][0]["note"] == "key account"
    rest = _get(api, f"/programs/{program_id}/accounts/{account_id}/tiers/history", limit=1,
                cursor=page["next_cursor"])
    assert rest["items"][0]["to_level"] == "platinum" and rest["next_cursor"] is None
    err = _post(api, f"/programs/{program_id}/accounts/{account_id}/tier-placement",
                {"level": "tin", "reason": "x"}, 422)
    assert err["error"]["field"] == "level"
    err = _post(api, f"/programs/{program_id}/accounts/{account_id}/tier-placement",
                {"level": "gold", "reason": "x", "tier": "gold"}, 422)


def test_recalculation_and_certification(api: Api) -> None:
    program_id, account_id = _setup(api)
    _post(api, f"/programs/{program_id}/tier-ladders", {
        "code": "partner", "metric": "certification:cvap",
        "levels": [{"code": "vap", "threshold": 0}, {"code": "cvap", "threshold": 1}]}, 201)
    result = _post(api, f"/programs/{program_id}/tiers/recalculate", {})
    assert (result["evaluated"], result["upgraded"], result["downgraded"]) == (1, 1, 0)
    assert result["ladders"]["partner"]["upgraded"] == 1
    out = _post(api, f"/programs/{program_id}/accounts/{account_id}/certifications",
                {"certification": "cvap"})
    assert [m["to_level"] for m in out["moves"]] == ["cvap"]
    out = _post(api, f"/programs/{program_id}/accounts/{account_id}/certifications",
                {"certification": "cvap", "granted": False})
    assert [m["to_level"] for m in out["moves"]] == ["vap"]
    with api.db.read() as s:
        assert tiers.multiplier(s, api.tenant_id, program_id, account_id) == 1


def test_scopes(api: Api) -> None:
    program_id, account_id = _setup(api)
    reader = api.key_with(["read"])
    integration = api.key_with(["integration"])
    _post(api, f"/programs/{program_id}/tier-ladders", LADDER, 403, key=reader)
    _post(api, f"/programs/{program_id}/tier-ladders", LADDER, 403, key=integration)
    ladder = _post(api, f"/programs/{program_id}/tier-ladders", LADDER, 201)
    _get(api, f"/tier-ladders/{ladder['id']}", key=reader)
    _post(api, f"/programs/{program_id}/metrics",
          {"account_id": account_id, "metric": "combined_balance", "value": 1}, key=integration)
    _post(api, f"/programs/{program_id}/metrics",
          {"account_id": account_id, "metric": "combined_balance", "value": 1}, 403, key=reader)
    _post(api, f"/programs/{program_id}/tiers/recalculate", {}, 403, key=integration)
    _post(api, f"/programs/{program_id}/accounts/{account_id}/tier-placement",
          {"level": "gold", "reason": "x"}, 403, key=integration)


def test_other_tenant_ids_read_as_not_found(api: Api) -> None:
    program_id, account_id = _setup(api)
    ladder = _post(api, f"/programs/{program_id}/tier-ladders", LADDER, 201)
    _, other = api.new_tenant()
    _get(api, f"/tier-ladders/{ladder['id']}", 404, key=other)
    _get(api, f"/programs/{program_id}/tier-ladders", 404, key=other)
    _get(api, f"/programs/{program_id}/accounts/{account_id}/tiers", 404, key=other)
    _get(api, f"/programs/{program_id}/accounts/{account_id}/tiers/history", 404, key=other)
    r = api.client.put(f"/v1/tier-ladders/{ladder['id']}", json=LADDER,
                       headers=api.headers(other))
    assert r.status_code == 404
    _post(api, f"/programs/{program_id}/metrics",
          {"account_id": account_id, "metric": "combined_balance", "value": 1}, 404, key=other)
    _post(api, f"/programs/{program_id}/accounts/{account_id}/tier-placement",
          {"level": "gold", "reason": "x"}, 404, key=other)
    _post(api, f"/programs/{program_id}/tiers/recalculate", {}, 404, key=other)
    # The other tenant's own program cannot reach this tenant's account either.
    with api.db.transaction() as s:
        tenant_id = tenants.authenticate(s, other).tenant_id
        own = tenants.create_program(s, tenant_id, code="own", name="Own", base_currency="USD")
    _post(api, f"/programs/{own.id}/tier-ladders", LADDER, 201, key=other)
    _post(api, f"/programs/{own.id}/metrics",
          {"account_id": account_id, "metric": "combined_balance", "value": 1}, 404, key=other)
