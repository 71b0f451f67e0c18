"""The segments and campaigns API: define, refresh, page, export; a campaign for a segment
with preview, start and stop; tenant isolation, scopes and validation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from allegiance import definitions, members
from allegiance.kit import clock
from tests.api.conftest import Api

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)

DOC: dict[str, Any] = {
    "program": {"code": "pro", "name": "Pro", "base_currency": "EUR"},
    "units": [{"code": "points", "name": "Points", "kind": "points", "value_in_base": "0.01"}],
    "rules": [{"code": "base", "trigger": "purchase",
               "effects": [{"type": "points_per_amount", "unit": "points", "rate": "0.01"}]}],
}


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200,
          key: str | None = None) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers(key))
    assert r.status_code == status, r.text
    return r.json() if r.headers.get("content-type", "").startswith("application/json") \
        else r.text


def test_segment_and_campaign(api: Api) -> None:
    with clock.frozen(NOW):
        with api.db.transaction() as s:
            pid = definitions.apply(s, api.tenant_id, DOC, actor="t",
                                    effective_from=EPOCH).program_id
            ids = []
            for region in ("ES", "ES", "PT"):
                acc = members.create_account(s, api.tenant_id, name="Shop", region=region)
                members.ensure_enrolled(s, api.tenant_id, pid, acc.id, "t")
                ids.append(acc.id)
        seg = _call(api, "POST", f"/programs/{pid}/segments",
                    {"code": "spain", "name": "Spain", "condition": 'member.country == "ES"'},
                    201)
        err = _call(api, "POST", f"/programs/{pid}/segments",
                    {"code": "x", "name": "X", "condition": "event.amount > 1"}, 422)
        assert err["error"]["code"] == "invalid_segment"
        done = _call(api, "POST", f"/segments/{seg['id']}/refresh")
        assert (done["entered"], done["left"], done["segment"]["members"]) == (2, 0, 2)
        page = _call(api, "GET", f"/segments/{seg['id']}/members?limit=1")
        assert len(page["items"]) == 1 and page["next_cursor"]
        rest = _call(api, "GET", f"/segments/{seg['id']}/members?limit=1&cursor="
                                 f"{page['next_cursor']}")
        assert {page["items"][0]["account_id"], rest["items"][0]["account_id"]} == set(ids[:2])
        csv = _call(api, "GET", f"/segments/{seg['id']}/export")
        assert csv.splitlines()[0] == "account_id,since" and len(csv.splitlines()) == 3
        camp = _call(api, "POST", f"/programs/{pid}/campaigns", {
            "code": "triple", "name": "Triple points in November", "segments": ["spain"],
            "starts_at": "2026-11-01T00:00:00+00:00", "ends_at": "2026-12-01T00:00:00+00:00",
            "rule": {"trigger": "purchase", "effects": [{"type": "multiplier", "factor": "3"}]}},
            201)
        assert camp["status"] == "draft"
        preview = _call(api, "GET", f"/campaigns/{camp['id']}/preview")
        assert preview["members"] == 2 and preview["rule"]["code"] == "campaign:triple"
        assert _call(api, "POST", f"/campaigns/{camp['id']}/start")["status"] == "active"
        assert _call(api, "POST", f"/campaigns/{camp['id']}/start", status=409)["error"][
            "code"] == "invalid_transition"
        for n, acc in enumerate((ids[0], ids[2])):
            out = _call(api, "POST", f"/programs/{pid}/events",
                        {"external_id": f"e{n}", "account_id": acc, "amount": 10_000}, 201)
            points = sum(a["amount"] for a in out["awards"] if a["unit_code"] == "points")
            assert points == (300 if n == 0 else 100)
        assert _call(api, "POST", f"/campaigns/{camp['id']}/stop")["status"] == "stopped"
        # the dry run over the last 7 days: the Spanish shop's 10,000 tripled adds 200 points
        # (2.00 EUR) to the base rule; the Portuguese shop is not targeted
        got = _call(api, "GET", f"/campaigns/{camp['id']}/preview?days=7")["projection"]
        assert (got["days"], got["events"], got["members"], got["points"]) == (
            7, 1, 1, {"points": 200})
        assert Decimal(str(got["cost"])) == Decimal("2.00") and got["base_currency"] == "EUR"
        assert [(r["rule"], r["points"], Decimal(str(r["cost"])), r["events"])
                for r in got["by_rule"]] == [("base", 200, Decimal("2.00"), 1)]
        _call(api, "GET", f"/campaigns/{camp['id']}/preview?days=0", status=422)
        listed = _call(api, "GET", f"/programs/{pid}/campaigns")["items"]
        assert [c["code"] for c in listed] == ["triple"]
        _, other = api.new_tenant()
        _call(api, "GET", f"/campaigns/{camp['id']}/preview", key=other, status=404)
        _call(api, "GET", f"/programs/{pid}/segments", key=api.key_with(["read"]))
        _call(api, "POST", f"/segments/{seg['id']}/refresh", key=api.key_with(["read"]),
              status=403)


def test_rfm_settings_scores_and_segment(api: Api) -> None:
    with clock.frozen(NOW):
        with api.db.transaction() as s:
            pid = definitions.apply(s, api.tenant_id, DOC, actor="t",
                                    effective_from=EPOCH).program_id
            acc = members.create_account(s, api.tenant_id, name="Shop", region="ES").id
            members.ensure_enrolled(s, api.tenant_id, pid, acc, "t")
        assert _call(api, "GET", f"/programs/{pid}/rfm")["computed_at"] is None
        _call(api, "POST", f"/programs/{pid}/events", {
            "kind": "purchase", "external_id": "o1", "account_id": acc, "amount": 1200}, 201)
        bad = _call(api, "PUT", f"/programs/{pid}/rfm", {"window_days": 0}, 422)
        assert "window_days" in str(bad)
        out = _call(api, "PUT", f"/programs/{pid}/rfm", {"window_days": 90})
        assert (out["window_days"], out["scored"]) == (90, 1)
        assert out["distribution"]["recency"] == {"5": 1}
        mine = _call(api, "GET", f"/programs/{pid}/accounts/{acc}/rfm")
        assert (mine["cell"], mine["spend"], mine["last_purchase_day"]) == \
            ("555", 1200, "2026-11-02")
        seg = _call(api, "POST", f"/programs/{pid}/segments", {
            "code": "buyers", "name": "Buyers", "condition": "member.rfm.recency >= 1"}, 201)
        done = _call(api, "POST", f"/segments/{seg['id']}/refresh")
        assert done["entered"] == 1
