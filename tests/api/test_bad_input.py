"""Bad input to the ledger API is refused with a stable code naming the field, and leaves the
ledger exactly as it was (entries, postings, holds, adjustments and every counter)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from allegiance.kit.money import MAX_AMOUNT
from tests.api.conftest import Api
from tests.api.test_ledger_api import Shop, make_shop


@dataclass
class Setup:
    shop: Shop
    wallet: str
    poor: str  # a wallet with 5 points
    issued: str
    redeemed: str
    cash_unit: str
    cash_issued: str
    other_wallet: str  # another tenant's wallet
    other_key: str


def snapshot(api: Api) -> dict[str, Any]:
    with api.db.read() as s:
        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in s.execute(text(sql))]

        return {
            "entries": rows("SELECT id, seq FROM journal_entry ORDER BY id"),
            "postings": rows("SELECT entry_id, line_no, amount FROM posting "
                             "ORDER BY entry_id, line_no"),
            "holds": rows("SELECT id, state, posted_amount FROM hold ORDER BY id"),
            "adjustments": rows("SELECT id, status FROM adjustment ORDER BY id"),
            "counters": rows("SELECT id, debits_posted, credits_posted, debits_pending, "
                             "credits_pending FROM ledger_account ORDER BY id"),
            "lots": rows("SELECT id, remaining FROM lot ORDER BY id"),
        }


@pytest.fixture
def setup(api: Api) -> Setup:
    shop = make_shop(api)
    wallet, poor = shop.wallet("acc_A"), shop.wallet("acc_B")
    assert shop.points(wallet, 100).status_code == 201
    assert shop.points(poor, 5).status_code == 201
    assert shop.points(wallet, 10, kind="redeem").status_code == 201
    cash = api.client.post(f"/v1/programs/{shop.program_id}/units", headers=api.headers(),
                           json={"code": "usd", "name": "Cash", "kind": "money",
                                 "currency": "USD"}).json()
    cash_wallet = api.client.post("/v1/wallets", headers=shop.h(), json={
        "program_id": shop.program_id, "unit_id": cash["id"], "owner_type": "account",
        "owner_id": "acc_A"}).json()["id"]
    assert shop.points(cash_wallet, 50).status_code == 201
    cash_issued = next(
        a["id"] for a in api.client.get(f"/v1/programs/{shop.program_id}/accounts",
                                        headers=shop.h()).json()["items"]
        if a["purpose"] == "issued" and a["unit_id"] == cash["id"])
    _other_tenant, other_key = api.new_tenant()
    other = make_shop_for(api, other_key)
    return Setup(shop, wallet, poor, shop.account("issued"), shop.account("redeemed"),
                 cash["id"], cash_issued, other, other_key)


def make_shop_for(api: Api, admin_key: str) -> str:
    """A funded wallet in another tenant; returns its id."""
    h = api.headers(key=admin_key)
    program = api.client.post("/v1/programs", headers=h, json={
        "code": "shop", "name": "Shop", "base_currency": "USD"}).json()
    unit = api.client.post(f"/v1/programs/{program['id']}/units", headers=h, json={
        "code": "points", "name": "Points", "kind": "points"}).json()
    wallet = api.client.post("/v1/wallets", headers=h, json={
        "program_id": program["id"], "unit_id": unit["id"], "owner_type": "account",
        "owner_id": "acc_A"}).json()["id"]
    r = api.client.post(f"/v1/programs/{program['id']}/points", headers=h,
                        json={"wallet_id": wallet, "amount": 1000, "kind": "earn"})
    assert r.status_code == 201
    return str(wallet)


def entry(s: Setup, postings: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"program_id": s.shop.program_id, "kind": "earn", "postings": postings, **extra}


def line(account: str, unit: str, side: str, amount: Any) -> dict[str, Any]:
    return {"account_id": account, "unit_id": unit, "side": side, "amount": amount}


def points(s: Setup, amount: Any, kind: str = "earn", wallet: str | None = None) -> dict[str, Any]:
    return {"wallet_id": wallet or s.wallet, "amount": amount, "kind": kind}


Case = tuple[str, Callable[[Setup], str], Callable[[Setup], Any], int, str, str | None]

PTS: Callable[[Setup], str] = lambda s: f"/v1/programs/{s.shop.program_id}/points"  # noqa: E731
ENTRIES: Callable[[Setup], str] = lambda s: "/v1/entries"  # noqa: E731
HOLDS: Callable[[Setup], str] = lambda s: "/v1/holds"  # noqa: E731
TRANSFERS: Callable[[Setup], str] = lambda s: "/v1/transfers"  # noqa: E731
ADJ: Callable[[Setup], str] = lambda s: "/v1/adjustments"  # noqa: E731

CASES: list[Case] = [
    # Amounts: zero, negative, fractional, strings, booleans, out of range.
    ("points zero", PTS, lambda s: points(s, 0), 422, "validation_error", "amount"),
    ("points negative", PTS, lambda s: points(s, -5), 422, "validation_error", "amount"),
    ("points float", PTS, lambda s: points(s, 10.5), 422, "validation_error", "amount"),
    ("points whole float", PTS, lambda s: points(s, 10.0), 422, "validation_error", "amount"),
    ("points string", PTS, lambda s: points(s, "10"), 422, "validation_error", "amount"),
    ("points bool", PTS, lambda s: points(s, True), 422, "validation_error", "amount"),
    ("points huge", PTS, lambda s: points(s, MAX_AMOUNT), 422, "validation_error", "amount"),
    ("points null", PTS, lambda s: points(s, None), 422, "validation_error", "amount"),
    ("entry zero", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 0),
        line(s.wallet, s.shop.unit_id, "credit", 0)]),
     422, "validation_error", "postings[0].amount"),
    ("entry negative", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", -10)]),
     422, "validation_error", "postings[1].amount"),
    ("entry float", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 10.5),
        line(s.wallet, s.shop.unit_id, "credit", 10.5)]),
     422, "validation_error", "postings[0].amount"),
    ("entry string amount", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", "10"),
        line(s.wallet, s.shop.unit_id, "credit", 10)]),
     422, "validation_error", "postings[0].amount"),
    ("entry bad side", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "D", 10),
        line(s.wallet, s.shop.unit_id, "credit", 10)]),
     422, "validation_error", "postings[0].side"),
    ("entry one posting", ENTRIES, lambda s: entry(s, [
        line(s.wallet, s.shop.unit_id, "credit", 10)]),
     422, "validation_error", "postings"),
    # Balance: unbalanced, mixed units, unknown unit.
    ("entry unbalanced", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", 11)]),
     422, "invalid_entry", "postings"),
    ("entry mixed units", ENTRIES, lambda s: entry(s, [
        line(s.cash_issued, s.cash_unit, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", 10)]),
     422, "invalid_entry", "postings"),
    ("entry wrong unit for account", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.cash_unit, "debit", 10),
        line(s.wallet, s.cash_unit, "credit", 10)]),
     422, "invalid_entry", "postings[0].unit_id"),
    ("entry unknown unit", ENTRIES, lambda s: entry(s, [
        line(s.issued, "unt_nope", "debit", 10),
        line(s.wallet, "unt_nope", "credit", 10)]),
     422, "invalid_entry", "postings[0].unit_id"),
    ("entry unknown account", ENTRIES, lambda s: entry(s, [
        line("wal_nope", s.shop.unit_id, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", 10)]),
     404, "ledger_account_not_found", "postings[0].account_id"),
    ("entry in the future", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", 10)], effective_at="2999-01-01T00:00:00Z"),
     422, "invalid_entry", "effective_at"),
    ("entry naive time", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", 10)], effective_at="2020-01-01T00:00:00"),
     422, "validation_error", "effective_at"),
    ("entry extra field", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", 10)], balance=999),
     422, "validation_error", "balance"),
    # Overdraft.
    ("redeem overdraft", PTS, lambda s: points(s, 6, "redeem", s.poor),
     422, "insufficient_funds", None),
    ("entry overdraft", ENTRIES, lambda s: entry(s, [
        line(s.poor, s.shop.unit_id, "debit", 6),
        line(s.redeemed, s.shop.unit_id, "credit", 6)], kind="redeem"),
     422, "insufficient_funds", None),
    ("hold overdraft", HOLDS, lambda s: {"program_id": s.shop.program_id, "wallet_id": s.poor,
                                         "amount": 6},
     422, "insufficient_funds", None),
    ("transfer overdraft", TRANSFERS, lambda s: {"from_wallet_id": s.poor,
                                                 "to_wallet_id": s.wallet, "amount": 6},
     422, "insufficient_funds", None),
    ("adjustment overdraft", ADJ, lambda s: {"wallet_id": s.poor, "amount": -6,
                                             "reason": "x"},
     422, "insufficient_funds", None),
    # Another tenant's wallet.
    ("points other tenant", PTS, lambda s: points(s, 5, wallet=s.other_wallet),
     404, "ledger_account_not_found", "wallet_id"),
    ("redeem other tenant", PTS, lambda s: points(s, 5, "redeem", s.other_wallet),
     404, "ledger_account_not_found", "wallet_id"),
    ("entry other tenant", ENTRIES, lambda s: entry(s, [
        line(s.other_wallet, s.shop.unit_id, "debit", 5),
        line(s.wallet, s.shop.unit_id, "credit", 5)]),
     404, "ledger_account_not_found", "postings[0].account_id"),
    ("hold other tenant", HOLDS, lambda s: {"program_id": s.shop.program_id,
                                            "wallet_id": s.other_wallet, "amount": 5},
     404, "ledger_account_not_found", "wallet_id"),
    ("transfer from other tenant", TRANSFERS, lambda s: {"from_wallet_id": s.other_wallet,
                                                         "to_wallet_id": s.wallet, "amount": 5},
     404, "ledger_account_not_found", "from_wallet_id"),
    ("transfer to other tenant", TRANSFERS, lambda s: {"from_wallet_id": s.wallet,
                                                       "to_wallet_id": s.other_wallet,
                                                       "amount": 5},
     404, "ledger_account_not_found", "to_wallet_id"),
    ("adjust other tenant", ADJ, lambda s: {"wallet_id": s.other_wallet, "amount": 5,
                                            "reason": "x"},
     404, "ledger_account_not_found", "wallet_id"),
    # Other shapes.
    ("adjustment zero", ADJ, lambda s: {"wallet_id": s.wallet, "amount": 0, "reason": "x"},
     422, "validation_error", "amount"),
    ("adjustment float", ADJ, lambda s: {"wallet_id": s.wallet, "amount": 1.5, "reason": "x"},
     422, "validation_error", "amount"),
    ("adjustment no reason", ADJ, lambda s: {"wallet_id": s.wallet, "amount": 5, "reason": ""},
     422, "validation_error", "reason"),
    ("hold zero", HOLDS, lambda s: {"program_id": s.shop.program_id, "wallet_id": s.wallet,
                                    "amount": 0},
     422, "validation_error", "amount"),
    ("transfer to itself", TRANSFERS, lambda s: {"from_wallet_id": s.wallet,
                                                 "to_wallet_id": s.wallet, "amount": 5},
     422, "invalid_entry", "to_wallet_id"),
    ("points program accounts", PTS, lambda s: points(s, 5, wallet=s.issued),
     422, "invalid_entry", "wallet_id"),
    ("points NUL in memo", PTS, lambda s: {**points(s, 5), "memo": "a\x00b"},
     422, "validation_error", None),
    ("entry NUL in key", ENTRIES, lambda s: entry(s, [
        line(s.issued, s.shop.unit_id, "debit", 10),
        line(s.wallet, s.shop.unit_id, "credit", 10)], entry_key="k\x00"),
     422, "validation_error", None),
    ("points not an object", PTS, lambda s: [1, 2, 3], 422, "validation_error", None),
]


def test_bad_input_changes_nothing(api: Api, setup: Setup) -> None:
    """Every case in CASES, on one funded ledger (a fresh database per case would be slow)."""
    failures: list[str] = []
    for name, url, body, status, code, field in CASES:
        before = snapshot(api)
        r = api.client.post(url(setup), headers=setup.shop.h(), json=body(setup))
        error = r.json().get("error", {}) if r.headers.get("content-type") == "application/json" else {}
        if r.status_code != status or error.get("code") != code:
            failures.append(f"{name}: expected {status} {code}, got {r.status_code} {r.text}")
        elif field is not None and error.get("field") != field:
            failures.append(f"{name}: expected field {field!r}, got {error.get('field')!r}")
        if snapshot(api) != before:
            failures.append(f"{name}: the ledger changed")
    assert not failures, "\n".join(failures)


def test_malformed_json_is_400_and_changes_nothing(api: Api, setup: Setup) -> None:
    before = snapshot(api)
    h = {**setup.shop.h(), "Content-Type": "application/json"}
    for raw in (b"{", b'{"amount": 10,}', b"not json", b"\xff\xfe", b'{"wallet_id": "'):
        for url in (PTS(setup), "/v1/entries", "/v1/holds", "/v1/transfers", "/v1/adjustments",
                    "/v1/wallets", f"/v1/entries/{setup.issued}/reverse"):
            r = api.client.post(url, headers=h, content=raw)
            assert r.status_code == 400, (url, raw, r.text)
            assert r.json()["error"]["code"] == "malformed_json"
    assert snapshot(api) == before


def test_idempotency_key_reuse_with_other_body_changes_nothing(api: Api, setup: Setup) -> None:
    s = setup
    body = entry(s, [line(s.issued, s.shop.unit_id, "debit", 7),
                     line(s.wallet, s.shop.unit_id, "credit", 7)])
    first = api.client.post("/v1/entries", headers=s.shop.h(idempotency_key="same"), json=body)
    assert first.status_code == 201
    before = snapshot(api)
    replay = api.client.post("/v1/entries", headers=s.shop.h(idempotency_key="same"), json=body)
    assert replay.status_code == 201 and replay.content == first.content
    other = entry(s, [line(s.issued, s.shop.unit_id, "debit", 8),
                      line(s.wallet, s.shop.unit_id, "credit", 8)])
    r = api.client.post("/v1/entries", headers=s.shop.h(idempotency_key="same"), json=other)
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    r = api.client.post(PTS(s), headers=s.shop.h(idempotency_key="same"), json=points(s, 8))
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    assert snapshot(api) == before


def test_a_failed_write_with_an_idempotency_key_is_not_stored(api: Api, setup: Setup) -> None:
    """A refused request stores nothing under its key: the corrected retry goes through."""
    s = setup
    r = api.client.post(PTS(s), headers=s.shop.h(idempotency_key="k"),
                        json=points(s, 6, "redeem", s.poor))
    assert r.status_code == 422
    assert s.shop.points(s.poor, 10).status_code == 201
    r = api.client.post(PTS(s), headers=s.shop.h(idempotency_key="k"),
                        json=points(s, 6, "redeem", s.poor))
    assert r.status_code == 201, r.text
    assert s.shop.balance(s.poor)["posted"] == 9


def test_reads_and_keys_without_scope(api: Api, setup: Setup) -> None:
    s = setup
    reader = api.key_with(["read"])
    before = snapshot(api)
    r = api.client.post(PTS(s), headers=api.headers(key=reader), json=points(s, 5))
    assert r.status_code == 403
    r = api.client.post(PTS(s), json=points(s, 5))
    assert r.status_code == 401
    r = api.client.post(PTS(s), headers={"Authorization": "Bearer key_x.y"}, json=points(s, 5))
    assert r.status_code == 401
    assert api.client.get(f"/v1/wallets/{s.wallet}", headers=api.headers(key=reader)).status_code == 200
    assert snapshot(api) == before
