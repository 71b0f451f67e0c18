"""Exchange rates (API and CSV file) and events in another currency: converted at the rate
of their day (half-even, line by line), the rate stored with the event; returns convert at the
purchase's own rate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from allegiance import definitions, members
from allegiance.fx import domain
from tests.api.conftest import Api
from tests.integration.events_support import EPOCH, definition


def _setup(api: Api) -> str:
    with api.db.transaction() as s:
        version = definitions.apply(s, api.tenant_id, definition(), actor="test",
                                    effective_from=EPOCH)
        members.create_account(s, api.tenant_id, name="Acme", member_number="M-1")
        return version.program_id


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers())
    assert r.status_code == status, r.text
    return r.json()


def test_conversion_rounds_half_even_across_exponents() -> None:
    assert domain.convert(1999, "EUR", "USD", Decimal("1.0842")) == 2167  # 2167.3158
    assert domain.convert(5, "EUR", "USD", Decimal("0.5")) == 2  # 2.5 → 2
    assert domain.convert(15, "EUR", "USD", Decimal("0.5")) == 8  # 7.5 → 8
    assert domain.convert(1000, "JPY", "USD", Decimal("0.0067")) == 670  # ¥1000 = $6.70
    assert domain.convert(670, "USD", "JPY", Decimal("149.25")) == 1000  # $6.70 = ¥999.975
    assert domain.convert(123, "USD", "USD", Decimal("2")) == 123


@pytest.mark.parametrize("text,field", [
    ("currency,date\nEUR,2026-01-01\n", "header"),
    ("currency,date,rate\neur1,2026-01-01,1\n", "currency"),
    ("currency,date,rate\nEUR,2026-13-01,1\n", "date"),
    ("currency,date,rate\nEUR,2026-01-01,-1\n", "rate"),
    ("currency,date,rate\nEUR,2026-01-01,NaN\n", "rate"),
])
def test_rate_files_are_checked(text: str, field: str) -> None:
    with pytest.raises(domain.RateProblem) as problem:
        domain.parse_rates_csv(text)
    assert problem.value.field == field


def test_events_in_another_currency_convert_at_their_days_rate(api: Api) -> None:
    program_id = _setup(api)
    written = _call(api, "POST", "/fx-rates", {"base_currency": "USD", "rates": [
        {"currency": "EUR", "date": "2026-02-01", "rate": "1.10"},
        {"currency": "EUR", "date": "2026-03-01", "rate": "1.0842"}]})
    assert written == {"written": 2}
    imported = _call(api, "POST", "/fx-rates/import", {
        "base_currency": "USD", "csv": "currency,date,rate\nGBP,2026-03-01,1.27\n"
                                       "EUR,2026-02-01,1.1\n"})
    assert imported == {"written": 2}
    listed = _call(api, "GET", "/fx-rates?currency=EUR")["items"]
    assert sorted((r["date"], r["rate"]) for r in listed) == [
        ("2026-02-01", "1.1000000000"), ("2026-03-01", "1.0842000000")]
    body = {"external_id": "EU-1", "member_number": "M-1", "currency": "EUR",
            "occurred_at": "2026-03-05T10:00:00+00:00",
            "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": 1999},
                      {"sku": "X-9", "quantity": 3, "unit_price": 5}]}
    event = _call(api, "POST", f"/programs/{program_id}/events", body, 201)
    assert event["currency"] == "USD" and event["original_currency"] == "EUR"
    assert event["original_amount"] == 1999 + 15
    assert [x["amount"] for x in event["lines"]] == [2167, 16]  # 2167.3158, 16.263
    assert event["amount"] == 2167 + 16
    assert Decimal(event["fx_rate"]) == Decimal("1.0842") and event["fx_date"] == "2026-03-01"
    earlier = _call(api, "POST", f"/programs/{program_id}/events",
                    {**body, "external_id": "EU-0", "occurred_at": "2026-02-10T10:00:00+00:00"},
                    201)
    assert earlier["fx_date"] == "2026-02-01" and earlier["amount"] == 2199 + 16  # 16.5 → 16
    missing = _call(api, "POST", f"/programs/{program_id}/events",
                    {**body, "external_id": "EU-X", "occurred_at": "2026-01-10T10:00:00+00:00"},
                    422)
    assert missing["error"]["code"] == "fx_rate_missing"
    assert missing["error"]["field"] == "currency"
    same = _call(api, "POST", f"/programs/{program_id}/events",
                 {**body, "external_id": "US-1", "currency": "USD"}, 201)
    assert same["original_currency"] is None and same["amount"] == 1999 + 15
    ret = _call(api, "POST", f"/programs/{program_id}/returns",
                {"external_id": "RET-EU", "original_external_id": "EU-1",
                 "lines": [{"line_no": 1, "amount": 1999}]}, 201)
    assert ret["amount"] == 2167 and ret["original_currency"] == "EUR"
    assert ret["fx_rate"] == event["fx_rate"] and ret["fx_date"] == "2026-03-01"


def test_rates_need_admin_and_stay_in_their_tenant(api: Api) -> None:
    reader = api.key_with(["read"])
    r = api.client.post("/v1/fx-rates", headers=api.headers(reader), json={
        "base_currency": "USD", "rates": [{"currency": "EUR", "date": "2026-01-01",
                                           "rate": "1.1"}]})
    assert r.status_code == 403
    _call(api, "POST", "/fx-rates", {"base_currency": "USD", "rates": [
        {"currency": "EUR", "date": "2026-01-01", "rate": "1.1"}]})
    _, other = api.new_tenant()
    theirs = api.client.get("/v1/fx-rates", headers=api.headers(other)).json()
    assert theirs["items"] == []
    bad = _call(api, "POST", "/fx-rates", {"base_currency": "USD", "rates": [
        {"currency": "USD", "date": "2026-01-01", "rate": "1"}]}, 422)
    assert bad["error"]["code"] == "invalid_fx_rate"
    bad_csv = _call(api, "POST", "/fx-rates/import",
                    {"base_currency": "USD", "csv": "currency,date,rate\nEUR,x,1\n"}, 422)
    assert bad_csv["error"]["field"] == "date"


def test_rates_import_from_a_file_with_the_cli(api: Api, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from allegiance.cli import app

    path = tmp_path / "rates.csv"
    path.write_text("currency,date,rate\nEUR,2026-03-01,1.0842\nJPY,2026-03-01,0.0067\n")
    out = CliRunner().invoke(app, ["fx", "import", str(path), "--tenant", api.tenant_id,
                                   "--base-currency", "usd", "--database-url", api.db.url])
    assert out.exit_code == 0, out.output
    rows = _call(api, "GET", "/fx-rates?base_currency=USD")["items"]
    assert sorted(r["currency"] for r in rows) == ["EUR", "JPY"]
    path.write_text("currency,date,rate\nEUR,2026-03-02,zero\n")
    bad = CliRunner().invoke(app, ["fx", "import", str(path), "--tenant", api.tenant_id,
                                   "--base-currency", "USD", "--database-url", api.db.url])
    assert bad.exit_code == 1
    assert len(_call(api, "GET", "/fx-rates")["items"]) == 2
