"""Small helpers of the web routes: run a form's action in one transaction and say how it
went on the next page; parse optional form and query values."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError

log = logging.getLogger("allegiance.web")


class Speaker(Protocol):
    db: Database

    def say(self, kind: str, text: str) -> None: ...


def act(ctx: Speaker, fn: Callable[[Session], Any], ok: str | Callable[[Any], str],
        to: str) -> RedirectResponse:
    """Run ``fn`` in a transaction; on a domain error roll back and show its message; then
    redirect (303) to ``to`` — the post/redirect/get pattern."""
    try:
        with ctx.db.transaction() as session:
            result = fn(session)
    except AllegianceError as exc:
        ctx.say("error", exc.message)
    else:
        ctx.say("ok", ok(result) if callable(ok) else ok)
    return RedirectResponse(to, status_code=303)


def url(path: str, **params: Any) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(clean)}" if clean else path


def parse_int(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value.strip().replace(",", "").replace("_", ""))
    except ValueError:
        return None


def parse_day(value: str | None) -> datetime | None:
    """A YYYY-MM-DD from a date input as midnight UTC; None when empty or malformed."""
    if not value:
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def safe_next(target: str | None, prefix: str, default: str) -> str:
    """Only same-app paths may be redirected to after sign-in (no open redirect)."""
    if target and target.startswith(prefix + "/") and not target.startswith("//") \
            and "\\" not in target and "://" not in target:
        return target
    return default
