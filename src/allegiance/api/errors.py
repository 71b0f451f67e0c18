"""One error shape for every failure: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from allegiance.kit.db import is_check_violation
from allegiance.kit.errors import AllegianceError

log = logging.getLogger("allegiance.api")


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
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
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

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "an internal error occurred; nothing was written"),
            status_code=500,
        )
