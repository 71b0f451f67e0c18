"""Signing in to the admin app and the portal: Argon2id, cookies, sessions stored hashed,
CSRF on every form, throttling, roles, sign-out, the tenant switcher."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

import allegiance.web as web_package
from allegiance import operators, tenants
from allegiance.demo import DEMO_OPERATOR
from allegiance.operators import domain
from tests.web.conftest import PASSWORD, Web, csrf_of, post


def test_operator_passwords_are_argon2id(web: Web) -> None:
    with web.db.read() as s:
        row = operators.operator_by_email(s, web.tenant_id, DEMO_OPERATOR[0])
        assert row is not None
        assert row.password_hash.startswith("$argon2id$")
        assert DEMO_OPERATOR[1] not in row.password_hash


def test_sign_in_sets_a_safe_cookie_stored_only_hashed(web: Web) -> None:
    client = web.client()
    token = csrf_of(client.get("/admin/sign-in").text)
    response = client.post("/admin/sign-in", data={
        "email": DEMO_OPERATOR[0].upper(), "password": DEMO_OPERATOR[1], "csrf_token": token},
        follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/admin/dashboard"
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith("allegiance_admin="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    with web.db.read() as s:
        rows = [(r.token_hash, r.csrf_token) for r in s.scalars(select(operators.WebSession))]
    assert [r[0] for r in rows] == [hashlib.sha256(value.encode()).hexdigest()]
    assert all(value not in r for r in rows)
    assert client.get("/admin/dashboard").status_code == 200


@pytest.mark.parametrize("email,password", [
    (DEMO_OPERATOR[0], "wrong password!!"), ("nobody@demo.example", DEMO_OPERATOR[1])])
def test_wrong_credentials_get_one_message(web: Web, email: str, password: str) -> None:
    client = web.client()
    token = csrf_of(client.get("/admin/sign-in").text)
    response = client.post("/admin/sign-in", data={
        "email": email, "password": password, "csrf_token": token})
    assert response.status_code == 401
    assert "The e-mail address or the password is not right." in response.text
    assert client.get("/admin/dashboard", follow_redirects=False).status_code == 303


def test_sign_in_is_throttled_per_email(web: Web) -> None:
    client = web.client()
    token = csrf_of(client.get("/admin/sign-in").text)
    for _ in range(5):
        client.post("/admin/sign-in", data={"email": DEMO_OPERATOR[0], "password": "nope nope nope",
                                            "csrf_token": token})
    right = {"email": DEMO_OPERATOR[0], "password": DEMO_OPERATOR[1], "csrf_token": token}
    response = client.post("/admin/sign-in", data=right)
    assert response.status_code == 429 and "too many failed sign-ins" in response.text
    # Another person is not locked out.
    web.admin("finance")


def test_sign_in_form_needs_its_token(web: Web) -> None:
    client = web.client()
    response = client.post("/admin/sign-in", data={
        "email": DEMO_OPERATOR[0], "password": DEMO_OPERATOR[1], "csrf_token": "forged"})
    assert response.status_code == 403


def test_pages_need_a_session_and_remember_where_to_go(web: Web) -> None:
    client = web.client()
    response = client.get("/admin/members?q=acme", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fmembers%3Fq%3Dacme"
    assert client.get("/portal/home", follow_redirects=False).headers["location"].startswith(
        "/portal/sign-in")


def test_no_open_redirect_after_sign_in(web: Web) -> None:
    client = web.client()
    token = csrf_of(client.get("/admin/sign-in").text)
    response = client.post("/admin/sign-in", data={
        "email": DEMO_OPERATOR[0], "password": DEMO_OPERATOR[1], "csrf_token": token,
        "next": "//evil.example/admin"}, follow_redirects=False)
    assert response.headers["location"] == "/admin/dashboard"


def _post_routes() -> list[str]:
    """Every POST route of both web apps: of every module of ``allegiance.web`` with a router
    (``portal*`` under /portal, the others under /admin), so a new module is covered too."""
    paths = []
    for info in pkgutil.iter_modules(web_package.__path__):
        module = importlib.import_module(f"allegiance.web.{info.name}")
        router = getattr(module, "router", None)
        if router is None:
            continue
        prefix = "/portal" if info.name.startswith("portal") else "/admin"
        paths += [prefix + route.path for route in router.routes
                  if isinstance(route, APIRoute) and "POST" in route.methods
                  and not route.path.endswith(("/sign-in", "/set-password"))]
    return paths


def test_every_form_needs_the_csrf_token(web: Web) -> None:
    admin, member = web.admin(), web.member()
    routes = _post_routes()
    assert len(routes) >= 20
    for path in routes:
        concrete = re.sub(r"\{[a-z_]+\}", "x", path.replace(
            "{account_id}", web.demo.accounts["dealer_west"]).replace("{action}", "approve"))
        client = admin if path.startswith("/admin") else member
        missing = client.post(concrete, data={"reason": "r"}, follow_redirects=False)
        forged = client.post(concrete, data={"reason": "r", "csrf_token": "forged"},
                             follow_redirects=False)
        assert missing.status_code == 403 and forged.status_code == 403, path


def test_sign_out_ends_the_session(web: Web) -> None:
    client = web.admin()
    cookie = client.cookies.get("allegiance_admin")
    assert post(client, "/admin/sign-out").status_code == 303  # type: ignore[attr-defined]
    other = web.client()
    other.cookies.set("allegiance_admin", cookie or "", path="/admin")
    assert other.get("/admin/dashboard", follow_redirects=False).status_code == 303


def test_security_headers(web: Web) -> None:
    response = web.admin().get("/admin/dashboard")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_roles_in_one_table() -> None:
    assert domain.may("owner", "operators")
    assert not domain.may("program_manager", "operators")
    assert domain.may("program_manager", "designer") and not domain.may("finance", "designer")
    assert domain.may("finance", "adjust") and not domain.may("read_only", "adjust")
    assert all(domain.may(role, "view") for role in domain.ROLES)
    assert not domain.may("read_only", "redemptions") and not domain.may("nobody", "view")


def test_read_only_sees_but_cannot_act(web: Web) -> None:
    client = web.admin("read_only")
    account = web.demo.accounts["dealer_west"]
    page = client.get(f"/admin/members/{account}")
    assert page.status_code == 200 and f"{account}/adjust" not in page.text
    response: Any = post(client, f"/admin/members/{account}/adjust",
                         {"wallet_id": web.demo.wallets["dealer_west"], "amount": "100",
                          "reason": "nope"})
    assert response.status_code == 403
    assert client.get("/admin/operators").status_code == 403


def test_disabled_operator_is_signed_out(web: Web) -> None:
    finance = web.admin("finance")
    owner = web.admin()
    with web.db.read() as s:
        target = operators.operator_by_email(s, web.tenant_id, web.operators["finance"])
        assert target is not None
        target_id = target.id
    response: Any = post(owner, f"/admin/operators/{target_id}",
                         {"role": "finance", "status": "disabled"}, page="/admin/operators")
    assert response.status_code == 303
    assert finance.get("/admin/dashboard", follow_redirects=False).status_code == 303


def test_tenant_switcher_offers_only_tenants_the_password_opened(web: Web) -> None:
    with web.db.transaction() as s:
        other = tenants.create_tenant(s, "Second Co")
        tenants.create_program(s, other.id, code="p2", name="Second program",
                               base_currency="EUR")
        operators.create_operator(s, other.id, email=web.operators["support"], name="Sam",
                                  role="read_only", password=PASSWORD, actor="test")
        third = tenants.create_tenant(s, "Third Co")
        operators.create_operator(s, third.id, email=web.operators["support"], name="Sam",
                                  role="owner", password="a different password", actor="test")
    client = web.admin("support")
    page = client.get("/admin/dashboard").text
    assert "Second Co" in page and "Third Co" not in page
    refused: Any = post(client, "/admin/switch", {"tenant_id": third.id})
    assert client.get("/admin/dashboard").text.count("Third Co") == 0
    assert refused.status_code == 303
    switched: Any = post(client, "/admin/switch", {"tenant_id": other.id})
    assert switched.status_code == 303
    page = client.get("/admin/dashboard").text
    assert "Second program" in page and "read only" in page


def test_member_sign_in_and_wrong_password(web: Web) -> None:
    client = web.member()
    assert "Acme Electrical Supply" in client.get("/portal/home").text
    other = web.client()
    token = csrf_of(other.get("/portal/sign-in").text)
    response = other.post("/portal/sign-in", data={
        "email": "grace@acme.example", "password": "not her password", "csrf_token": token})
    assert response.status_code == 401
