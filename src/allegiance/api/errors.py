"""One error shape for every failure: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from allegiance.kit.db import is_check_violation
from allegiance.kit.errors import AllegianceError

log = logging.getLogger("allegiance.api")


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``code``, a message, the offending ``field`` when there is one
    (validation errors add ``problems``, domain errors may add ``details``)."""

    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# The error answers any /v1 operation may give, documented on every operation of the OpenAPI
# document (clients and schemathesis check responses against it).
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Malformed request (for example a body that is not JSON)"),
    401: _documented("Missing, unknown, expired or revoked API key"),
    403: _documented("The API key lacks the scope or program this operation needs"),
    404: _documented("No such object in the caller's tenant"),
    409: _documented("Conflicts with existing data or a request in progress"),
    422: _documented("Validation failed; `error.field` names the field"),
    429: {**_documented("Too many requests for this API key"),
          "headers": {"Retry-After": {"description": "Seconds to wait before retrying",
                                      "schema": {"type": "integer"}}}},
    503: {**_documented("The database is busy (a write waited too long for its turn); nothing "
                        "was written, retry"),
          "headers": {"Retry-After": {"description": "Seconds to wait before retrying",
                                      "schema": {"type": "integer"}}}},
}

# PostgreSQL: deadlock, serialization failure (both retried three times first, see
# ``kit.db.retrying``), lock not available, statement timeout.
BUSY_SQLSTATES = ("40P01", "40001", "55P03", "57014")


def is_busy(exc: OperationalError) -> bool:
    """A write that could not get its turn: SQLite's ``database is locked`` (the busy timeout
    ran out, in SQLite or in the group commit's queue) or a PostgreSQL lock or timeout. The
    transaction was rolled back; the same request may succeed later."""
    if getattr(exc.orig, "sqlstate", None) in BUSY_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database is busy" in message


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra)
    return {"error": error}


def _field_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


def _route_table(app: Any) -> list[tuple[re.Pattern[str], int, set[str]]]:
    """(path pattern, number of path parameters, methods) of every route, included routers'
    routes under their prefix."""
    table: list[tuple[re.Pattern[str], int, set[str]]] | None = getattr(
        app.state, "allow_table", None)
    if table is None:
        table = []
        for route in app.router.routes:
            contexts = getattr(route, "effective_route_contexts", None)
            pairs = ([(c.path, c.original_route) for c in contexts()] if contexts is not None
                     else [(getattr(route, "path", None), route)])
            for path, original in pairs:
                methods = getattr(original, "methods", None)
                if isinstance(path, str) and methods:
                    pattern, _, convertors = compile_path(path)
                    table.append((pattern, len(convertors), set(methods)))
        app.state.allow_table = table
    return table


def _allowed_methods(request: Request) -> str:
    """The methods of the routes of the request's path (Starlette's own 405 names only the
    first route's, but one path often has a GET route and a POST route); a literal path
    (``/referrals/attribute``) is not also the template ``/referrals/{referral_id}``."""
    path = request.url.path
    matches = [(params, methods) for pattern, params, methods in _route_table(request.app)
               if pattern.match(path)]
    fewest = min((params for params, _ in matches), default=0)
    allowed = {m for params, methods in matches if params == fewest for m in methods}
    return ", ".join(sorted(allowed))


def install(app: FastAPI) -> None:
    @app.exception_handler(AllegianceError)
    async def _domain(_request: Request, exc: AllegianceError) -> JSONResponse:
        headers = {}
        retry_after = exc.details.get("retry_after") if exc.details else None
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return JSONResponse(
            {"error": exc.to_dict()}, status_code=exc.status, headers=headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            return JSONResponse(
                error_body("malformed_json", "the request body is not valid JSON"),
                status_code=400,
            )
        field = _field_of(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid value"))
        if field:
            message = f"{field}: {message}"
        return JSONResponse(
            error_body("validation_error", message, field,
                       problems=[{"field": _field_of(tuple(e.get("loc", ()))),
                                  "message": str(e.get("msg"))} for e in errors[:20]]),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
                 403: "forbidden"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(_request)
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        # The database's own walls (CHECK, unique) stopped a write the services let through;
        # the transaction was rolled back, so nothing was written.
        if is_check_violation(exc):
            return JSONResponse(
                error_body("constraint_violation",
                           "the change would break a limit of the ledger; nothing was written"),
                status_code=422,
            )
        return JSONResponse(
            error_body("conflict", "the change conflicts with existing data; nothing was written"),
            status_code=409,
        )

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse(
            error_body("value_out_of_range", "a value is out of range; nothing was written"),
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    async def _operational(_request: Request, exc: OperationalError) -> JSONResponse:
        if not is_busy(exc):
            return await _unexpected(_request, exc)
        log.warning("busy: %s", exc.orig)
        return JSONResponse(
            error_body("busy", "the database is busy; nothing was written, retry later"),
            status_code=503, headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "an internal error occurred; nothing was written"),
            status_code=500,
        )
