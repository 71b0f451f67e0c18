"""Signing in to the web apps: session cookies, the signed-in context of a request, the one
permission check of the admin app, CSRF on every form, and security headers.

* The cookie holds a random token (HttpOnly, SameSite=Lax, Secure over HTTPS, path-scoped to
  its app); the database keeps only its SHA-256 (``operators.sessions``).
* Every POST goes through :func:`admin_form` / :func:`portal_form`, which check the session's
  CSRF token sent as the ``csrf_token`` field (or the ``X-CSRF-Token`` header of htmx).
* Sign-in forms, before any session exists, use a double-submit token cookie.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from allegiance import members, operators, tenants
from allegiance.kit.db import Database
from allegiance.kit.ratelimit import RateLimiter
from allegiance.operators import sessions

ADMIN_COOKIE = "allegiance_admin"
PORTAL_COOKIE = "allegiance_portal"
SIGNIN_COOKIE = "allegiance_signin"


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page."""

    def __init__(self, app: str) -> None:
        super().__init__(app)
        self.app = app


class PermissionDenied(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CsrfFailed(Exception):
    pass


@contextlib.contextmanager
def reading(db: Database) -> Iterator[Session]:
    """A read-only session whose rows stay usable after it ends (pages render after the
    read: the rows are detached before the read's rollback would expire them)."""
    with db.read() as session:
        yield session
        session.expunge_all()


def db_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, path: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True,
                        samesite="lax", secure=secure(request))


def clear_cookie(response: Response, request: Request, name: str, path: str) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=secure(request))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# ---------------------------------------------------------------------------------------------
# Sign-in forms (no session yet): double-submit token


def signin_token(request: Request) -> str:
    """The token to put in a sign-in form (reuses the cookie's when there is one)."""
    existing = request.cookies.get(SIGNIN_COOKIE)
    token = existing if existing and len(existing) <= 64 else secrets.token_urlsafe(24)
    request.state.signin_token = token
    return token


def keep_signin_token(request: Request, response: Response) -> None:
    token = getattr(request.state, "signin_token", None)
    if token and request.cookies.get(SIGNIN_COOKIE) != token:
        set_cookie(response, request, SIGNIN_COOKIE, token, "/", max_age=3600)


def check_signin_token(request: Request, sent: str) -> None:
    cookie = request.cookies.get(SIGNIN_COOKIE) or ""
    if not cookie or not sent or not operators.same_secret(cookie, sent):
        raise CsrfFailed()


# ---------------------------------------------------------------------------------------------
# The admin app


@dataclass
class Admin:
    """A signed-in operator: who, in which tenant, on which program, and what they may do."""

    request: Request
    db: Database
    web_session: operators.WebSession
    user: operators.OperatorUser
    tenant_name: str
    programs: list[tenants.Program]
    program: tenants.Program | None
    flash: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        return self.user.tenant_id

    @property
    def actor(self) -> str:
        return f"operator:{self.user.id}"

    @property
    def csrf(self) -> str:
        return self.web_session.csrf_token

    def may(self, permission: str) -> bool:
        return operators.may(self.user.role, permission)

    def need_program(self) -> tenants.Program:
        if self.program is None:
            raise PermissionDenied("this tenant has no program yet")
        return self.program

    def say(self, kind: str, text: str) -> None:
        """A message for the next page this browser shows."""
        with self.db.transaction() as s:
            sessions.set_flash(s, self.tenant_id, self.web_session.id, kind, text)


def load_admin(request: Request) -> Admin:
    db = db_of(request)
    token = request.cookies.get(ADMIN_COOKIE)
    with reading(db) as s:
        row = sessions.find(s, token, "operator")
        if row is None:
            raise SignInRequired("admin")
        user = s.get(operators.OperatorUser, (row.tenant_id, row.user_id))
        if user is None or user.status != "active":
            raise SignInRequired("admin")
        tenant = tenants.get_tenant(s, row.tenant_id)
        programs = list(tenants.list_programs(s, row.tenant_id))
    program = next((p for p in programs if p.id == row.program_id), None)
    if program is None and programs:
        program = programs[0]
    flash: dict[str, Any] = {}
    if row.flash or sessions.touch_due(row):
        with db.transaction() as s:
            flash = sessions.pop_flash(s, row)
            if sessions.touch_due(row):
                sessions.touch(s, row)
    return Admin(request, db, row, user, tenant.name, programs, program, flash)


def admin(permission: str = "view") -> Callable[[Request], Awaitable[Admin]]:
    """A dependency: the signed-in operator, who must have ``permission`` (GET pages)."""

    async def dependency(request: Request) -> Admin:
        ctx = await run_in_threadpool(load_admin, request)
        if not ctx.may(permission):
            raise PermissionDenied(
                f"your role ({operators.ROLE_NAMES[ctx.user.role]}) may not do this")
        return ctx

    return dependency


async def _form_token(request: Request) -> str:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    form = await request.form()
    value = form.get("csrf_token")
    return value if isinstance(value, str) else ""


