"""The events API: purchases and activities (201, replay 200 with the same event), returns,
dry-run, reads with lines/awards/balances, the unmatched queue and its resolution; tenant
isolation, scopes and validation (422 naming the field, nothing written)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from allegiance import definitions, members
from tests.api.conftest import Api
from tests.integration.events_support import EPOCH, definition


def _setup(api: Api, tenant_id: str | None = None) -> tuple[str, str]:
    tenant = tenant_id or api.tenant_id
    with api.db.transaction() as s:
        version = definitions.apply(s, tenant, definition(), actor="test", effective_from=EPOCH)
        account = members.create_account(s, tenant, name="Acme", member_number="M-1")
        return version.program_id, account.id


def _post(api: Api, path: str, body: Any, status: int, key: str | None = None,
          **kw: Any) -> Any:
    r = api.client.post(f"/v1{path}", json=body, headers=api.headers(key, **kw))
    assert r.status_code == status, r.text
    return r.json()


def _get(api: Api, path: str, expect: int = 200, key: str | None = None,
         **params: Any) -> Any:
    r = api.client.get(f"/v1{path}", headers=api.headers(key), params=params)
    assert r.status_code == expect, r.text
    return r.json()


def _count(api: Api, table: str) -> int:
    with api.db.read() as s:
        return int(s.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


PURCHASE = {
    "external_id": "INV-1", "member_number": "M-1", "channel": "pos",
    "occurred_at": "2026-03-01T10:00:00+00:00",
    "lines": [{"sku": "SKU-1", "name": "Filter", "quantity": 2, "unit_price": 1500},
              {"sku": "X-9", "quantity": 1, "amount": 1000, "labels": ["promo"]}],
}


def test_purchase_replay_read_and_return(api: Api) -> None:
    program_id, account_id = _setup(api)
    key = api.key_with(["integration"])
    created = _post(api, f"/programs/{program_id}/events", PURCHASE, 201, key=key)
    assert created["status"] == "processed" and created["account_id"] == account_id
    assert created["amount"] == 4000 and [x["amount"] for x in created["lines"]] == [3000, 1000]
    points = {a["rule_code"]: a["amount"] for a in created["awards"] if a["unit_code"]}
    assert points == {"base": 40, "genuine": 10}
    assert created["balances"][0]["available"] == 50 and created["balances"][0]["owed"] == 0
    replay = api.client.post(f"/v1/programs/{program_id}/events", json=PURCHASE,
                             headers=api.headers(key))
    assert replay.status_code == 200 and replay.headers["Event-Replayed"] == "true"
    assert replay.json()["id"] == created["id"]
    assert replay.json()["balances"][0]["available"] == 50
    read = _get(api, f"/events/{created['id']}", key=api.key_with(["read"]))
    assert read["lines"][1]["labels"] == ["promo"] and len(read["awards"]) == len(
        created["awards"])
    ret = _post(api, f"/programs/{program_id}/returns",
                {"external_id": "RET-1", "original_external_id": "INV-1",
                 "lines": [{"line_no": 1, "quantity": 1}]}, 201, key=key)
    assert ret["kind"] == "return" and ret["original_event_id"] == created["id"]
    assert ret["amount"] == 1500
    assert ret["balances"][0]["available"] == 50 - 15 - 5
    again = api.client.post(f"/v1/programs/{program_id}/returns",
                            json={"external_id": "RET-1", "original_external_id": "INV-1",
                                  "lines": [{"line_no": 1, "quantity": 1}]},
                            headers=api.headers(key))
    assert again.status_code == 200 and again.json()["id"] == ret["id"]
    too_much = _post(api, f"/programs/{program_id}/returns",
                     {"external_id": "RET-2", "original_event_id": created["id"],
                      "lines": [{"line_no": 1, "quantity": 5}]}, 422, key=key)
    assert too_much["error"]["code"] == "return_exceeds_purchase"
    assert too_much["error"]["field"] == "lines[0].quantity"
    listed = _get(api, f"/programs/{program_id}/events", kind="return")
    assert [e["id"] for e in listed["items"]] == [ret["id"]]


def test_idempotency_key_replays_the_same_response(api: Api) -> None:
    program_id, _ = _setup(api)
    body = {**PURCHASE, "external_id": "INV-IK"}
    first = api.client.post(f"/v1/programs/{program_id}/events", json=body,
                            headers=api.headers(idempotency_key="k-1"))
    second = api.client.post(f"/v1/programs/{program_id}/events", json=body,
                             headers=api.headers(idempotency_key="k-1"))
    assert first.status_code == 201 and second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json() == second.json()
    assert _count(api, "event") == 1


def test_activity_and_validation(api: Api) -> None:
    program_id, account_id = _setup(api)
    body = {"kind": "activity", "activity_type": "course_completed", "external_id": "C-1",
            "account_id": account_id, "attributes": {"course_id": "x", "mandatory": True}}
    out = _post(api, f"/programs/{program_id}/events", body, 201)
    assert [a["amount"] for a in out["awards"] if a["unit_code"]] == [50]
    bad = _post(api, f"/programs/{program_id}/events",
                {**body, "external_id": "C-2", "attributes": {"score": "high"}}, 422)
    assert bad["error"]["field"] == "attributes.score"
    for wrong, field in (
        ({**PURCHASE, "external_id": "V-1", "amount": 10.5}, "amount"),
        ({**PURCHASE, "external_id": "V-2", "balance": 100}, "balance"),
        ({**PURCHASE, "external_id": "V-3", "lines": [{"sku": "A", "quantity": 0}]},
         "lines[0].quantity"),
        ({"member_number": "M-1"}, "external_id"),
        ({**PURCHASE, "external_id": "V-4", "reported_by": "robot"}, "reported_by"),
    ):
        err = _post(api, f"/programs/{program_id}/events", wrong, 422)
        assert field in (err["error"].get("field") or ""), (wrong, err)
    assert _count(api, "event") == 1


def test_unmatched_queue_and_match(api: Api) -> None:
    program_id, account_id = _setup(api)
    body = {**PURCHASE, "external_id": "U-1", "member_number": "UNKNOWN"}
    out = _post(api, f"/programs/{program_id}/events", body, 201)
    assert out["status"] == "unmatched" and out["awards"] == []
    queue = _get(api, f"/programs/{program_id}/events", status="unmatched")
    assert [e["id"] for e in queue["items"]] == [out["id"]]
    assert queue["items"][0]["match_key"] == {"member_number": "UNKNOWN"}
    integration = api.key_with(["integration"])
    _post(api, f"/events/{out['id']}/match", {"account_id": account_id}, 403, key=integration)
    matched = _post(api, f"/events/{out['id']}/match", {"account_id": account_id}, 200)
    assert matched["status"] == "processed" and matched["account_id"] == account_id
    assert matched["balances"][0]["available"] == 50
    assert _get(api, f"/programs/{program_id}/events", status="unmatched")["items"] == []
    _post(api, f"/events/{out['id']}/match", {"account_id": account_id}, 409)


def test_dry_run(api: Api) -> None:
    program_id, _ = _setup(api)
    before = _count(api, "posting")
    out = _post(api, f"/programs/{program_id}/events/dry-run", PURCHASE, 200,
                key=api.key_with(["read"]))
    assert {(a["rule"], a["line"]): a["amount"] for a in out["awards"]} == {
        ("base", None): 40, ("genuine", 1): 10}
    assert any(t["rule"] == "course" and not t["matched"] for t in out["traces"])
    assert out["matched"] is True and out["version"] == 1
    assert _count(api, "posting") == before and _count(api, "event") == 0


def test_pagination(api: Api) -> None:
    program_id, account_id = _setup(api)
    ids = [_post(api, f"/programs/{program_id}/events",
                 {"external_id": f"P-{i}", "account_id": account_id, "amount": 100}, 201)["id"]
           for i in range(5)]
    page = _get(api, f"/programs/{program_id}/events", limit=2, account_id=account_id)
    seen = [e["id"] for e in page["items"]]
    while page["next_cursor"]:
        page = _get(api, f"/programs/{program_id}/events", limit=2,
                    cursor=page["next_cursor"], account_id=account_id)
        seen += [e["id"] for e in page["items"]]
    assert seen == ids


def test_other_tenant_cannot_see_or_touch_events(api: Api) -> None:
    program_id, account_id = _setup(api)
    out = _post(api, f"/programs/{program_id}/events", PURCHASE, 201)
    other_tenant, other_key = api.new_tenant()
    assert _get(api, f"/events/{out['id']}", 404, key=other_key)["error"]["code"] == (
        "event_not_found")
    _post(api, f"/programs/{program_id}/events", {**PURCHASE, "external_id": "Z"}, 404,
          key=other_key)
    _post(api, f"/programs/{program_id}/returns",
          {"external_id": "Z", "original_event_id": out["id"]}, 404, key=other_key)
    _post(api, f"/events/{out['id']}/match", {"account_id": account_id}, 404, key=other_key)
    _get(api, f"/programs/{program_id}/events", 404, key=other_key)
    _post(api, f"/programs/{program_id}/events/dry-run", PURCHASE, 404, key=other_key)
    # The same external id in another tenant is another event (no false dedupe).
    other_program, _ = _setup(api, other_tenant)
    theirs = _post(api, f"/programs/{other_program}/events", PURCHASE, 201, key=other_key)
    assert theirs["id"] != out["id"]
    # A read-only key cannot report events.
    _post(api, f"/programs/{program_id}/events", {**PURCHASE, "external_id": "R"}, 403,
          key=api.key_with(["read"]))
