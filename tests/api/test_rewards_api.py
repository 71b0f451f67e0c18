"""The rewards API: catalogue, code pools, redemptions with approval, coupons; tenant
isolation, scopes, idempotency and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from allegiance import audit, ledger, members, tenants
from tests.api.conftest import Api
from tests.support.invariants import assert_ledger_invariants


def _setup(api: Api, region: str = "US", points: int = 1000,
           expiry: dict[str, Any] | None = None) -> tuple[str, str, str]:
    with api.db.transaction() as s:
        program = tenants.create_program(s, api.tenant_id, code="main", name="Main",
                                         base_currency="USD")
        unit = tenants.create_unit(s, api.tenant_id, program.id, code="points", name="Points",
                                   kind="points", value_in_base="0.01",
                                   expiry_policy=expiry or {"kind": "never"})
        account = members.create_account(s, api.tenant_id, name="Acme", region=region)
        issued = ledger.program_account(s, api.tenant_id, program.id, unit.id, "issued")
        wallet = ledger.wallet(s, api.tenant_id, program.id, unit.id, "account", account.id)
        ledger.post_entry(s, api.tenant_id, ledger.EntryRequest(
            program_id=program.id, kind="issue",
            lines=(ledger.Line(issued.id, unit.id, ledger.Side.DEBIT, points),
                   ledger.Line(wallet.id, unit.id, ledger.Side.CREDIT, points))))
        return program.id, unit.id, account.id


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200,
          key: str | None = None, **kw: Any) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers(key, **kw))
    assert r.status_code == status, r.text
    return r.json()


def _available(api: Api, program_id: str, unit_id: str, account_id: str) -> int:
    with api.db.transaction() as s:
        return ledger.balance_of(ledger.wallet(s, api.tenant_id, program_id, unit_id,
                                               "account", account_id)).available


def test_a_redemption_from_points_that_expire_consumes_their_lots(api: Api) -> None:
    """Points that expire keep lots: the API's redemption (approved at once) posts, then
    consumes the oldest lot once the posting's answer is read, before COMMIT — on PostgreSQL
    too, where the end of the unit of work is pipelined."""
    pid, uid, acc = _setup(api, expiry={"kind": "after_months", "months": 24})
    rw = _call(api, "POST", f"/programs/{pid}/rewards",
               {"code": "mug", "name": "Mug", "kind": "physical", "unit_id": uid, "cost": 300},
               201)
    red = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": rw["id"], "account_id": acc}, 201, idempotency_key="lots-1")
    assert red["status"] == "approved"
    assert _available(api, pid, uid, acc) == 700
    with api.db.read(api.tenant_id) as s:
        assert list(s.scalars(select(ledger.Lot.remaining))) == [700]
    assert_ledger_invariants(api.db)


def test_catalogue_and_redemption_lifecycle(api: Api) -> None:
    pid, uid, acc = _setup(api)
    body = {"code": "tv", "name": "TV", "kind": "physical", "unit_id": uid, "cost": 300,
            "stock": 2, "requires_approval": True, "eligible_regions": ["US"]}
    rw = _call(api, "POST", f"/programs/{pid}/rewards", body, 201)
    assert (rw["stock"], rw["status"], rw["eligible_regions"]) == (2, "active", ["US"])
    assert _call(api, "POST", f"/programs/{pid}/rewards", body, 409)["error"]["code"] == (
        "duplicate_reward")
    page = _call(api, "GET", f"/programs/{pid}/rewards?account_id={acc}")
    assert [r["id"] for r in page["items"]] == [rw["id"]]
    red = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": rw["id"], "account_id": acc,
                 "shipping": {"address": "1 Main St"}}, 201, idempotency_key="r1")
    again = _call(api, "POST", f"/programs/{pid}/redemptions",
                  {"reward_id": rw["id"], "account_id": acc,
                   "shipping": {"address": "1 Main St"}}, 201, idempotency_key="r1")
    assert again["id"] == red["id"] and red["status"] == "requested"
    assert _available(api, pid, uid, acc) == 700
    assert _call(api, "GET", f"/rewards/{rw['id']}")["stock"] == 1
    listed = _call(api, "GET", f"/programs/{pid}/redemptions?status=requested")
    assert [r["id"] for r in listed["items"]] == [red["id"]]
    ok = _call(api, "POST", f"/redemptions/{red['id']}/approve")
    assert ok["status"] == "approved" and ok["entry_id"]
    done = _call(api, "POST", f"/redemptions/{red['id']}/fulfil",
                 {"shipping": {"carrier": "UPS", "status": "shipped"}})
    assert done["status"] == "fulfilled"
    assert done["shipping"] == {"address": "1 Main St", "carrier": "UPS", "status": "shipped"}
    assert _call(api, "POST", f"/redemptions/{red['id']}/cancel", None, 409)["error"][
        "code"] == "invalid_transition"
    second = _call(api, "POST", f"/programs/{pid}/redemptions",
                   {"reward_id": rw["id"], "account_id": acc}, 201)
    rejected = _call(api, "POST", f"/redemptions/{second['id']}/reject", {"reason": "no"})
    assert rejected["status"] == "rejected" and rejected["reason"] == "no"
    assert _available(api, pid, uid, acc) == 700
    upd = _call(api, "PATCH", f"/rewards/{rw['id']}", {"stock": 0, "name": "Big TV"})
    assert (upd["stock"], upd["name"]) == (0, "Big TV")
    err = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": rw["id"], "account_id": acc}, 409)
    assert err["error"]["code"] == "out_of_stock"
    assert_ledger_invariants(api.db)


def test_the_catalogue_filters_by_visibility_and_availability(api: Api) -> None:
    """``?visible=true`` lists what is shown now (a teaser not yet redeemable included, a
    hidden reward not); ``?account_id=`` lists what that member may redeem now (neither)."""
    pid, uid, acc = _setup(api)
    now = datetime.now(UTC)
    day = timedelta(days=1)

    def create(code: str, **window: datetime) -> str:
        body = {"code": code, "name": code, "kind": "physical", "unit_id": uid, "cost": 10,
                **{k: v.isoformat() for k, v in window.items()}}
        return str(_call(api, "POST", f"/programs/{pid}/rewards", body, 201)["id"])

    shown = create("shown")
    teaser = create("teaser", visible_from=now - day, available_from=now + day)
    hidden = create("hidden", visible_from=now + day, available_from=now - day)
    ended = create("ended", visible_to=now - day)

    def listed(query: str) -> set[str]:
        return {r["id"] for r in _call(api, "GET", f"/programs/{pid}/rewards{query}")["items"]}

    assert listed("") == {shown, teaser, hidden, ended}
    assert listed("?visible=true") == {shown, teaser}
    assert listed(f"?account_id={acc}") == {shown}
    assert listed(f"?visible=true&account_id={acc}") == {shown}


def test_a_shipped_gift_is_tracked_after_fulfilment(api: Api) -> None:
    """Shipping moves on after fulfilment (shipped → in transit → delivered, new tracking),
    each step audited; no going back from delivered, nothing for an unfulfilled or
    non-physical redemption, and the points never move."""
    pid, uid, acc = _setup(api)
    tv = _call(api, "POST", f"/programs/{pid}/rewards",
               {"code": "tv", "name": "TV", "kind": "physical", "unit_id": uid, "cost": 300}, 201)
    red = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": tv["id"], "account_id": acc,
                 "shipping": {"address": "1 Main St"}}, 201)
    path = f"/redemptions/{red['id']}/shipping"
    assert _call(api, "POST", path, {"shipping_status": "shipped"}, 409)["error"]["code"] == (
        "invalid_transition")  # not fulfilled yet
    _call(api, "POST", f"/redemptions/{red['id']}/fulfil",
          {"shipping": {"carrier": "UPS", "status": "shipped"}})
    moving = _call(api, "POST", path, {"shipping_status": "in_transit", "tracking": "1Z999"})
    assert moving["status"] == "fulfilled"
    assert {k: moving["shipping"][k] for k in ("address", "carrier", "status", "tracking")} == {
        "address": "1 Main St", "carrier": "UPS", "status": "in_transit", "tracking": "1Z999"}
    done = _call(api, "POST", path, {"shipping_status": "delivered", "note": "left at reception"})
    assert (done["shipping"]["status"], done["shipping"]["tracking"]) == ("delivered", "1Z999")
    assert _call(api, "GET", f"/redemptions/{red['id']}")["shipping"]["status"] == "delivered"
    err = _call(api, "POST", path, {"shipping_status": "in_transit"}, 409)["error"]
    assert (err["code"], err["field"]) == ("invalid_transition", "shipping_status")
    _call(api, "POST", path, {"shipping_status": "teleported"}, 422)
    _call(api, "POST", path, {"shipping_status": "returned"}, key=api.key_with(["read"]), status=403)
    with api.db.read() as s:
        trail = [(r.action, r.before, r.after) for r in reversed(audit.history(
            s, api.tenant_id, object_type="redemption", object_id=red["id"]))]
    updates = [(b["shipping_status"], a["shipping_status"], a["shipping_tracking"])
               for action, b, a in trail if action == "redemption.shipping_updated"]
    assert updates == [("shipped", "in_transit", "1Z999"), ("in_transit", "delivered", "1Z999")]
    assert _available(api, pid, uid, acc) == 700
    spa_reward = _call(api, "POST", f"/programs/{pid}/rewards",
                       {"code": "spa", "name": "Spa", "kind": "experience", "unit_id": uid,
                        "cost": 100}, 201)
    spa = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": spa_reward["id"], "account_id": acc}, 201)
    _call(api, "POST", f"/redemptions/{spa['id']}/fulfil")
    assert _call(api, "POST", f"/redemptions/{spa['id']}/shipping", {"shipping_status": "shipped"},
                 409)["error"]["code"] == "invalid_transition"
    _, other = api.new_tenant()
    _call(api, "POST", path, {"shipping_status": "returned"}, 404, key=other)


def test_region_codes_and_coupons(api: Api) -> None:
    pid, uid, acc = _setup(api, region="DE")
    us = _call(api, "POST", f"/programs/{pid}/rewards",
               {"code": "mug", "name": "Mug", "kind": "physical", "unit_id": uid, "cost": 10,
                "eligible_regions": ["US"]}, 201)
    err = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": us["id"], "account_id": acc}, 422)
    assert err["error"]["code"] == "region_not_eligible"
    gift = _call(api, "POST", f"/programs/{pid}/rewards",
                 {"code": "gift", "name": "Gift", "kind": "egift", "unit_id": uid,
                  "cost": 10}, 201)
    assert _call(api, "POST", f"/rewards/{gift['id']}/codes",
                 {"codes": ["G-1"]}) == {"added": 1, "free": 0 + 1}
    first = _call(api, "POST", f"/programs/{pid}/redemptions",
                  {"reward_id": gift["id"], "account_id": acc}, 201)
    assert _call(api, "POST", f"/redemptions/{first['id']}/fulfil")["code"] == "G-1"
    second = _call(api, "POST", f"/programs/{pid}/redemptions",
                   {"reward_id": gift["id"], "account_id": acc}, 201)
    assert _call(api, "POST", f"/redemptions/{second['id']}/fulfil", None, 409)["error"][
        "code"] == "codes_exhausted"
    coupon = _call(api, "POST", f"/programs/{pid}/rewards",
                   {"code": "off", "name": "10% off", "kind": "coupon", "unit_id": uid,
                    "cost": 10}, 201)
    red = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": coupon["id"], "account_id": acc}, 201)
    code = _call(api, "POST", f"/redemptions/{red['id']}/fulfil")["code"]
    assert _call(api, "POST", "/coupons/validate", {"code": code})["valid"] is True
    assert _call(api, "POST", "/coupons/redeem", {"code": code})["used_at"] is not None
    assert _call(api, "POST", "/coupons/redeem", {"code": code}, 409)["error"]["code"] == (
        "coupon_used")
    assert _call(api, "POST", "/coupons/validate", {"code": code}, 409)["error"]["code"] == (
        "coupon_used")
    assert_ledger_invariants(api.db)


def test_isolation_scopes_and_validation(api: Api) -> None:
    pid, uid, acc = _setup(api)
    rw = _call(api, "POST", f"/programs/{pid}/rewards",
               {"code": "mug", "name": "Mug", "kind": "physical", "unit_id": uid,
                "cost": 10}, 201)
    red = _call(api, "POST", f"/programs/{pid}/redemptions",
                {"reward_id": rw["id"], "account_id": acc}, 201)
    _, other_key = api.new_tenant()
    for path in (f"/rewards/{rw['id']}", f"/redemptions/{red['id']}"):
        assert _call(api, "GET", path, None, 404, key=other_key)["error"]["code"].endswith(
            "not_found")
    _call(api, "POST", f"/redemptions/{red['id']}/cancel", None, 404, key=other_key)
    reader = api.key_with(["read"])
    _call(api, "POST", f"/programs/{pid}/rewards",
          {"code": "x", "name": "X", "kind": "physical", "unit_id": uid, "cost": 1}, 403,
          key=reader)
    integration = api.key_with(["integration"])
    _call(api, "POST", f"/programs/{pid}/redemptions",
          {"reward_id": rw["id"], "account_id": acc}, 201, key=integration)
    _call(api, "POST", f"/redemptions/{red['id']}/approve", None, 403, key=integration)
    for bad in ({"cost": 0}, {"kind": "car"}, {"stock": -1}, {"balance": 5}):
        body = {"code": "y", "name": "Y", "kind": "physical", "unit_id": uid, "cost": 1, **bad}
        _call(api, "POST", f"/programs/{pid}/rewards", body, 422)
    _call(api, "PATCH", f"/rewards/{rw['id']}", {"cost": None}, 422)
    _call(api, "PATCH", f"/rewards/{rw['id']}", {"kind": "coupon"}, 422)
    assert_ledger_invariants(api.db)


def test_a_redemption_reads_reward_account_and_wallets_in_one_statement(api: Api) -> None:
    """The API's redemption looks its reward, account, paying wallet and the program's
    redeemed account up in ONE statement (each lookup of its own was a round trip on
    PostgreSQL and an ORM load), and the answer is the stored row."""
    from sqlalchemy import event

    pid, uid, acc = _setup(api)
    reward = _call(api, "POST", f"/programs/{pid}/rewards",
                   {"code": "mug", "name": "Mug", "kind": "physical", "unit_id": uid,
                    "cost": 100}, 201)
    # The first redemption creates the program's redeemed account; count the second.
    _call(api, "POST", f"/programs/{pid}/redemptions",
          {"reward_id": reward["id"], "account_id": acc}, 201, idempotency_key="first")
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(api.db.engine, "before_cursor_execute", record)
    try:
        red = _call(api, "POST", f"/programs/{pid}/redemptions",
                    {"reward_id": reward["id"], "account_id": acc}, 201,
                    idempotency_key="second")
    finally:
        event.remove(api.db.engine, "before_cursor_execute", record)
    lookups = [s for s in seen if s.startswith("SELECT") and (
        "FROM reward" in s or "FROM account" in s or "FROM ledger_account" in s)]
    assert len(lookups) == 1, lookups
    assert (red["status"], red["points"], red["quantity"]) == ("approved", 100, 1)
    assert red["entry_id"] is not None and red["decided_by"] == "auto"
    listed = _call(api, "GET", f"/programs/{pid}/redemptions?account_id={acc}")
    assert {r["id"] for r in listed["items"]} >= {red["id"]}
    stored = next(r for r in listed["items"] if r["id"] == red["id"])
    assert stored == red
    assert _available(api, pid, uid, acc) == 800
