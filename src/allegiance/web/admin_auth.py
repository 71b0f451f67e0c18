"""Admin sign-in, sign-out and the tenant/program switcher."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from allegiance import operators, tenants
from allegiance.operators import sessions
from allegiance.web.forms import safe_next
from allegiance.web.security import (
    ADMIN_COOKIE,
    Admin,
    SignInRequired,
    admin,
    admin_form,
    check_signin_token,
    clear_cookie,
    client_address,
    db_of,
    keep_signin_token,
    load_admin,
    set_cookie,
    signin_token,
)
from allegiance.web.templating import render

router = APIRouter()


def _form(request: Request, *, error: str | None = None, email: str = "", next_: str = "",
          status_code: int = 200) -> Response:
    response = render(request, "admin/sign_in.html", {
        "csrf": signin_token(request), "error": error, "email": email, "next": next_,
    }, status_code)
    keep_signin_token(request, response)
    return response


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "") -> Response:
    try:
        load_admin(request)
        return RedirectResponse("/admin/dashboard", status_code=303)
    except SignInRequired:
        return _form(request, next_=next)


@router.post("/sign-in")
async def sign_in(request: Request, email: str = Form("", max_length=320),
                  password: str = Form("", max_length=1024),
                  csrf_token: str = Form(""), next: str = Form("")) -> Response:
    check_signin_token(request, csrf_token)
    return await run_in_threadpool(_sign_in, request, email, password, next)


def _sign_in(request: Request, email: str, password: str, next_: str) -> Response:
    throttle: operators.Throttle = request.app.state.admin_throttle
    clean = operators.normal_email(email)
    address = client_address(request)
    try:
        throttle.check(clean, address)
    except operators.TooManyAttempts as exc:
        return _form(request, error=exc.message, email=email, next_=next_, status_code=429)
    db = db_of(request)
    with db.transaction() as s:
        matched = operators.verify(s, clean, password)
        if matched:
            names = {t: tenants.get_tenant(s, t).name for t in {m.tenant_id for m in matched}}
            grants = [{"tenant_id": m.tenant_id, "user_id": m.id,
                       "tenant_name": names[m.tenant_id]} for m in matched]
            first = matched[0]
            _, token = sessions.start(s, first.tenant_id, "operator", first.id, grants=grants)
    if not matched:
        throttle.failed(clean, address)
        return _form(request, error="The e-mail address or the password is not right.",
                     email=email, next_=next_, status_code=401)
    throttle.succeeded(clean)
    response = RedirectResponse(safe_next(next_, "/admin", "/admin/dashboard"), status_code=303)
    set_cookie(response, request, ADMIN_COOKIE, token, "/admin")
    return response


@router.post("/sign-out")
def sign_out(request: Request, ctx: Admin = Depends(admin_form("view"))) -> Response:
    with ctx.db.transaction() as s:
        sessions.revoke(s, ctx.tenant_id, ctx.web_session.id)
    response = RedirectResponse("/admin/sign-in", status_code=303)
    clear_cookie(response, request, ADMIN_COOKIE, "/admin")
    return response


@router.post("/switch")
def switch(request: Request, program_id: str = Form(""), tenant_id: str = Form(""),
           back: str = Form(""), ctx: Admin = Depends(admin_form("view"))) -> Response:
    """Change the program looked at, or move to another tenant the sign-in opened."""
    to = safe_next(back, "/admin", "/admin/dashboard")
    if tenant_id and tenant_id != ctx.tenant_id:
        grant: dict[str, Any] | None = next(
            (g for g in ctx.web_session.grants if g.get("tenant_id") == tenant_id), None)
        if grant is None:
            ctx.say("error", "you have no access to that tenant")
            return RedirectResponse(to, status_code=303)
        with ctx.db.transaction() as s:
            user = s.get(operators.OperatorUser, (tenant_id, grant["user_id"]))
            if user is None or user.status != "active":
                sessions.set_flash(s, ctx.tenant_id, ctx.web_session.id, "error",
                                   "your access to that tenant was withdrawn")
                return RedirectResponse(to, status_code=303)
            _, token = sessions.start(s, tenant_id, "operator", user.id,
                                      grants=list(ctx.web_session.grants))
            sessions.revoke(s, ctx.tenant_id, ctx.web_session.id)
        response = RedirectResponse("/admin/dashboard", status_code=303)
        set_cookie(response, request, ADMIN_COOKIE, token, "/admin")
        return response
    if program_id and any(p.id == program_id for p in ctx.programs):
        with ctx.db.transaction() as s:
            sessions.set_program(s, ctx.tenant_id, ctx.web_session.id, program_id)
    return RedirectResponse(to, status_code=303)


@router.get("/")
def home(ctx: Admin = Depends(admin("view"))) -> Response:
    return RedirectResponse("/admin/dashboard", status_code=303)
