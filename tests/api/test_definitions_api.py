"""Programs as code over HTTP: validate, apply, export (JSON and YAML), versions, diff."""

from __future__ import annotations

from typing import Any

import yaml

from allegiance import tenants
from tests.api.conftest import Api


def document(rate: str = "0.01") -> dict[str, Any]:
    return {
        "program": {"code": "api-rewards", "name": "API Rewards", "base_currency": "USD"},
        "units": [{"code": "points", "kind": "points"}],
        "rules": [{"code": "base", "effects": [{"type": "points_per_amount", "unit": "points",
                                                "rate": rate}]}],
    }


def test_validate_lists_every_problem(api: Api) -> None:
    bad = document()
    bad["units"][0]["kind"] = "stars"
    bad["program"]["time_zone"] = "Nowhere/Land"
    r = api.client.post("/v1/definitions/validate", json=bad, headers=api.headers())
    assert r.status_code == 200
    body = r.json()
    assert body["valid"] is False
    assert [p["path"] for p in body["problems"]] == ["program.time_zone", "units[0].kind"]
    r = api.client.post("/v1/definitions/validate", json=document(), headers=api.headers())
    assert r.json() == {"valid": True, "problems": []}


def test_apply_refuses_an_invalid_document_with_the_first_path(api: Api) -> None:
    bad = document()
    bad["rules"][0]["effects"][0]["unit"] = "miles"
    bad["units"].append({"code": "cash", "kind": "money"})
    r = api.client.post("/v1/definitions/apply", json={"document": bad},
                        headers=api.headers())
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_definition"
    assert error["field"] == "units[1].currency"
    assert [p["path"] for p in error["details"]["problems"]] == [
        "units[1].currency", "rules[0].effects[0].unit"]


def test_apply_export_versions_and_diff(api: Api) -> None:
    r = api.client.post("/v1/definitions/apply", json={"document": document()},
                        headers=api.headers(idempotency_key="apply-1"))
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["version"] == 1
    pid = first["program_id"]
    replay = api.client.post("/v1/definitions/apply", json={"document": document()},
                             headers=api.headers(idempotency_key="apply-1"))
    assert replay.json() == first
    r = api.client.post("/v1/definitions/apply",
                        json={"document": document("0.02"),
                              "effective_from": "2030-01-01T00:00:00+00:00"},
                        headers=api.headers())
    assert r.json()["version"] == 2

    r = api.client.get(f"/v1/programs/{pid}/versions", headers=api.headers())
    assert [v["version"] for v in r.json()["items"]] == [1, 2]
    r = api.client.get(f"/v1/programs/{pid}/versions?limit=1", headers=api.headers())
    page = r.json()
    assert [v["version"] for v in page["items"]] == [1] and page["next_cursor"]
    r = api.client.get(f"/v1/programs/{pid}/versions?limit=1&cursor={page['next_cursor']}",
                       headers=api.headers())
    assert [v["version"] for v in r.json()["items"]] == [2]

    r = api.client.get(f"/v1/programs/{pid}/definition", headers=api.headers())
    assert r.json()["version"] == 2
    assert r.json()["document"]["rules"][0]["effects"][0]["rate"] == "0.02"
    r = api.client.get(f"/v1/programs/{pid}/definition?version=1&format=yaml",
                       headers=api.headers())
    assert r.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(r.text) == document()
    r = api.client.get(f"/v1/programs/{pid}/definition?version=9", headers=api.headers())
    assert r.status_code == 404

    # version 2 is not in force yet: the diff is against version 1
    draft = document("0.05")
    r = api.client.post(f"/v1/programs/{pid}/definition/diff", json=draft,
                        headers=api.headers())
    body = r.json()
    assert body["against_version"] == 1
    assert body["changes"] == [{"path": "rules[code=base].effects[0].rate", "kind": "changed",
                                "old": "0.01", "new": "0.05"}]
    assert "rules[code=base].effects[0].rate" in body["text"]


def test_definitions_need_the_admin_scope(api: Api) -> None:
    key = api.key_with(["integration"])
    r = api.client.post("/v1/definitions/validate", json=document(), headers=api.headers(key))
    assert r.status_code == 403
    r = api.client.post("/v1/definitions/apply", json={"document": document()},
                        headers=api.headers(key))
    assert r.status_code == 403


def test_another_tenant_cannot_read_the_definition(api: Api) -> None:
    r = api.client.post("/v1/definitions/apply", json={"document": document()},
                        headers=api.headers())
    pid = r.json()["program_id"]
    _, other = api.new_tenant()
    r = api.client.get(f"/v1/programs/{pid}/definition", headers=api.headers(other))
    assert r.status_code == 404
    # the same code in another tenant is another program
    r = api.client.post("/v1/definitions/apply", json={"document": document()},
                        headers=api.headers(other))
    assert r.status_code == 201 and r.json()["program_id"] != pid


def test_apply_body_rejects_unknown_fields(api: Api) -> None:
    r = api.client.post("/v1/definitions/apply", json={"document": document(), "tenant": "x"},
                        headers=api.headers())
    assert r.status_code == 422


def test_a_key_limited_to_a_program_cannot_touch_others(api: Api) -> None:
    r = api.client.post("/v1/definitions/apply", json={"document": document()},
                        headers=api.headers())
    pid = r.json()["program_id"]
    with api.db.transaction() as s:
        limited = tenants.create_api_key(s, api.tenant_id, name="limited", scopes=["admin"],
                                         program_ids=[pid]).secret
    r = api.client.post("/v1/definitions/apply", json={"document": document("0.03")},
                        headers=api.headers(limited))
    assert r.status_code == 201 and r.json()["version"] == 2
    other = document()
    other["program"]["code"] = "another"
    r = api.client.post("/v1/definitions/apply", json={"document": other},
                        headers=api.headers(limited))
    assert r.status_code == 403
    assert r.json()["error"]["field"] == "document.program.code"
