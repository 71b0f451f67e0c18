"""The money APIs: sales claims (integration submits, admin reviews), co-marketing funds,
referrals, rebates and discounts, payouts (CSV file); scopes, tenant isolation, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from allegiance import definitions, ledger, members
from allegiance.kit import clock
from tests.api.conftest import Api
from tests.integration.money_support import money_definition

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


def _setup(api: Api) -> tuple[str, str, str]:
    with api.db.transaction() as s:
        version = definitions.apply(s, api.tenant_id, money_definition(), actor="test",
                                    effective_from=NOW - timedelta(days=400))
        program_id = version.program_id
        account = members.create_account(s, api.tenant_id, name="Acme", region="US").id
    units = _call(api, "GET", f"/programs/{program_id}/units")["items"]
    usd = next(u["id"] for u in units if u["code"] == "usd")
    return program_id, usd, account


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200,
          key: str | None = None) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers(key))
    assert r.status_code == status, r.text
    return r.json() if r.headers.get("content-type", "").startswith("application/json") \
        else r.text


def test_claims_api(api: Api) -> None:
    with clock.frozen(NOW):
        pid, _usd, acc = _setup(api)
        partner = api.key_with(["integration"])
        body = {"account_id": acc, "invoice_number": "INV-0042",
                "invoice_date": (NOW - timedelta(days=2)).isoformat(), "seller": "Acme Ltd",
                "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": 10000}],
                "proof_ref": "uploads/inv-42.pdf"}
        claim = _call(api, "POST", f"/programs/{pid}/claims", body, 201, key=partner)
        assert (claim["status"], claim["amount"]) == ("submitted", 10000)
        dup = _call(api, "POST", f"/programs/{pid}/claims",
                    {**body, "invoice_number": "inv 42"}, 201, key=partner)
        assert (dup["status"], dup["duplicate_of"]) == ("duplicate", claim["id"])
        assert _call(api, "POST", f"/programs/{pid}/claims", {**body, "extra": 1}, 422,
                     key=partner)
        _call(api, "POST", f"/claims/{claim['id']}/approve", None, 403, key=partner)
        queue = _call(api, "GET", f"/programs/{pid}/claims?status=submitted")
        assert [c["id"] for c in queue["items"]] == [claim["id"]]
        _call(api, "POST", f"/claims/{claim['id']}/reject", {}, 422)
        approved = _call(api, "POST", f"/claims/{claim['id']}/approve")
        assert approved["status"] == "approved" and approved["event_id"]
        assert _call(api, "POST", f"/claims/{claim['id']}/approve", None, 409)["error"][
            "code"] == "claim_not_pending"
        _, other = api.new_tenant()
        _call(api, "GET", f"/claims/{claim['id']}", None, 404, key=other)


def test_mdf_api(api: Api) -> None:
    with clock.frozen(NOW):
        pid, usd, acc = _setup(api)
        fund = {"code": "h1", "name": "H1", "unit_id": usd, "budget": 100000,
                "period_start": NOW.isoformat(),
                "period_end": (NOW + timedelta(days=90)).isoformat(),
                "claim_deadline": (NOW + timedelta(days=120)).isoformat(),
                "formula": {"percent": "50", "split_by_brands": True}}
        units = _call(api, "GET", f"/programs/{pid}/units")["items"]
        points = next(u["id"] for u in units if u["code"] == "points")
        assert _call(api, "POST", f"/programs/{pid}/mdf-funds", {**fund, "unit_id": points},
                     422)["error"]["code"] == "invalid_fund"
        assert _call(api, "POST", f"/programs/{pid}/mdf-funds",
                     {**fund, "formula": {"percent": "150"}}, 422)["error"]["field"] == (
            "formula.percent")
        fid = _call(api, "POST", f"/programs/{pid}/mdf-funds", fund, 201)["id"]
        _call(api, "POST", f"/mdf-funds/{fid}/allocations", {"account_id": acc,
                                                             "amount": 150000}, 409)
        _call(api, "POST", f"/mdf-funds/{fid}/allocations", {"account_id": acc,
                                                             "amount": 40000})
        claim = _call(api, "POST", f"/mdf-funds/{fid}/claims",
                      {"account_id": acc, "activity": "flyer", "actual_cost": 30000,
                       "other_brands": 1, "proof_ref": "p", "invoice_ref": "i"}, 201)
        assert claim["amount"] == 7500
        _call(api, "POST", f"/mdf-claims/{claim['id']}/approve")
        view = _call(api, "GET", f"/mdf-funds/{fid}/partners/{acc}")
        assert (view["allocated"], view["paid"], view["remaining"]) == (40000, 7500, 32500)
        listed = _call(api, "GET", f"/mdf-funds/{fid}/claims?status=paid")
        assert [c["id"] for c in listed["items"]] == [claim["id"]]


def test_referrals_and_discounts_api(api: Api) -> None:
    with clock.frozen(NOW):
        pid, usd, acc = _setup(api)
        plan = _call(api, "POST", f"/programs/{pid}/referral-plans",
                     {"code": "mgm", "name": "MGM", "bounty_unit_id": usd, "bounty": 500,
                      "referee_reward": 300, "lock_days": 0, "link_base": "https://x.io/join"},
                     201)
        code = _call(api, "POST", f"/referral-plans/{plan['id']}/codes", {"account_id": acc})
        assert code["status"] == "active" and code["link"] == f"https://x.io/join?ref={code['code']}"
        with api.db.transaction() as s:
            friend = members.create_account(s, api.tenant_id, name="Friend").id
        ref = _call(api, "POST", f"/programs/{pid}/referrals",
                    {"code": code["code"], "account_id": friend}, 201)
        assert ref["status"] == "qualified"
        _call(api, "POST", f"/programs/{pid}/referrals",
              {"code": code["code"], "account_id": friend}, 409)
        statement = _call(api, "GET", f"/referral-plans/{plan['id']}/statements/{acc}")
        assert (statement["payable"], statement["pending"]) == (500, 0)
        _call(api, "POST", f"/programs/{pid}/discount-schedules",
              {"code": "d", "name": "D", "period": "lifetime",
               "brackets": [{"from": 0, "percent": "2"}]}, 201)
        quote = _call(api, "POST", f"/programs/{pid}/quote", {"account_id": acc,
                                                               "amount": 10000})
        assert (quote["discount"], quote["payable"]) == (200, 9800)
        bad = _call(api, "POST", f"/programs/{pid}/discount-schedules",
                    {"code": "e", "name": "E", "period": "lifetime",
                     "brackets": [{"from": 10, "percent": "2"}, {"from": 5, "percent": "3"}]},
                    422)
        assert bad["error"]["field"] == "brackets[1].from"


def test_referral_clicks_and_application_review_api(api: Api) -> None:
    with clock.frozen(NOW):
        pid, usd, acc = _setup(api)
        plan = _call(api, "POST", f"/programs/{pid}/referral-plans",
                     {"code": "assoc", "name": "Associates", "window_days": 1,
                      "attribution": "click", "commission_unit_id": usd,
                      "commission_rates": {"*": "4"}, "requires_application": True}, 201)
        assert plan["attribution"] == "click"
        applied = _call(api, "POST", f"/referral-plans/{plan['id']}/codes",
                        {"account_id": acc, "application": {"site": "coupons"}})
        rejected = _call(api, "POST", f"/referral-codes/{applied['id']}/reject",
                         {"reason": "coupon sites are not accepted"})
        assert (rejected["status"], rejected["reason"]) == (
            "rejected", "coupon sites are not accepted")
        bad = _call(api, "POST", f"/referral-plans/{plan['id']}/clicks",
                    {"code": applied["code"], "visitor_id": "v1"}, 409)
        assert bad["error"]["code"] == "referral_code_not_active"
        with api.db.transaction() as s:
            site = members.create_account(s, api.tenant_id, name="Site").id
            shopper = members.create_account(s, api.tenant_id, name="Shopper").id
        code = _call(api, "POST", f"/referral-plans/{plan['id']}/codes", {"account_id": site})
        _call(api, "POST", f"/referral-codes/{code['id']}/approve", {})
        click = _call(api, "POST", f"/referral-plans/{plan['id']}/clicks",
                      {"code": code["code"], "visitor_id": "cookie-9"}, 201)
        assert (click["kind"], click["referred_account_id"], click["visitor_id"]) == (
            "click", None, "cookie-9")
        assert click["window_ends_at"].startswith("2026-01-16T12:00")
        none = _call(api, "POST", f"/referral-plans/{plan['id']}/clicks",
                     {"code": code["code"]}, 422)
        assert none["error"]["field"] == "account_id"
        matched = _call(api, "POST",
                        f"/referral-plans/{plan['id']}/visitors/cookie-9/match",
                        {"account_id": shopper})
        assert matched == {"clicks": 1}
        again = _call(api, "POST", f"/referral-plans/{plan['id']}/clicks",
                      {"code": code["code"], "account_id": shopper}, 201)
        assert again["referred_account_id"] == shopper and again["id"] != click["id"]
        assert _call(api, "POST", f"/referral-plans/{plan['id']}/sync") == {
            "purchases": 0, "done": True}
        signup_plan = _call(api, "POST", f"/programs/{pid}/referral-plans",
                            {"code": "mgm", "name": "MGM"}, 201)
        assert signup_plan["attribution"] == "signup"
        other = _call(api, "POST", f"/referral-plans/{signup_plan['id']}/codes",
                      {"account_id": site})
        refused = _call(api, "POST", f"/referral-plans/{signup_plan['id']}/clicks",
                        {"code": other["code"], "account_id": shopper}, 422)
        assert refused["error"]["code"] == "invalid_referral"


def test_payouts_api(api: Api) -> None:
    with clock.frozen(NOW):
        pid, usd, acc = _setup(api)
        with api.db.transaction() as s:
            w = ledger.wallet(s, api.tenant_id, pid, usd, "account", acc)
            src = ledger.program_account(s, api.tenant_id, pid, usd, "issued")
            ledger.post_entry(s, api.tenant_id, ledger.EntryRequest(
                program_id=pid, kind="earn",
                lines=(ledger.Line(src.id, usd, ledger.Side.DEBIT, 4_200),
                       ledger.Line(w.id, usd, ledger.Side.CREDIT, 4_200))))
        assert _call(api, "GET", f"/units/{usd}/payout-policy")["withdrawable"] is False
        _call(api, "PUT", f"/units/{usd}/payout-policy", {"withdrawable": True,
                                                          "minimum": 1000})
        batch = _call(api, "POST", f"/programs/{pid}/payout-batches",
                      {"unit_id": usd, "label": "2026-01"}, 201)
        assert (batch["items"], batch["total"]) == (1, 4200)
        _call(api, "POST", f"/programs/{pid}/payout-batches", {"unit_id": usd,
                                                               "label": "2026-01"}, 409)
        text = _call(api, "GET", f"/payout-batches/{batch['id']}/file.csv")
        header, row = text.strip().splitlines()
        assert header.startswith("item_id,owner_type,owner_id,member_number,name,currency")
        assert ",USD,4200,42.00,pending," in row
        item = _call(api, "GET", f"/payout-batches/{batch['id']}")["items"][0]
        paid = _call(api, "POST", f"/payout-items/{item['id']}/paid", {"reference": "TX-1"})
        assert paid["status"] == "paid" and paid["entry_id"]
        _call(api, "POST", f"/payout-items/{item['id']}/failed", {"reason": "x"}, 409)
        assert _call(api, "GET", f"/payout-batches/{batch['id']}")["batch"]["status"] == "closed"


def test_finance_statement_reconciles_with_the_ledger(api: Api) -> None:
    with clock.frozen(NOW):
        pid, _usd, acc = _setup(api)
        units = _call(api, "GET", f"/programs/{pid}/units")["items"]
        points = next(u["id"] for u in units if u["code"] == "points")
        with api.db.transaction() as s:
            w = ledger.wallet(s, api.tenant_id, pid, points, "account", acc)
            src = ledger.program_account(s, api.tenant_id, pid, points, "issued")
            ledger.post_entry(s, api.tenant_id, ledger.EntryRequest(
                program_id=pid, kind="earn",
                lines=(ledger.Line(src.id, points, ledger.Side.DEBIT, 10_000),
                       ledger.Line(w.id, points, ledger.Side.CREDIT, 10_000))))
        cash = _call(api, "POST", f"/programs/{pid}/rewards",
                     {"code": "cash", "name": "Cash", "kind": "cashout", "unit_id": points,
                      "cost": 2_500, "min_balance": 2_500}, 201)
        gift = _call(api, "POST", f"/programs/{pid}/rewards",
                     {"code": "give", "name": "Give", "kind": "donation", "unit_id": points,
                      "cost": 1_000, "causes": ["Red Cross"]}, 201)
        _call(api, "POST", f"/programs/{pid}/redemptions",
              {"reward_id": cash["id"], "account_id": acc}, 201)
        _call(api, "POST", f"/programs/{pid}/redemptions",
              {"reward_id": gift["id"], "account_id": acc, "cause": "Red Cross"}, 201)
    period = {"from": (NOW - timedelta(days=1)).isoformat(),
              "to": (NOW + timedelta(days=1)).isoformat()}
    r = api.client.get(f"/v1/programs/{pid}/statements", params=period, headers=api.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totals"] == {"points": {"earn": 10_000, "cashout": -2_500, "donation": -1_000}}
    # finance pays money: a point is worth US$0.01, so the 2,500-point cash-out is US$25.00
    assert body["currency"] == "USD"
    assert body["value_totals"] == {"points": {"earn": "100.00", "cashout": "-25.00",
                                               "donation": "-10.00"}}
    cashout = next(line for line in body["lines"] if line["category"] == "cashout")
    assert (cashout["amount"], cashout["currency"], cashout["value"]) == (-2_500, "USD", "-25.00")
    assert [line["detail"] for line in body["lines"]][-1] == "Red Cross"
    with api.db.read() as s:
        posted = ledger.balance_of(ledger.wallet(s, api.tenant_id, pid, points, "account",
                                                 acc)).posted
    assert sum(body["totals"]["points"].values()) == posted  # to the cent
    r = api.client.get(f"/v1/programs/{pid}/statements", params={**period, "format": "csv"},
                       headers=api.headers())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = r.text.strip().splitlines()
    assert len(rows) == 1 + len(body["lines"])
    assert rows[0].endswith(",amount,detail,currency,value")
    assert next(row for row in rows if ",cashout," in row).endswith(",-2500,cash,USD,-25.00")
    bad = api.client.get(f"/v1/programs/{pid}/statements",
                         params={"from": period["to"], "to": period["from"]},
                         headers=api.headers())
    assert bad.status_code == 422
