"""The application factory: mounts every feature's router, the error handler and the limiter."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse

from allegiance import __version__, tenants
from allegiance.api import errors
from allegiance.api.ratelimit import RateLimiter
from allegiance.definitions.routes import router as definitions_router
from allegiance.events.routes import router as events_router
from allegiance.kit.auth import Principal
from allegiance.kit.db import Database
from allegiance.kit.settings import get_settings
from allegiance.kit.web import no_nul_parameters
from allegiance.ledger.routes import router as ledger_router
from allegiance.members.routes import router as members_router
from allegiance.rewards.routes import router as rewards_router
from allegiance.tenants.routes import router as tenants_router
from allegiance.tiers.routes import router as tiers_router
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


def create_app(db: Database | None = None, *, rate_limit_per_minute: int | None = None) -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Allegiance API",
        version=__version__,
        description=DESCRIPTION,
        debug=False,
    )
    app.state.db = db or Database(settings.database_url, busy_timeout=settings.sqlite_busy_timeout)
    per_minute = (
        settings.rate_limit_per_minute if rate_limit_per_minute is None else rate_limit_per_minute
    )
    app.state.limiter = RateLimiter(per_minute) if per_minute > 0 else None
    app.state.authenticate = authenticate
    errors.install(app)

    for router in (tenants_router, members_router, ledger_router, tiers_router, events_router,
                   definitions_router, webhooks_router, rewards_router):
        app.include_router(router, prefix="/v1", dependencies=[Depends(no_nul_parameters)])

    @app.get("/health", tags=["meta"], summary="Liveness")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
