"""The ledger over HTTP: wallets, entries, points, holds, reversals, transfers, adjustments,
reconciliation, idempotency and the OpenAPI contract (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute

from allegiance.ledger.routes import router as ledger_router
from allegiance.tenants.routes import router as tenants_router
from tests.api.conftest import Api


@dataclass
class Shop:
    api: Api
    program_id: str
    unit_id: str
    key: str  # integration scope

    def h(self, idempotency_key: str | None = None, key: str | None = None) -> dict[str, str]:
        return self.api.headers(key=key or self.key, idempotency_key=idempotency_key)

    def wallet(self, owner_id: str, owner_type: str = "account") -> str:
        r = self.api.client.post("/v1/wallets", headers=self.h(), json={
            "program_id": self.program_id, "unit_id": self.unit_id, "owner_type": owner_type,
            "owner_id": owner_id})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def points(self, wallet_id: str, amount: int, kind: str = "earn", **extra: Any) -> Any:
        return self.api.client.post(
            f"/v1/programs/{self.program_id}/points", headers=self.h(),
            json={"wallet_id": wallet_id, "amount": amount, "kind": kind, **extra})

    def balance(self, wallet_id: str) -> dict[str, int]:
        r = self.api.client.get(f"/v1/wallets/{wallet_id}", headers=self.h())
        assert r.status_code == 200, r.text
        return r.json()["balance"]  # type: ignore[no-any-return]

    def account(self, purpose: str) -> str:
        items = self.api.client.get(f"/v1/programs/{self.program_id}/accounts",
                                    headers=self.h()).json()["items"]
        return next(str(a["id"]) for a in items if a["purpose"] == purpose)


def make_shop(api: Api, threshold: int | None = None) -> Shop:
    body: dict[str, Any] = {"code": "shop", "name": "Shop", "base_currency": "USD"}
    if threshold is not None:
        body["adjustment_approval_threshold"] = threshold
    program = api.client.post("/v1/programs", headers=api.headers(), json=body).json()
    unit = api.client.post(f"/v1/programs/{program['id']}/units", headers=api.headers(),
                           json={"code": "points", "name": "Points", "kind": "points"}).json()
    return Shop(api, program["id"], unit["id"], api.key_with(["integration"]))


def test_wallet_get_or_create_and_read(api: Api) -> None:
    shop = make_shop(api)
    body = {"program_id": shop.program_id, "unit_code": "points", "owner_type": "account",
            "owner_id": "acc_A"}
    first = api.client.post("/v1/wallets", headers=shop.h(), json=body)
    assert first.status_code == 201, first.text
    again = api.client.post("/v1/wallets", headers=shop.h(), json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    w = first.json()
    assert w["unit_code"] == "points" and w["purpose"] == "wallet" and w["floor"] == 0
    assert w["balance"] == {"posted": 0, "pending_in": 0, "pending_out": 0, "available": 0}

    listed = api.client.get("/v1/wallets", headers=shop.h(),
                            params={"owner_type": "account", "owner_id": "acc_A"}).json()
    assert [x["id"] for x in listed["items"]] == [w["id"]]
    r = api.client.post("/v1/wallets", headers=shop.h(), json={**body, "unit_code": "nope"})
    assert r.status_code == 404 and r.json()["error"]["field"] == "unit_code"
    r = api.client.post("/v1/wallets", headers=shop.h(),
                        json={**body, "unit_id": shop.unit_id})
    assert r.status_code == 422


def test_points_earn_redeem_and_history(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    r = shop.points(w, 100, entry_key="order-1", memo="order 1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["entry"]["created"] is True and body["entry"]["kind"] == "earn"
    assert body["balance"]["available"] == 100
    assert [(p["side"], p["amount"]) for p in body["entry"]["postings"]] == [
        ("debit", 100), ("credit", 100)]

    again = shop.points(w, 100, entry_key="order-1", memo="order 1")
    assert again.status_code == 200
    assert again.json()["entry"]["id"] == body["entry"]["id"]
    assert again.json()["entry"]["created"] is False
    assert shop.balance(w)["available"] == 100

    r = shop.points(w, 30, kind="redeem")
    assert r.status_code == 201 and r.json()["balance"]["posted"] == 70
    r = shop.points(w, 71, kind="redeem")
    assert r.status_code == 422 and r.json()["error"]["code"] == "insufficient_funds"

    hist = api.client.get(f"/v1/wallets/{w}/entries", headers=shop.h()).json()
    assert [(i["kind"], i["side"], i["amount"]) for i in hist["items"]] == [
        ("redeem", "debit", 30), ("earn", "credit", 100)]
    assert hist["items"][1]["memo"] == "order 1"
    only = api.client.get(f"/v1/wallets/{w}/entries", headers=shop.h(),
                          params={"kind": "earn"}).json()["items"]
    assert [i["kind"] for i in only] == ["earn"]
    late = api.client.get(f"/v1/wallets/{w}/entries", headers=shop.h(),
                          params={"from": "2100-01-01T00:00:00Z"}).json()["items"]
    assert late == []

    # Pagination walks every posting once, newest first.
    for i in range(5):
        assert shop.points(w, 1 + i).status_code == 201
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get(f"/v1/wallets/{w}/entries", headers=shop.h(),
                              params=params).json()
        seen += [i["seq"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 7


def test_post_entry_contract(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    shop.points(w, 1)  # creates the issued account
    issued = shop.account("issued")
    body = {"program_id": shop.program_id, "kind": "earn", "entry_key": "e-1",
            "source_type": "event", "source_id": "evt_1", "memo": "m",
            "postings": [
                {"account_id": issued, "unit_id": shop.unit_id, "side": "debit", "amount": 40},
                {"account_id": w, "unit_id": shop.unit_id, "side": "credit", "amount": 40}]}
    r = api.client.post("/v1/entries", headers=shop.h(), json=body)
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["created"] is True and entry["seq"] == 2 and entry["source_id"] == "evt_1"
    assert entry["actor"].startswith("api_key:")
    again = api.client.post("/v1/entries", headers=shop.h(), json=body)
    assert again.status_code == 200
    assert again.json() == {**entry, "created": False}
    got = api.client.get(f"/v1/entries/{entry['id']}", headers=shop.h()).json()
    assert got["postings"] == entry["postings"] and "created" not in got
    assert shop.balance(w)["posted"] == 41
    assert api.client.get("/v1/entries/txn_nope", headers=shop.h()).status_code == 404


def test_holds(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    shop.points(w, 100)
    r = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "wallet_id": w, "amount": 60, "hold_key": "h-1",
        "expires_in_seconds": 600})
    assert r.status_code == 201, r.text
    hold = r.json()
    assert hold["state"] == "pending" and hold["expires_at"] is not None
    assert shop.balance(w) == {"posted": 100, "pending_in": 0, "pending_out": 60,
                               "available": 40}
    again = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "wallet_id": w, "amount": 60, "hold_key": "h-1",
        "expires_in_seconds": 600})
    assert again.status_code == 200 and again.json()["id"] == hold["id"]

    r = api.client.post(f"/v1/holds/{hold['id']}/post", headers=shop.h(), json={"amount": 50})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "posted" and r.json()["posted_amount"] == 50
    assert shop.balance(w) == {"posted": 50, "pending_in": 0, "pending_out": 0, "available": 50}
    entry = api.client.get(f"/v1/entries/{r.json()['resolved_entry_id']}", headers=shop.h())
    assert entry.json()["kind"] == "redeem" and entry.json()["hold_id"] == hold["id"]
    r = api.client.post(f"/v1/holds/{hold['id']}/void", headers=shop.h())
    assert r.status_code == 409 and r.json()["error"]["code"] == "hold_already_resolved"

    r = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "wallet_id": w, "amount": 20})
    second = r.json()
    assert api.client.post(f"/v1/holds/{second['id']}/void",
                           headers=shop.h()).json()["state"] == "voided"
    assert api.client.get(f"/v1/holds/{second['id']}",
                          headers=shop.h()).json()["state"] == "voided"
    assert shop.balance(w)["available"] == 50

    r = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "wallet_id": w, "amount": 51})
    assert r.status_code == 422 and r.json()["error"]["code"] == "insufficient_funds"
    r = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "amount": 5})
    assert r.status_code == 422


def test_reversal_full_and_partial(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    earn = shop.points(w, 100).json()["entry"]
    r = api.client.post(f"/v1/entries/{earn['id']}/reverse", headers=shop.h(),
                        json={"lines": {"1": 40, "2": 40}, "entry_key": "rev-1"})
    assert r.status_code == 201, r.text
    rev = r.json()
    assert rev["reverses_entry_id"] == earn["id"] and rev["kind"] == "reversal"
    assert shop.balance(w)["posted"] == 60
    again = api.client.post(f"/v1/entries/{earn['id']}/reverse", headers=shop.h(),
                            json={"lines": {"1": 40, "2": 40}, "entry_key": "rev-1"})
    assert again.status_code == 200 and again.json()["id"] == rev["id"]
    r = api.client.post(f"/v1/entries/{earn['id']}/reverse", headers=shop.h(),
                        json={"lines": {"1": 61, "2": 61}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "reversal_exceeds_original"
    r = api.client.post(f"/v1/entries/{earn['id']}/reverse", headers=shop.h())
    assert r.status_code == 201
    assert shop.balance(w)["posted"] == 0
    r = api.client.post(f"/v1/entries/{earn['id']}/reverse", headers=shop.h())
    assert r.status_code == 422
    r = api.client.post(f"/v1/entries/{earn['id']}/reverse", headers=shop.h(),
                        json={"lines": {"one": 1}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "lines"


def test_transfers(api: Api) -> None:
    shop = make_shop(api)
    a, b = shop.wallet("acc_A"), shop.wallet("acc_B")
    shop.points(a, 100)
    r = api.client.post("/v1/transfers", headers=shop.h(), json={
        "from_wallet_id": a, "to_wallet_id": b, "amount": 30, "entry_key": "t-1"})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "transfer"
    assert shop.balance(a)["posted"] == 70 and shop.balance(b)["posted"] == 30
    r = api.client.post("/v1/transfers", headers=shop.h(), json={
        "from_wallet_id": a, "to_wallet_id": b, "amount": 30, "entry_key": "t-1"})
    assert r.status_code == 200 and shop.balance(b)["posted"] == 30
    r = api.client.post("/v1/transfers", headers=shop.h(), json={
        "from_wallet_id": b, "to_wallet_id": a, "amount": 31})
    assert r.status_code == 422 and r.json()["error"]["code"] == "insufficient_funds"
    r = api.client.post("/v1/transfers", headers=shop.h(), json={
        "from_wallet_id": a, "to_wallet_id": shop.account("issued"), "amount": 1})
    assert r.status_code == 422 and r.json()["error"]["field"] == "to_wallet_id"


def test_adjustments_need_a_second_key(api: Api) -> None:
    shop = make_shop(api, threshold=50)
    w = shop.wallet("acc_A")
    small = api.client.post("/v1/adjustments", headers=shop.h(), json={
        "wallet_id": w, "amount": 20, "reason": "goodwill"})
    assert small.status_code == 201, small.text
    assert small.json()["status"] == "posted" and small.json()["entry_id"]
    assert shop.balance(w)["posted"] == 20

    big = api.client.post("/v1/adjustments", headers=api.headers(), json={
        "wallet_id": w, "amount": 500, "reason": "migration", "requested_by": "alice"})
    assert big.status_code == 201, big.text
    adj = big.json()
    assert adj["status"] == "pending_approval" and adj["requested_by"].endswith("/alice")
    assert shop.balance(w)["posted"] == 20
    pending = api.client.get("/v1/adjustments", headers=api.headers(),
                             params={"status": "pending_approval"}).json()["items"]
    assert [x["id"] for x in pending] == [adj["id"]]

    # Same key, even naming another person, cannot approve its own request.
    r = api.client.post(f"/v1/adjustments/{adj['id']}/approve", headers=api.headers(),
                        json={"decided_by": "bob"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "second_approver_required"
    # An integration key may not approve at all.
    r = api.client.post(f"/v1/adjustments/{adj['id']}/approve", headers=shop.h())
    assert r.status_code == 403
    second = api.key_with(["admin"])
    r = api.client.post(f"/v1/adjustments/{adj['id']}/approve",
                        headers=api.headers(key=second), json={"decided_by": "bob"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "posted" and r.json()["decided_by"].endswith("/bob")
    assert shop.balance(w)["posted"] == 520
    r = api.client.post(f"/v1/adjustments/{adj['id']}/reject", headers=api.headers(key=second))
    assert r.status_code == 409

    debit = api.client.post("/v1/adjustments", headers=shop.h(), json={
        "wallet_id": w, "amount": -600, "reason": "fraud"}).json()
    r = api.client.post(f"/v1/adjustments/{debit['id']}/reject", headers=api.headers(),
                        json={"reason": "no"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert shop.balance(w)["posted"] == 520
    r = api.client.post("/v1/adjustments", headers=shop.h(), json={
        "wallet_id": w, "amount": 0, "reason": "x"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "amount"


def test_reconcile(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    shop.points(w, 10)
    r = api.client.get(f"/v1/programs/{shop.program_id}/reconcile", headers=api.headers())
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["accounts_checked"] == 2
    assert r.json()["mismatches"] == []
    r = api.client.get(f"/v1/programs/{shop.program_id}/reconcile", headers=shop.h())
    assert r.status_code == 403


def test_other_tenants_wallets_and_entries_are_not_found(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    entry = shop.points(w, 10).json()["entry"]
    _other, key = api.new_tenant()
    h = api.headers(key=key)
    assert api.client.get(f"/v1/wallets/{w}", headers=h).status_code == 404
    assert api.client.get(f"/v1/wallets/{w}/entries", headers=h).status_code == 404
    assert api.client.get(f"/v1/entries/{entry['id']}", headers=h).status_code == 404
    assert api.client.post(f"/v1/entries/{entry['id']}/reverse", headers=h).status_code == 404
    assert api.client.get("/v1/wallets", headers=h).json()["items"] == []
    r = api.client.post(f"/v1/programs/{shop.program_id}/points", headers=h,
                        json={"wallet_id": w, "amount": 5, "kind": "earn"})
    assert r.status_code == 404
    assert shop.balance(w)["posted"] == 10


def test_idempotency_key_on_points(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    url = f"/v1/programs/{shop.program_id}/points"
    body = {"wallet_id": w, "amount": 25, "kind": "earn"}
    first = api.client.post(url, headers=shop.h(idempotency_key="idem-1"), json=body)
    again = api.client.post(url, headers=shop.h(idempotency_key="idem-1"), json=body)
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    r = api.client.post(url, headers=shop.h(idempotency_key="idem-1"),
                        json={**body, "amount": 26})
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    hist = api.client.get(f"/v1/wallets/{w}/entries", headers=shop.h()).json()["items"]
    assert len(hist) == 1 and shop.balance(w)["posted"] == 25


def test_openapi_lists_every_route_with_a_2xx_schema(api: Api) -> None:
    r = api.client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for route in [*tenants_router.routes, *ledger_router.routes]:
        assert isinstance(route, APIRoute)
        path = "/v1" + route.path
        assert path in paths, path
        for method in route.methods or ():
            op = paths[path][method.lower()]
            ok = [code for code in op["responses"] if code.startswith("2")]
            assert ok, (method, path)
            for code in ok:
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema.get("$ref", "").startswith("#/components/schemas/"), (
                    method, path, code, schema)


def test_concurrent_duplicates_of_a_business_key_post_once(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    shop.points(w, 100)
    url = f"/v1/programs/{shop.program_id}/points"

    def earn(_: int) -> int:
        r = api.client.post(url, headers=shop.h(), json={
            "wallet_id": w, "amount": 7, "kind": "earn", "entry_key": "dup"})
        return int(r.status_code)

    def hold(_: int) -> int:
        r = api.client.post("/v1/holds", headers=shop.h(), json={
            "program_id": shop.program_id, "wallet_id": w, "amount": 9, "hold_key": "dup"})
        return int(r.status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        earned = list(pool.map(earn, range(8)))
        held = list(pool.map(hold, range(8)))
    assert sorted(earned) == [200] * 7 + [201], earned
    assert sorted(held) == [200] * 7 + [201], held
    assert shop.balance(w) == {"posted": 107, "pending_in": 0, "pending_out": 9,
                               "available": 98}


def test_explicit_hold_accounts_and_user_wallets(api: Api) -> None:
    shop = make_shop(api)
    u = shop.wallet("usr_1", owner_type="user")
    shop.points(u, 50)
    redeemed = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "wallet_id": u, "amount": 1})
    assert redeemed.status_code == 201
    target = redeemed.json()["credit_account_id"]
    r = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "debit_account_id": u, "credit_account_id": target,
        "amount": 10})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "hold"
    r = api.client.post(f"/v1/holds/{r.json()['id']}/post", headers=shop.h())
    assert r.status_code == 200 and r.json()["posted_amount"] == 10
    assert shop.balance(u) == {"posted": 40, "pending_in": 0, "pending_out": 1, "available": 39}
    r = api.client.post("/v1/holds", headers=shop.h(), json={
        "program_id": shop.program_id, "wallet_id": u, "debit_account_id": u, "amount": 1})
    assert r.status_code == 422
    users = api.client.get("/v1/wallets", headers=shop.h(), params={"owner_type": "user"})
    assert [w["id"] for w in users.json()["items"]] == [u]


def test_program_limited_keys_stay_in_their_program(api: Api) -> None:
    shop = make_shop(api)
    w = shop.wallet("acc_A")
    shop.points(w, 10)
    other = api.client.post("/v1/programs", headers=api.headers(), json={
        "code": "other", "name": "Other", "base_currency": "USD"}).json()
    limited = api.client.post("/v1/api-keys", headers=api.headers(), json={
        "name": "other-only", "scopes": ["integration"], "program_ids": [other["id"]]}).json()
    h = api.headers(key=limited["secret"])
    assert api.client.get(f"/v1/wallets/{w}", headers=h).status_code == 403
    assert api.client.get("/v1/wallets", headers=h).json()["items"] == []
    r = api.client.post(f"/v1/programs/{shop.program_id}/points", headers=h,
                        json={"wallet_id": w, "amount": 5, "kind": "earn"})
    assert r.status_code == 403
    r = api.client.post("/v1/adjustments", headers=h,
                        json={"wallet_id": w, "amount": 5, "reason": "x"})
    assert r.status_code == 403
    assert shop.balance(w)["posted"] == 10
