"""The members API: accounts, users, enrolments, invitations, merges and user transfers,
with tenant isolation, scopes, idempotency and field-naming validation errors."""

from __future__ import annotations

from typing import Any

from allegiance import ledger, tenants
from tests.api.conftest import Api


def _program(api: Api, mode: str = "open", code: str = "main",
             regions: list[str] | None = None) -> str:
    with api.db.transaction() as s:
        return tenants.create_program(s, api.tenant_id, code=code, name=code,
                                      base_currency="USD", enrolment_mode=mode,
                                      eligible_regions=regions).id


def _post(api: Api, path: str, body: Any = None, key: str | None = None,
          status: int = 201, **kw: Any) -> Any:
    r = api.client.post(f"/v1{path}", json=body, headers=api.headers(key, **kw))
    assert r.status_code == status, r.text
    return r.json()


def _get(api: Api, path: str, key: str | None = None, expect: int = 200, **params: Any) -> Any:
    r = api.client.get(f"/v1{path}", headers=api.headers(key), params=params)
    assert r.status_code == expect, r.text
    return r.json()


def _account(api: Api, name: str = "Acme", **kw: Any) -> dict[str, Any]:
    return dict(_post(api, "/accounts", {"name": name, **kw}))


def test_account_crud_hierarchy_and_search(api: Api) -> None:
    parent = _account(api, "Distributor", external_ids=[{"source": "crm", "external_id": "D1"}])
    assert parent["member_number"] == "M00000001" and parent["status"] == "active"
    assert parent["external_ids"] == [{"source": "crm", "external_id": "D1"}]
    child = _account(api, "Dealer", parent_id=parent["id"], region="US-CA")
    _account(api, "Other")
    assert _get(api, f"/accounts/{child['id']}")["parent_id"] == parent["id"]
    children = _get(api, f"/accounts/{parent['id']}/children")
    assert [a["id"] for a in children["items"]] == [child["id"]]
    found = _get(api, "/accounts", q="deal")
    assert [a["name"] for a in found["items"]] == ["Dealer"]
    page = _get(api, "/accounts", limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = _get(api, "/accounts", limit=2, cursor=page["next_cursor"])
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    r = api.client.patch(f"/v1/accounts/{child['id']}", headers=api.headers(),
                         json={"name": "Dealer One", "parent_id": None})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Dealer One" and r.json()["parent_id"] is None
    r = api.client.patch(f"/v1/accounts/{parent['id']}", headers=api.headers(),
                         json={"parent_id": parent["id"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "hierarchy_cycle"


def test_validation_errors_name_the_field(api: Api) -> None:
    r = api.client.post("/v1/accounts", headers=api.headers(), json={"name": ""})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = api.client.post("/v1/accounts", headers=api.headers(),
                        json={"name": "X", "status": "merged"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "status"
    r = api.client.post("/v1/accounts", headers=api.headers(), json={"name": "X", "region": "zz9"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "region"
    r = api.client.post("/v1/accounts", headers=api.headers(), json={"name": "a\x00b"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    acc = _account(api)
    r = api.client.patch(f"/v1/accounts/{acc['id']}", headers=api.headers(),
                         json={"merged_into_id": "acc_x"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "merged_into_id"
    r = api.client.post(f"/v1/accounts/{acc['id']}/users", headers=api.headers(),
                        json={"name": "Ann", "role": "emperor"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "role"
    pid = _program(api)
    r = api.client.post(f"/v1/programs/{pid}/enrolments", headers=api.headers(), json={})
    assert r.status_code == 422 and r.json()["error"]["field"] == "account_id"
    r = api.client.post(f"/v1/programs/{pid}/enrolments", headers=api.headers(),
                        json={"account_id": acc["id"], "tier": "gold"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "tier"
    r = api.client.post("/v1/accounts", headers=api.headers(),
                        json={"name": "Y", "member_number": acc["member_number"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_member_number"


def test_scopes(api: Api) -> None:
    reader = api.key_with(["read"])
    integration = api.key_with(["integration"])
    r = api.client.post("/v1/accounts", headers=api.headers(reader), json={"name": "X"})
    assert r.status_code == 403
    acc = _post(api, "/accounts", {"name": "Via integration"}, key=integration)
    assert _get(api, f"/accounts/{acc['id']}", key=reader)["name"] == "Via integration"
    r = api.client.patch(f"/v1/accounts/{acc['id']}", headers=api.headers(integration),
                         json={"name": "Y"})
    assert r.status_code == 403
    user = _post(api, f"/accounts/{acc['id']}/users", {"name": "Ann", "role": "rep"},
                 key=integration)
    r = api.client.patch(f"/v1/users/{user['id']}", headers=api.headers(reader),
                         json={"role": "owner"})
    assert r.status_code == 403
    r = api.client.get("/v1/accounts", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_other_tenants_ids_answer_404(api: Api) -> None:
    acc = _account(api)
    user = _post(api, f"/accounts/{acc['id']}/users", {"name": "Ann", "role": "owner"})
    pid = _program(api)
    enr = _post(api, f"/programs/{pid}/enrolments", {"account_id": acc["id"]})
    _, other = api.new_tenant()
    for path in (f"/accounts/{acc['id']}", f"/accounts/{acc['id']}/children",
                 f"/accounts/{acc['id']}/users", f"/users/{user['id']}",
                 f"/enrolments/{enr['id']}", f"/enrolments/{enr['id']}/history",
                 f"/programs/{pid}/enrolments"):
        assert _get(api, path, key=other, expect=404)["error"]["code"].endswith("not_found")
    r = api.client.patch(f"/v1/accounts/{acc['id']}", headers=api.headers(other),
                         json={"name": "stolen"})
    assert r.status_code == 404
    r = api.client.patch(f"/v1/users/{user['id']}", headers=api.headers(other),
                         json={"name": "stolen"})
    assert r.status_code == 404
    _post(api, f"/enrolments/{enr['id']}/status", {"to_status": "closed"}, key=other,
          status=404)
    _post(api, f"/programs/{pid}/enrolments", {"account_id": acc["id"]}, key=other, status=404)
    _post(api, f"/accounts/{acc['id']}/users", {"name": "X", "role": "rep"}, key=other,
          status=404)
    mine = _post(api, "/accounts", {"name": "Mine"}, key=other)
    _post(api, f"/accounts/{mine['id']}/merge", {"into_account_id": acc["id"], "reason": "x"},
          key=other, status=404)
    assert _get(api, "/accounts", key=other)["items"] == [mine]
    assert _get(api, f"/accounts/{acc['id']}")["name"] == "Acme"


def test_users(api: Api) -> None:
    acc = _account(api)
    user = _post(api, f"/accounts/{acc['id']}/users",
                 {"name": "Ann", "email": "ann@acme.test", "role": "owner"})
    assert user["account_id"] == acc["id"] and "password_hash" not in user
    _post(api, f"/accounts/{acc['id']}/users", {"name": "Ann 2", "email": "ann@acme.test",
                                                 "role": "rep"}, status=409)
    r = api.client.patch(f"/v1/users/{user['id']}", headers=api.headers(),
                         json={"role": "viewer", "status": "disabled"})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert [u["name"] for u in _get(api, f"/accounts/{acc['id']}/users")] == ["Ann"]
    assert _get(api, f"/users/{user['id']}")["status"] == "disabled"


def test_enrolment_application_flow_and_history(api: Api) -> None:
    pid = _program(api, "application", regions=["US"])
    acc = _account(api, region="US-TX")
    far = _account(api, "Far away", region="FR")
    enr = _post(api, f"/programs/{pid}/enrolments",
                {"account_id": acc["id"], "application": {"why": "we sell"}})
    assert enr["status"] == "applied" and enr["application"] == {"why": "we sell"}
    err = _post(api, f"/programs/{pid}/enrolments", {"account_id": far["id"]}, status=403)
    assert err["error"]["code"] == "region_not_eligible"
    listed = _get(api, f"/programs/{pid}/enrolments", status="applied")
    assert [e["id"] for e in listed["items"]] == [enr["id"]]
    _post(api, f"/enrolments/{enr['id']}/reject", {}, status=422)
    approved = _post(api, f"/enrolments/{enr['id']}/approve", {"reason": "ok"}, status=200)
    assert approved["status"] == "active"
    suspended = _post(api, f"/enrolments/{enr['id']}/status",
                      {"to_status": "suspended", "reason": "audit"}, status=200)
    assert suspended["status"] == "suspended"
    bad = _post(api, f"/enrolments/{enr['id']}/status", {"to_status": "applied"}, status=409)
    assert bad["error"]["code"] == "invalid_status_transition"
    bad = _post(api, f"/enrolments/{enr['id']}/status", {"to_status": "gone"}, status=422)
    assert bad["error"]["field"] == "to_status"
    history = _get(api, f"/enrolments/{enr['id']}/history")
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "applied"), ("applied", "active"), ("active", "suspended")]
    assert _get(api, f"/enrolments/{enr['id']}")["status"] == "suspended"


def test_invitation_flow(api: Api) -> None:
    pid = _program(api, "invitation")
    acc = _account(api)
    err = _post(api, f"/programs/{pid}/enrolments", {"account_id": acc["id"]}, status=403)
    assert err["error"]["code"] == "invitation_required"
    issued = _post(api, f"/programs/{pid}/invitations", {"email": "a@acme.test"})
    assert issued["token"] and issued["status"] == "pending"
    bad = _post(api, "/invitations/accept", {"token": "inv_wrong", "account_id": acc["id"]},
                status=404)
    assert bad["error"]["code"] == "invitation_not_found"
    enr = _post(api, "/invitations/accept", {"token": issued["token"], "account_id": acc["id"]},
                status=200)
    assert enr["status"] == "active" and enr["program_id"] == pid
    again = _post(api, "/invitations/accept", {"token": issued["token"],
                                               "account_id": acc["id"]}, status=409)
    assert again["error"]["code"] == "invitation_already_used"
    other = _account(api, "Other")
    second = _post(api, f"/programs/{pid}/invitations", {"email": "o@x.test",
                                                         "account_id": other["id"]})
    r = api.client.post(f"/v1/invitations/{second['id']}/revoke", headers=api.headers())
    assert r.status_code == 204
    bad = _post(api, f"/programs/{pid}/enrolments", {"account_id": other["id"],
                                                     "invitation_token": second["token"]},
                status=409)
    assert bad["error"]["code"] == "invitation_revoked"


def test_merge_and_user_transfers(api: Api) -> None:
    pid = _program(api)
    with api.db.transaction() as s:
        unit = tenants.create_unit(s, api.tenant_id, pid, code="pts", name="Points",
                                   kind="points", value_in_base="0.01",
                                   expiry_policy={"kind": "never"}).id
        issued = ledger.program_account(s, api.tenant_id, pid, unit, "issued").id
    hq = _account(api, "HQ")
    dup = _account(api, "HQ (dup)")
    owner = _post(api, f"/accounts/{hq['id']}/users", {"name": "Olga", "role": "owner"})
    rep = _post(api, f"/accounts/{hq['id']}/users", {"name": "Raj", "role": "rep"})
    wallets: dict[str, str] = {}
    with api.db.transaction() as s:
        for name, owner_type, owner_id in (("hq", "account", hq["id"]),
                                           ("dup", "account", dup["id"]),
                                           ("rep", "user", rep["id"])):
            wallets[name] = ledger.wallet(s, api.tenant_id, pid, unit, owner_type, owner_id).id
            ledger.post_entry(s, api.tenant_id, ledger.EntryRequest(
                program_id=pid, kind="earn",
                lines=(ledger.Line(issued, unit, ledger.Side.DEBIT, 100),
                       ledger.Line(wallets[name], unit, ledger.Side.CREDIT, 100))))
    moved = _post(api, f"/users/{rep['id']}/transfers",
                  {"from_wallet_id": wallets["rep"], "to_wallet_id": wallets["hq"],
                   "amount": 30}, idempotency_key="t-1")
    replay = api.client.post(f"/v1/users/{rep['id']}/transfers", headers=api.headers(
        idempotency_key="t-1"), json={"from_wallet_id": wallets["rep"],
                                      "to_wallet_id": wallets["hq"], "amount": 30})
    assert replay.json() == moved and replay.headers["Idempotent-Replayed"] == "true"
    denied = _post(api, f"/users/{rep['id']}/transfers",
                   {"from_wallet_id": wallets["hq"], "to_wallet_id": wallets["rep"],
                    "amount": 1}, status=403)
    assert denied["error"]["code"] == "role_forbidden"
    _post(api, f"/users/{owner['id']}/transfers",
          {"from_wallet_id": wallets["hq"], "to_wallet_id": wallets["rep"], "amount": 0},
          status=422)
    merged = _post(api, f"/accounts/{dup['id']}/merge",
                   {"into_account_id": hq["id"], "reason": "duplicate"}, status=200)
    assert merged["status"] == "merged" and merged["merged_into_id"] == hq["id"]
    with api.db.read() as s:
        def bal(w: str) -> int:
            return ledger.balance_of(ledger.get_account(s, api.tenant_id, w)).posted
        assert (bal(wallets["hq"]), bal(wallets["dup"]), bal(wallets["rep"])) == (230, 0, 70)
    again = _post(api, f"/accounts/{dup['id']}/merge",
                  {"into_account_id": hq["id"], "reason": "duplicate"}, status=409)
    assert again["error"]["code"] == "account_not_active"
    bad = _post(api, f"/accounts/{hq['id']}/merge", {"into_account_id": hq["id"]}, status=422)
    assert bad["error"]["field"] == "reason"
