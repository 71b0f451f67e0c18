"""The application factory: mounts every feature's router, the error handler and the limiter."""

from __future__ import annotations

import gc
import json
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from allegiance import __version__, audit, tenants
from allegiance.analytics.routes import router as analytics_router
from allegiance.api import access, errors
from allegiance.api.ratelimit import RateLimiter
from allegiance.audit.routes import router as audit_router
from allegiance.campaigns.routes import router as campaigns_router
from allegiance.cashback.routes import router as cashback_router
from allegiance.claims.routes import router as claims_router
from allegiance.definitions.routes import router as definitions_router
from allegiance.engagement.routes import router as engagement_router
from allegiance.engagement.routes_more import router as engagement_more_router
from allegiance.events.routes import router as events_router
from allegiance.fx.routes import router as fx_router
from allegiance.imports.routes import router as imports_router
from allegiance.kit.auth import Principal
from allegiance.kit.db import Database
from allegiance.kit.settings import cors_origins, get_settings, group_commit_choice
from allegiance.kit.web import Ctx, no_nul_parameters, route_template
from allegiance.ledger.routes import router as ledger_router
from allegiance.mdf.routes import router as mdf_router
from allegiance.members.routes import router as members_router
from allegiance.memberships.routes import router as memberships_router
from allegiance.memberships.routes_managers import router as managers_router
from allegiance.payouts.routes import router as payouts_router
from allegiance.privacy.routes import router as privacy_router
from allegiance.referrals.routes import router as referrals_router
from allegiance.rewards.routes import router as rewards_router
from allegiance.simulation.routes import router as simulation_router
from allegiance.tenants.routes import router as tenants_router
from allegiance.tiers.routes import router as tiers_router
from allegiance.web import install as install_web
from allegiance.webhooks.routes import router as webhooks_router

DESCRIPTION = """
Allegiance is a headless B2B loyalty and partner-incentive engine on one double-entry ledger.

* Authenticate with `Authorization: Bearer <api key>`.
* Every write accepts an `Idempotency-Key` header: the first response is stored for 30 days and
  replayed; the same key with a different body is refused (422), a concurrent duplicate gets 409.
* Errors are `{"error": {"code": "...", "message": "...", "field": "..."}}` with stable codes.
* Amounts are integers: points are whole numbers, money is in minor units (cents).
"""


def authenticate(db: Database, secret: str) -> Principal:
    """The API key behind a bearer secret; records its last use at most once a minute."""
    with db.read() as session:
        principal = tenants.authenticate(session, secret)
    if tenants.last_use_due(principal.key_id):
        with db.transaction() as session:
            tenants.touch_api_key(session, principal.tenant_id, principal.key_id)
    return principal


def cached_principal(secret: str) -> Principal | None:
    """A key checked moments ago (no database read); None sends the request the full way,
    which also records the key's last use once a minute."""
    principal = tenants.cached_principal(secret)
    if principal is None or tenants.last_use_due(principal.key_id):
        return None
    return principal


def audit_write(session: Session, ctx: Ctx, payload: str) -> None:
    """The audit row of an API write that recorded none itself (see kit.web.AuditHook)."""
    try:
        response = json.loads(payload)
    except ValueError:
        response = None
    audit.record_request(
        session, ctx.tenant_id, actor=ctx.actor, method=ctx.request.method,
        route=route_template(ctx.request) or ctx.request.url.path,
        path_params={k: str(v) for k, v in ctx.request.path_params.items()}, response=response)


def serve_app() -> FastAPI:
    """The app as ``allegiance serve`` runs it (uvicorn's factory, in every worker).

    Once the app is built, everything allocated so far (modules, routes, models, the
    schema's validators: hundreds of thousands of objects that live as long as the process)
    is moved out of the cyclic garbage collector's reach (``gc.freeze``). Otherwise every
    full collection walks them all: a pause of tens of milliseconds, several times a minute
    under load, that lands on whichever requests are in flight (the redemption benchmark's
    p99). Tests build apps with :func:`create_app` and do not freeze.

    The first requests build more that lasts as long (FastAPI's per-route validators and
    serializers, about 80,000 objects: a full collection of them paused the server for
    20–30 ms in the middle of the redemption benchmark), so the first few full collections
    the process makes are each followed by another freeze (:func:`_freeze_survivors`)."""
    app = create_app()
    gc.collect()
    gc.freeze()
    gc.callbacks.append(_freeze_survivors)
    return app


_SURVIVOR_FREEZES = 3
_survivor_freezes = [0]


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After each of the process's first ``_SURVIVOR_FREEZES`` full collections, freeze what
    survived it: objects that outlive a full collection early in a server's life are its
    lasting structures. (What is frozen is never collected as a cycle again — the requests in
    flight at those moments included: a bounded, one-time cost.) Then it removes itself."""
    if phase != "stop" or info.get("generation") != 2:
        return
    _survivor_freezes[0] += 1
    gc.freeze()
    if _survivor_freezes[0] >= _SURVIVOR_FREEZES and _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)


def create_app(db: Database | None = None, *, rate_limit_per_minute: int | None = None) -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Allegiance API",
        version=__version__,
        description=DESCRIPTION,
        debug=False,
    )
    app.state.db = db or Database(settings.database_url, busy_timeout=settings.sqlite_busy_timeout,
                                  group_commit=group_commit_choice(settings),
                                  synchronous=settings.sqlite_synchronous)
    per_minute = (
        settings.rate_limit_per_minute if rate_limit_per_minute is None else rate_limit_per_minute
    )
    app.state.limiter = RateLimiter(per_minute) if per_minute > 0 else None
    app.state.authenticate = authenticate
    app.state.cached_principal = cached_principal
    app.state.scope_policy = access.required_scope
    app.state.audit_hook = audit_write
    app.state.audit_flush = audit.send_pending
    errors.install(app)
    origins = cors_origins(settings)
    if origins:
        # Only the listed origins; a wildcard is never honoured (see `allegiance check-settings`).
        app.add_middleware(
            CORSMiddleware, allow_origins=origins, allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After", "Idempotent-Replayed", "Event-Replayed"],
        )

    # Routes are tried in order, so the busiest writes (redemptions, events, postings) come
    # first; no route's path is matched by another's template, whatever the order
    # (tests/api/test_route_order.py).
    for router in (
        rewards_router,
        events_router,
        ledger_router,
        tenants_router,
        members_router,
        tiers_router,
        definitions_router,
        webhooks_router,
        privacy_router,
        audit_router,
        fx_router,
        imports_router,
        simulation_router,
        engagement_router,
        engagement_more_router,
        memberships_router,
        managers_router,
        campaigns_router,
        analytics_router,
        cashback_router,
        referrals_router,
        claims_router,
        mdf_router,
        payouts_router,
    ):
        app.include_router(router, prefix="/v1", dependencies=[Depends(no_nul_parameters)],
                           responses=errors.RESPONSES)

    install_web(app)

    @app.get("/health", tags=["meta"], summary="Liveness")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
