"""T28: GDPR export and erasure. After erasure no personal value of the member is left in any
table (profile, users, invitations, shipping, outbox, audit), balances and the ledger are
unchanged and balanced, the audit chain verifies, and member.erased is emitted once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from allegiance import audit, definitions, members, tenants
from allegiance.kit.models import OutboxMessage
from allegiance.registry import metadata
from tests.api.conftest import Api
from tests.integration.events_support import EPOCH, definition
from tests.support import figures
from tests.support.invariants import assert_ledger_invariants

MARK = "Zyx9PII"


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers())
    assert r.status_code == status, r.text
    return r.json()


def _hits(api: Api) -> list[str]:
    found = []
    with api.db.read() as s:
        for table in metadata.sorted_tables:
            for row in s.execute(select(table)).all():
                if MARK.lower() in repr(tuple(row)).lower():
                    found.append(table.name)
    return found


def _plant_in_features(api: Api, pid: str, acc: str) -> None:
    """The member's personal values in other features: a referral sign-up (e-mail, tax id,
    device), an affiliate application, a free-text survey answer, an event sponsorship."""
    plan = _call(api, "POST", f"/programs/{pid}/referral-plans", {"code": "mgm", "name": "MGM"},
                 201)
    referrer = _call(api, "POST", "/accounts", {"name": "Referrer Ltd"}, 201)
    code = _call(api, "POST", f"/referral-plans/{plan['id']}/codes",
                 {"account_id": referrer["id"]})
    _call(api, "POST", f"/programs/{pid}/referrals", {
        "code": code["code"], "account_id": acc, "email": f"signup.{MARK}@example.com",
        "tax_id": f"{MARK}-9", "device_hash": f"{MARK}-device"}, 201)
    _call(api, "POST", f"/referral-plans/{plan['id']}/codes",
          {"account_id": acc, "application": {"website": f"https://{MARK}.example"}})
    survey = _call(api, "POST", f"/programs/{pid}/surveys", {
        "code": "csat", "name": "CSAT", "questions": [
            {"code": "nps", "text": "Recommend us?", "kind": "nps"},
            {"code": "why", "text": "Why?", "kind": "text", "required": False}]}, 201)
    _call(api, "POST", f"/surveys/{survey['id']}/responses",
          {"account_id": acc, "answers": {"nps": 9, "why": f"ask {MARK} anything"}}, 201)
    event = _call(api, "POST", f"/programs/{pid}/member-events", {
        "code": "gala", "name": "Gala", "starts_at": "2030-01-01T18:00:00Z",
        "ends_at": "2030-01-01T23:00:00Z"}, 201)
    _call(api, "POST", f"/member-events/{event['id']}/sponsors", {
        "name": f"{MARK} Garage", "account_id": acc, "contribution": 1000, "currency": "USD",
        "note": f"{MARK} pays"}, 201)


def test_export_then_erase_leaves_no_personal_data_and_a_sound_ledger(api: Api) -> None:
    program = _call(api, "POST", "/programs", {"code": "p", "name": "P",
                                                "base_currency": "USD"}, 201)
    pid = program["id"]
    unit = _call(api, "POST", f"/programs/{pid}/units",
                 {"code": "points", "name": "Points", "kind": "points"}, 201)
    account = _call(api, "POST", "/accounts", {
        "name": f"{MARK} Garage", "email": f"{MARK}@example.com", "tax_id": f"{MARK}-TAX",
        "attributes": {"owner": f"{MARK} Owner"}}, 201)
    acc = account["id"]
    user = _call(api, "POST", f"/accounts/{acc}/users", {
        "name": f"{MARK} Person", "email": f"person.{MARK}@example.com", "role": "owner",
        "external_id": f"crm-{MARK}"}, 201)
    invitation = _call(api, "POST", f"/programs/{pid}/invitations",
                       {"email": f"invite.{MARK}@example.com", "account_id": acc}, 201)
    _call(api, "POST", "/invitations/accept", {"token": invitation["token"], "account_id": acc})
    wallet = _call(api, "POST", "/wallets", {"program_id": pid, "unit_id": unit["id"],
                                             "owner_type": "account", "owner_id": acc}, 201)
    _call(api, "POST", f"/programs/{pid}/points",
          {"wallet_id": wallet["id"], "amount": 700, "kind": "earn"}, 201)
    reward = _call(api, "POST", f"/programs/{pid}/rewards", {
        "code": "mug", "name": "Mug", "kind": "physical", "unit_id": unit["id"], "cost": 200},
        201)
    _call(api, "POST", f"/programs/{pid}/redemptions", {
        "reward_id": reward["id"], "account_id": acc,
        "shipping": {"address": f"1 {MARK} Street"}}, 201)
    _plant_in_features(api, pid, acc)
    with api.db.transaction() as s:  # a payload naming the member, as a webhook would carry
        from allegiance.kit import outbox
        outbox.emit(s, api.tenant_id, "member.updated",
                    {"account_id": acc, "name": f"{MARK} Garage", "email": f"{MARK}@example.com"})
    balance_before = _call(api, "GET", f"/wallets/{wallet['id']}")["balance"]
    assert _hits(api), "the marker must be somewhere before erasure"

    exported = _call(api, "GET", f"/accounts/{acc}/personal-data")
    assert exported["account"]["email"] == f"{MARK}@example.com"
    assert [u["id"] for u in exported["users"]] == [user["id"]]
    assert "password_hash" not in exported["users"][0]
    assert exported["wallets"][0]["balance"]["posted"] == balance_before["posted"]
    assert exported["redemptions"] and exported["invitations"]

    erased = _call(api, "POST", f"/accounts/{acc}/erase", {"reason": "DSR-1"})
    assert erased["users"] == 1 and erased["outbox_messages"] >= 1
    again = _call(api, "POST", f"/accounts/{acc}/erase", {"reason": "DSR-1"}, 409)
    assert again["error"]["code"] == "already_erased"

    hits = _hits(api)
    balance_after = _call(api, "GET", f"/wallets/{wallet['id']}")["balance"]
    with api.db.read() as s:
        chain = audit.verify(s, api.tenant_id)
        erased_messages = [m.payload for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == api.tenant_id,
            OutboxMessage.event_type == "member.erased"))]
        actions = [r.action for r in audit.history(s, api.tenant_id, "account", acc)]
    figures.record("t28.gdpr_erasure", pii_marker_hits=len(hits),
                   balances_unchanged=balance_after == balance_before,
                   audit_chain_ok=chain.first_bad_seq is None,
                   member_erased_emitted=len(erased_messages))
    assert hits == []
    assert balance_after == balance_before
    assert chain.first_bad_seq is None and chain.rows > 0
    assert len(erased_messages) == 1 and erased_messages[0]["account_id"] == acc
    assert "account.erased" in actions and "account.personal_data_exported" in actions
    shown = _call(api, "GET", f"/accounts/{acc}")
    assert shown["status"] == "erased" and shown["email"] is None
    assert_ledger_invariants(api.db)


def test_erasure_is_tenant_scoped_and_admin_only(api: Api) -> None:
    other_tenant, other_key = api.new_tenant()
    with api.db.transaction() as s:
        tenants.get_tenant(s, other_tenant)
    account = _call(api, "POST", "/accounts", {"name": "Mine"}, 201)
    r = api.client.post(f"/v1/accounts/{account['id']}/erase", json={"reason": "x"},
                        headers=api.headers(other_key))
    assert r.status_code == 404
    reader = api.key_with(["integration"])
    r = api.client.post(f"/v1/accounts/{account['id']}/erase", json={"reason": "x"},
                        headers=api.headers(reader))
    assert r.status_code == 403
    r = api.client.get(f"/v1/accounts/{account['id']}/personal-data",
                       headers=api.headers(reader))
    assert r.status_code == 403


PURCHASE = {"external_id": "INV-1", "member_number": "M-ERASE", "channel": "pos",
            "occurred_at": "2026-03-01T10:00:00+00:00",
            "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price": 1500}]}


def _count(api: Api, table: str) -> int:
    with api.db.read() as s:
        return int(s.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def test_an_erased_member_s_events_are_refused_and_its_earlier_purchases_return(
        api: Api) -> None:
    """After erasure an event naming the member is a 409 ``account_erased`` naming the field
    that named it, with nothing written (no event, no unmatched row, no points, no enrolment);
    a return of a purchase made before the erasure still reverses what it earned."""
    with api.db.transaction() as s:
        version = definitions.apply(s, api.tenant_id, definition(), actor="test",
                                    effective_from=EPOCH)
        acc = members.create_account(s, api.tenant_id, name="Gone Ltd",
                                     member_number="M-ERASE").id
    pid = version.program_id
    key = api.key_with(["integration"])
    before = api.client.post(f"/v1/programs/{pid}/events", json=PURCHASE,
                             headers=api.headers(key))
    assert before.status_code == 201, before.text
    earned = before.json()["balances"][0]["available"]
    assert earned == 40  # 30 base + 2 x 5 genuine
    erased = _call(api, "POST", f"/accounts/{acc}/erase", {"reason": "DSR-2"})
    assert erased["enrolments"] == 1

    counts = {t: _count(api, t) for t in ("event", "journal_entry", "enrolment_change")}
    for body, field in (({**PURCHASE, "external_id": "INV-2"}, "member_number"),
                        ({**PURCHASE, "external_id": "INV-3", "member_number": None,
                          "account_id": acc}, "account_id")):
        r = api.client.post(f"/v1/programs/{pid}/events", json=body, headers=api.headers(key))
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "account_erased"
        assert r.json()["error"]["field"] == field
    activity = {"external_id": "ACT-1", "account_id": acc, "kind": "activity",
                "activity_type": "newsletter_opt_in", "occurred_at": "2026-03-02T10:00:00Z"}
    r = api.client.post(f"/v1/programs/{pid}/events", json=activity, headers=api.headers(key))
    assert r.status_code == 409 and r.json()["error"]["code"] == "account_erased"
    assert {t: _count(api, t) for t in counts} == counts  # nothing written
    # a replay of the purchase made before the erasure answers with the stored event
    replay = api.client.post(f"/v1/programs/{pid}/events", json=PURCHASE,
                             headers=api.headers(key))
    assert replay.status_code == 200 and replay.json()["id"] == before.json()["id"]

    ret = api.client.post(f"/v1/programs/{pid}/returns", json={
        "external_id": "RET-1", "original_external_id": "INV-1",
        "lines": [{"line_no": 1, "quantity": 1}]}, headers=api.headers(key))
    assert ret.status_code == 201, ret.text
    assert ret.json()["balances"][0]["available"] == earned - 15 - 5
    enrolments = _call(api, "GET", f"/programs/{pid}/enrolments?account_id={acc}")
    assert [e["status"] for e in enrolments["items"]] == ["closed"]
    assert_ledger_invariants(api.db)
