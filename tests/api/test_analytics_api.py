"""The reports over HTTP: read scope, JSON/CSV/SVG, errors, tenancy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from allegiance import tenants
from allegiance.api.app import create_app
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.analytics_support import History, history, standard
from tests.support.invariants import assert_ledger_invariants


@pytest.fixture
def setup(db: Database, frozen_clock: clock.FrozenClock) -> Iterator[tuple[TestClient, History,
                                                                             str]]:
    h = standard(history(db, frozen_clock))
    with db.transaction() as s:
        key = tenants.create_api_key(s, h.world.tenant_id, name="reader",
                                     scopes=["read"]).secret
    with TestClient(create_app(db, rate_limit_per_minute=0),
                    raise_server_exceptions=False) as client:
        yield client, h, key
    assert_ledger_invariants(db)


def test_a_read_only_key_reads_reports(setup: tuple[TestClient, History, str]) -> None:
    client, h, key = setup
    auth = {"Authorization": f"Bearer {key}"}
    base = f"/v1/programs/{h.world.program_id}/reports"
    got = client.get(f"{base}/liability", headers=auth)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["kind"] == "liability"
    assert body["rows"] == [{"unit": "points", "tier": "gold", "age": "31-90",
                             "outstanding": 40, "value": "0.40"}]
    assert body["summary"]["units"][0]["reconciled"] is True
    past = client.get(f"{base}/liability", params={"at": "2026-02-20"}, headers=auth).json()
    assert past["summary"]["units"][0]["outstanding"] == 160
    kpis = client.get(f"{base}/kpis", params={"from": "2026-02-01", "to": "2026-03-31"},
                      headers=auth).json()
    assert (kpis["rows"][0]["issued"], kpis["rows"][0]["redeemed"]) == (40, 30)
    as_csv = client.get(f"{base}/breakage", params={"format": "csv"}, headers=auth)
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.splitlines()
    assert lines[0].startswith("unit,cohort,age,issued")
    assert lines[1].startswith("points,2026-01,2,150,30,120")
    chart = client.get(f"{base}/forecast", params={"format": "svg"}, headers=auth)
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.text.startswith("<svg") and "Liability forecast" in chart.text


def test_report_errors(setup: tuple[TestClient, History, str], db: Database) -> None:
    client, h, key = setup
    auth = {"Authorization": f"Bearer {key}"}
    base = f"/v1/programs/{h.world.program_id}/reports"
    unknown = client.get(f"{base}/horoscope", headers=auth)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "report_invalid"
    bad_date = client.get(f"{base}/kpis", params={"from": "yesterday"}, headers=auth)
    assert bad_date.status_code == 422
    backwards = client.get(f"{base}/kpis", params={"from": "2026-03-01", "to": "2026-01-01"},
                           headers=auth)
    assert backwards.status_code == 422
    assert backwards.json()["error"]["field"] == "to"
    no_chart = client.get(f"{base}/clv", params={"format": "svg"}, headers=auth)
    assert no_chart.status_code == 422  # no purchases to fit
    assert client.get(f"{base}/kpis").status_code == 401
    with db.transaction() as s:
        other = tenants.create_tenant(s, "Other")
        stranger = tenants.create_api_key(s, other.id, name="k", scopes=["admin"]).secret
    foreign = client.get(f"{base}/liability", headers={"Authorization": f"Bearer {stranger}"})
    assert foreign.status_code == 404
