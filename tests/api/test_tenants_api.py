"""Tenants, programs, units and API keys over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from allegiance import audit
from tests.api.conftest import Api


def _program(api: Api, code: str = "main", **extra: Any) -> dict[str, Any]:
    r = api.client.post("/v1/programs", headers=api.headers(),
                        json={"code": code, "name": "Main", "base_currency": "USD", **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _unit(api: Api, program_id: str, code: str = "points") -> dict[str, Any]:
    r = api.client.post(f"/v1/programs/{program_id}/units", headers=api.headers(),
                        json={"code": code, "name": "Points", "kind": "points",
                              "value_in_base": "0.01"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_tenant_of_the_caller(api: Api) -> None:
    r = api.client.get("/v1/tenant", headers=api.headers())
    assert r.status_code == 200
    assert r.json()["id"] == api.tenant_id and r.json()["name"] == "API tenant"


def test_program_crud_and_protected_fields(api: Api) -> None:
    p = _program(api, eligible_regions=["US", "CA"], adjustment_approval_threshold=100)
    assert p["code"] == "main" and p["status"] == "active" and p["time_zone"] == "UTC"
    assert p["adjustment_approval_threshold"] == 100

    got = api.client.get(f"/v1/programs/{p['id']}", headers=api.headers()).json()
    assert got == p

    r = api.client.patch(f"/v1/programs/{p['id']}", headers=api.headers(),
                         json={"name": "Renamed", "adjustment_approval_threshold": None})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed" and r.json()["adjustment_approval_threshold"] is None

    # Protected or unknown fields cannot be written through a body.
    for field, value in (("status", "closed"), ("tenant_id", "ten_x"), ("code", "other"),
                         ("id", "prg_x")):
        r = api.client.patch(f"/v1/programs/{p['id']}", headers=api.headers(),
                             json={field: value})
        assert r.status_code == 422, (field, r.text)
        assert r.json()["error"]["field"] == field
    r = api.client.patch(f"/v1/programs/{p['id']}", headers=api.headers(), json={"name": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"

    # Duplicate code → 409; bad currency → 422 naming the field.
    r = api.client.post("/v1/programs", headers=api.headers(),
                        json={"code": "main", "name": "Again", "base_currency": "USD"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_code"
    r = api.client.post("/v1/programs", headers=api.headers(),
                        json={"code": "x", "name": "X", "base_currency": "usd"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "base_currency"
    r = api.client.post("/v1/programs", headers=api.headers(),
                        json={"code": "y", "name": "Y", "base_currency": "USD",
                              "adjustment_approval_threshold": 10.5})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "adjustment_approval_threshold"


def test_program_list_paginates(api: Api) -> None:
    ids = [_program(api, code=f"p{i}")["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/v1/programs", headers=api.headers(), params=params).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids)
    r = api.client.get("/v1/programs", headers=api.headers(), params={"cursor": "!!!"})
    assert r.status_code == 422


def test_units(api: Api) -> None:
    p = _program(api)
    u = _unit(api, p["id"])
    assert u["program_id"] == p["id"] and u["kind"] == "points"
    assert u["expiry_policy"] == {"kind": "never"}
    listed = api.client.get(f"/v1/programs/{p['id']}/units", headers=api.headers()).json()
    assert [x["id"] for x in listed["items"]] == [u["id"]]

    r = api.client.patch(f"/v1/units/{u['id']}", headers=api.headers(),
                         json={"negative_floor": -50, "transferable": False})
    assert r.status_code == 200, r.text
    assert r.json()["negative_floor"] == -50 and r.json()["transferable"] is False
    r = api.client.patch(f"/v1/units/{u['id']}", headers=api.headers(), json={"kind": "money"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "kind"
    r = api.client.patch(f"/v1/units/{u['id']}", headers=api.headers(),
                         json={"negative_floor": 5})
    assert r.status_code == 422 and r.json()["error"]["field"] == "negative_floor"

    r = api.client.post(f"/v1/programs/{p['id']}/units", headers=api.headers(),
                        json={"code": "usd", "name": "Cash", "kind": "money"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "currency"
    r = api.client.post(f"/v1/programs/{p['id']}/units", headers=api.headers(),
                        json={"code": "usd", "name": "Cash", "kind": "money", "currency": "USD",
                              "expiry_policy": {"kind": "after_months", "months": 12}})
    assert r.status_code == 201, r.text
    assert r.json()["expiry_policy"]["months"] == 12


def test_other_tenants_ids_are_not_found(api: Api) -> None:
    p = _program(api)
    u = _unit(api, p["id"])
    _other, other_key = api.new_tenant()
    h = api.headers(key=other_key)
    assert api.client.get(f"/v1/programs/{p['id']}", headers=h).status_code == 404
    assert api.client.patch(f"/v1/programs/{p['id']}", headers=h,
                            json={"name": "x"}).status_code == 404
    assert api.client.get(f"/v1/programs/{p['id']}/units", headers=h).status_code == 404
    assert api.client.post(f"/v1/programs/{p['id']}/units", headers=h,
                           json={"code": "c", "name": "C", "kind": "points"}).status_code == 404
    assert api.client.get(f"/v1/units/{u['id']}", headers=h).status_code == 404
    assert api.client.patch(f"/v1/units/{u['id']}", headers=h,
                            json={"name": "x"}).status_code == 404
    assert api.client.get("/v1/programs", headers=h).json()["items"] == []
    # Nothing changed for the owner.
    assert api.client.get(f"/v1/programs/{p['id']}", headers=api.headers()).json() == p


def test_api_keys_lifecycle(api: Api) -> None:
    r = api.client.post("/v1/api-keys", headers=api.headers(),
                        json={"name": "shop", "scopes": ["integration"]})
    assert r.status_code == 201, r.text
    issued = r.json()
    secret = issued["secret"]
    assert secret.startswith(issued["id"] + ".")

    listed = api.client.get("/v1/api-keys", headers=api.headers()).json()["items"]
    row = next(k for k in listed if k["id"] == issued["id"])
    assert row["scopes"] == ["integration"] and row["revoked_at"] is None
    assert "secret" not in row and "secret_hash" not in row
    assert secret not in api.client.get("/v1/api-keys", headers=api.headers()).text

    # The integration key cannot do admin things but can read.
    assert api.client.get("/v1/api-keys", headers=api.headers(key=secret)).status_code == 403
    assert api.client.post("/v1/programs", headers=api.headers(key=secret),
                           json={"code": "z", "name": "Z",
                                 "base_currency": "USD"}).status_code == 403
    assert api.client.get("/v1/programs", headers=api.headers(key=secret)).status_code == 200

    r = api.client.post(f"/v1/api-keys/{issued['id']}/revoke", headers=api.headers())
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = api.client.get("/v1/tenant", headers=api.headers(key=secret))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"

    r = api.client.post("/v1/api-keys", headers=api.headers(), json={"name": "x", "scopes": ["root"]})
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("scopes")
    r = api.client.post("/v1/api-keys", headers=api.headers(),
                        json={"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "expires_at"

    _other, other_key = api.new_tenant()
    r = api.client.post(f"/v1/api-keys/{issued['id']}/revoke", headers=api.headers(key=other_key))
    assert r.status_code == 404


def test_program_limited_key(api: Api) -> None:
    a = _program(api, code="a")
    b = _program(api, code="b")
    r = api.client.post("/v1/api-keys", headers=api.headers(),
                        json={"name": "a-only", "scopes": ["admin"], "program_ids": [a["id"]]})
    limited = r.json()["secret"]
    h = api.headers(key=limited)
    assert [p["id"] for p in api.client.get("/v1/programs", headers=h).json()["items"]] == [a["id"]]
    assert api.client.get(f"/v1/programs/{b['id']}", headers=h).status_code in (403, 404)
    assert api.client.post("/v1/programs", headers=h,
                           json={"code": "c", "name": "C",
                                 "base_currency": "USD"}).status_code == 403
    # It cannot mint a key that reaches further than itself.
    assert api.client.post("/v1/api-keys", headers=h,
                           json={"name": "all", "scopes": ["admin"]}).status_code == 403
    assert api.client.post("/v1/api-keys", headers=h,
                           json={"name": "a", "scopes": ["read"],
                                 "program_ids": [a["id"]]}).status_code == 201


def test_admin_writes_are_audited(api: Api) -> None:
    p = _program(api)
    api.client.patch(f"/v1/programs/{p['id']}", headers=api.headers(), json={"name": "N"})
    with api.db.read() as s:
        rows = s.execute(
            select(audit.AuditRecord.action, func.count())
            .where(audit.AuditRecord.tenant_id == api.tenant_id)
            .group_by(audit.AuditRecord.action)
        ).all()
    assert dict((str(a), int(n)) for a, n in rows) == {"program.create": 1, "program.update": 1}


def test_idempotent_program_creation(api: Api) -> None:
    body = {"code": "idem", "name": "Idem", "base_currency": "EUR"}
    first = api.client.post("/v1/programs", headers=api.headers(idempotency_key="k-1"), json=body)
    again = api.client.post("/v1/programs", headers=api.headers(idempotency_key="k-1"), json=body)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    r = api.client.post("/v1/programs", headers=api.headers(idempotency_key="k-1"),
                        json={**body, "name": "Other"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    assert len(api.client.get("/v1/programs", headers=api.headers()).json()["items"]) == 1


def test_hostile_values_are_422_not_500(api: Api) -> None:
    p = _program(api)
    url = f"/v1/programs/{p['id']}/units"
    bad_units: list[tuple[dict[str, Any], str | None]] = [
        ({"expiry_policy": {"kind": "after_months", "months": 1.5}}, "expiry_policy.months"),
        ({"expiry_policy": {"kind": "after_months", "months": 10**30}}, "expiry_policy.months"),
        ({"expiry_policy": {"kind": "forever"}}, "expiry_policy.kind"),
        ({"expiry_policy": {"kind": "never", "x": 1}}, "expiry_policy.x"),
        ({"value_in_base": "1e20"}, "value_in_base"),
        ({"value_in_base": "NaN"}, "value_in_base"),
        ({"negative_floor": -(2**70)}, "negative_floor"),
        ({"name": "a\x00b"}, None),
    ]
    for extra, field in bad_units:
        r = api.client.post(url, headers=api.headers(),
                            json={"code": "c", "name": "C", "kind": "points", **extra})
        assert r.status_code == 422, (extra, r.text)
        if field is not None:
            assert r.json()["error"]["field"] == field, (extra, r.json())
    r = api.client.get("/v1/programs/prg%00x", headers=api.headers())
    assert r.status_code == 422
    r = api.client.get("/v1/programs", headers=api.headers(), params={"cursor": "a\x00"})
    assert r.status_code == 422
    r = api.client.post(url, headers=api.headers(), json={
        "code": "c", "name": "C", "kind": "points",
        "expiry_policy": {"kind": "end_of_period", "period": "quarter", "periods_after": 1}})
    assert r.status_code == 201, r.text
    assert r.json()["expiry_policy"] == {"kind": "end_of_period", "period": "quarter",
                                         "periods_after": 1}
