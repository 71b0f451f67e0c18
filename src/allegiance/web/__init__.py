"""The web apps, an interface like ``api``: the admin app for operators under ``/admin`` and
the member portal under ``/portal``, server-rendered (Jinja2, htmx vendored in ``static/``,
no build step). Features never import this package."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allegiance import operators
from allegiance.kit.errors import AllegianceError
from allegiance.kit.ratelimit import RateLimiter
from allegiance.kit.settings import get_settings
from allegiance.web import (
    admin_analytics,
    admin_audit,
    admin_auth,
    admin_claims,
    admin_designer,
    admin_enrolments,
    admin_imports,
    admin_mdf,
    admin_members,
    admin_queue,
    admin_requests,
    portal,
    portal_claims,
    portal_engagement,
    portal_mdf,
    portal_membership,
    portal_referrals,
    portal_requests,
    portal_team,
)
from allegiance.web.security import CsrfFailed, PermissionDenied, SignInRequired
from allegiance.web.templating import STATIC, render

WEB_PREFIXES = ("/admin", "/portal")


def _is_web(request: Request) -> bool:
    return request.url.path.startswith(WEB_PREFIXES)


def _error_page(request: Request, status: int, title: str, message: str,
                retry_after: object = None) -> Response:
    app = "portal" if request.url.path.startswith("/portal") else "admin"
    response = render(request, "error.html", {"title": title, "message": message, "app": app},
                      status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


class SecurityHeaders:
    """Pure ASGI middleware (no extra task or stream per request, unlike ``BaseHTTPMiddleware``):
    pages under /admin and /portal get a per-request CSP nonce (``request.state.nonce``, read by
    the templates) and the security headers; API requests pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(WEB_PREFIXES):
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["nonce"] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = (
                    "default-src 'self'; script-src 'self'; "
                    f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
                    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Mount both apps, their static files, error pages and security headers on ``app``."""
    app.state.admin_throttle = operators.Throttle()
    app.state.portal_throttle = operators.Throttle()
    per_minute = get_settings().portal_rate_limit_per_minute
    app.state.portal_limiter = (
        RateLimiter(per_minute, message="too many requests: wait a moment and try again")
        if per_minute > 0 else None)
    app.include_router(admin_auth.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_members.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_queue.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_requests.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_designer.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_enrolments.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_mdf.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_imports.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_analytics.router, prefix="/admin", include_in_schema=False)
    app.include_router(admin_audit.router, prefix="/admin", include_in_schema=False)
    app.include_router(portal.router, prefix="/portal", include_in_schema=False)
    app.include_router(portal_requests.router, prefix="/portal", include_in_schema=False)
    app.include_router(admin_claims.router, prefix="/admin", include_in_schema=False)
    app.include_router(portal_claims.router, prefix="/portal", include_in_schema=False)
    app.include_router(portal_mdf.router, prefix="/portal", include_in_schema=False)
    app.include_router(portal_referrals.router, prefix="/portal", include_in_schema=False)
    app.include_router(portal_membership.router, prefix="/portal", include_in_schema=False)
    app.include_router(portal_engagement.router, prefix="/portal", include_in_schema=False)
    app.include_router(portal_team.router, prefix="/portal", include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = f"/{exc.app}/sign-in"
        if request.method == "GET" and request.url.path not in (f"/{exc.app}", f"/{exc.app}/"):
            target += "?next=" + quote(request.url.path + (
                f"?{request.url.query}" if request.url.query else ""), safe="")
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(PermissionDenied)
    async def _denied(request: Request, exc: PermissionDenied) -> Response:
        return _error_page(request, 403, "Not allowed", exc.message)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> Response:
        return _error_page(request, 403, "Form expired",
                           "This form was not sent from a page of this site, or it expired. "
                           "Go back, reload the page and try again.")

    api_handler = app.exception_handlers.get(AllegianceError)

    async def _domain(request: Request, exc: Exception) -> Response:
        if _is_web(request) and isinstance(exc, AllegianceError):
            title = {404: "Not found", 429: "Too many requests"}.get(
                exc.status, "Something is not right")
            return _error_page(request, exc.status, title, exc.message,
                               (exc.details or {}).get("retry_after"))
        assert api_handler is not None
        result: Response = await api_handler(request, exc)  # type: ignore[misc]
        return result

    app.add_exception_handler(AllegianceError, _domain)

    app.add_middleware(SecurityHeaders)