def admin_form(permission: str) -> Callable[[Request], Awaitable[Admin]]:
    """A dependency for every admin POST: signed in, ``permission``, a valid CSRF token."""

    async def dependency(request: Request) -> Admin:
        ctx = await run_in_threadpool(load_admin, request)
        sent = await _form_token(request)
        if not sent or not operators.same_secret(sent, ctx.csrf):
            raise CsrfFailed()
        if not ctx.may(permission):
            raise PermissionDenied(
                f"your role ({operators.ROLE_NAMES[ctx.user.role]}) may not do this")
        return ctx

    return dependency


# ---------------------------------------------------------------------------------------------
# The member portal


@dataclass
class Member:
    """A signed-in member user: its account tree (the only accounts it may see), the programs
    its account is enrolled in, and the one it looks at."""

    request: Request
    db: Database
    web_session: operators.WebSession
    user: members.User
    account: members.Account
    tree: list[str]  # the user's account and every account below it
    account_names: dict[str, str]
    programs: list[tenants.Program]
    program: tenants.Program | None
    flash: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        return self.user.tenant_id

    @property
    def actor(self) -> str:
        return f"member_user:{self.user.id}"

    @property
    def csrf(self) -> str:
        return self.web_session.csrf_token

    @property
    def branding(self) -> dict[str, str]:
        return branding_of(self.program)

    def sees(self, account_id: str | None) -> bool:
        return account_id is not None and account_id in self.tree

    def may_view(self, owner_type: str, owner_id: str) -> bool:
        """The members feature's view rule for a wallet of the tree (a rep sees only its own
        wallet, a manager its account's and its team's, an owner the accounts below too)."""
        own = owner_id == (self.user.id if owner_type == "user" else self.account.id)
        return members.may_view_wallet(self.user.role, owner_type, own, True)

    def say(self, kind: str, text: str) -> None:
        with self.db.transaction() as s:
            sessions.set_flash(s, self.tenant_id, self.web_session.id, kind, text)


DEFAULT_BRAND = {"primary": "#1f4e79", "accent": "#b35900"}


def _colour(value: Any, fallback: str) -> str:
    text = str(value or "")
    ok = len(text) in (4, 7) and text.startswith("#") and all(
        c in "0123456789abcdefABCDEF" for c in text[1:])
    return text if ok else fallback


def branding_of(program: tenants.Program | None) -> dict[str, str]:
    """A program's portal branding from ``settings.branding`` (name and colours), checked so
    that only ``#rgb``/``#rrggbb`` colours reach the page's style."""
    raw = (program.settings or {}).get("branding", {}) if program is not None else {}
    raw = raw if isinstance(raw, dict) else {}
    name = str(raw.get("name") or (program.name if program is not None else "Member portal"))
    return {"name": name[:80],
            "primary": _colour(raw.get("primary_color"), DEFAULT_BRAND["primary"]),
            "accent": _colour(raw.get("accent_color"), DEFAULT_BRAND["accent"])}


def load_member(request: Request) -> Member:
    db = db_of(request)
    token = request.cookies.get(PORTAL_COOKIE)
    with reading(db) as s:
        row = sessions.find(s, token, "member")
        if row is None:
            raise SignInRequired("portal")
        user = s.get(members.User, (row.tenant_id, row.user_id))
        if user is None or user.status != "active" or not user.password_hash:
            raise SignInRequired("portal")
        limiter: RateLimiter | None = getattr(request.app.state, "portal_limiter", None)
        if limiter is not None:  # per signed-in user: 429 with Retry-After (T27)
            limiter.check(f"{row.tenant_id}:{user.id}")
        account = members.get_account(s, row.tenant_id, user.account_id)
        if account.status != "active":
            raise SignInRequired("portal")
        tree = [account.id]
        if members.may_view_wallet(user.role, "account", False, True):  # accounts below too
            tree += [a for a in members.descendants(s, row.tenant_id, account.id)
                     if a != account.id]
        names = {a.id: a.name for a in s.query(members.Account).filter(
            members.Account.tenant_id == row.tenant_id, members.Account.id.in_(tree))}
        enrolled = {e.program_id for e in s.query(members.Enrolment).filter(
            members.Enrolment.tenant_id == row.tenant_id,
            members.Enrolment.account_id == account.id,
            members.Enrolment.status.in_(("active", "suspended")))}
        programs = [p for p in tenants.list_programs(s, row.tenant_id) if p.id in enrolled]
    program = next((p for p in programs if p.id == row.program_id), None)
    if program is None and programs:
        program = programs[0]
    flash: dict[str, Any] = {}
    if row.flash or sessions.touch_due(row):
        with db.transaction() as s:
            flash = sessions.pop_flash(s, row)
            if sessions.touch_due(row):
                sessions.touch(s, row)
    return Member(request, db, row, user, account, tree, names, programs, program, flash)


async def member(request: Request) -> Member:
    """A dependency: the signed-in member user (GET pages)."""
    return await run_in_threadpool(load_member, request)


async def member_form(request: Request) -> Member:
    """A dependency for every portal POST: signed in and a valid CSRF token."""
    ctx = await run_in_threadpool(load_member, request)
    sent = await _form_token(request)
    if not sent or not operators.same_secret(sent, ctx.csrf):
        raise CsrfFailed()
    return ctx
