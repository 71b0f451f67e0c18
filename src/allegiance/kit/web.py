"""The web layer shared by every feature's routes. Per-request context: who is calling, the database, and the unit of work of a write.

A write route calls :meth:`Ctx.write` with a function of the session. The function runs in
one transaction together with the storage of the ``Idempotency-Key`` response, so a commit
means both exist and a rollback means neither does.

    @router.post("/things", status_code=201, response_model=ThingRead)
    def create_thing(body: ThingCreate, ctx: Ctx = Depends(need("admin"))) -> Response:
        return ctx.write(body, lambda s: ThingRead.model_validate(service.create(s, ...)), 201)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Table, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from allegiance.kit import clock
from allegiance.kit.auth import Principal, scope_allows
from allegiance.kit.db import Database, is_unique_violation, retrying
from allegiance.kit.errors import (
    Forbidden,
    IdempotencyInFlight,
    IdempotencyKeyReused,
    Unauthorized,
    ValidationFailed,
)
from allegiance.kit.models import IdempotencyRecord
from allegiance.kit.placement import collect_last_writes, finish_last_writes, read_with_begin
from allegiance.kit.rows import RowByKey, RowInsert
from allegiance.kit.settings import get_settings

# Installed by the app factory: turns a bearer secret into a principal or raises.
Authenticator = Callable[[Database, str], Principal]
# Installed by the app factory: records the audit row of a write that recorded none itself
# (session, ctx, the response payload). Writes that audit themselves mark the session by
# incrementing ``session.info["audit_rows"]``.
AuditHook = Callable[[Session, "Ctx", str], None]

_in_flight: set[tuple[str, str]] = set()
_in_flight_lock = threading.Lock()


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@dataclass
class Ctx:
    request: Request
    db: Database
    principal: Principal

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def actor(self) -> str:
        return self.principal.actor

    def check_program(self, program_id: str) -> None:
        """Keys limited to some programs may not touch others (reads as not found)."""
        if self.principal.program_ids and program_id not in self.principal.program_ids:
            raise Forbidden("this API key may not use that program", field="program_id")

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self.db.read(self.tenant_id) as session:
            yield session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work of the caller's tenant (row-level security applies on PostgreSQL)."""
        with self.db.transaction(self.tenant_id) as session:
            yield session

    def write(
        self,
        body: BaseModel | dict[str, Any] | None,
        fn: Callable[[Session], BaseModel | dict[str, Any] | list[Any] | None],
        status_code: int = 200,
        *,
        queued: bool = False,
    ) -> Response:
        """Run ``fn`` in one transaction; store and replay the response per Idempotency-Key.

        ``queued`` (a hot write whose transactions of one tenant serialise in the database,
        e.g. a redemption's posting): at most ``ALLEGIANCE_API_TENANT_WRITERS`` of the
        tenant's queued writes of this process run at once; the others wait here."""
        if not queued:
            return self._write_keyed(body, fn, status_code)
        with _tenant_writer(self.tenant_id):
            return self._write_keyed(body, fn, status_code)

    def _write_keyed(
        self,
        body: BaseModel | dict[str, Any] | None,
        fn: Callable[[Session], BaseModel | dict[str, Any] | list[Any] | None],
        status_code: int,
    ) -> Response:
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            return retrying(lambda: self._write(fn, status_code))
        if not key or len(key) > 255:
            raise ValidationFailed("Idempotency-Key must be 1 to 255 characters",
                                   field="Idempotency-Key")
        fingerprint = _fingerprint(self.request, body)
        token = (self.tenant_id, key)
        with _in_flight_lock:
            if token in _in_flight:
                raise IdempotencyInFlight("a request with this Idempotency-Key is in progress",
                                          field="Idempotency-Key")
            _in_flight.add(token)
        try:
            return retrying(lambda: self._write_once(key, fingerprint, fn, status_code))
        finally:
            with _in_flight_lock:
                _in_flight.discard(token)

    def _write(self, fn: Callable[[Session], BaseModel | dict[str, Any] | list[Any] | None],
               status_code: int) -> Response:
        with self.db.transaction(self.tenant_id) as session:
            self._defer_audit(session)
            result = fn(session)
            payload = _dump(result)
            self._audit(session, payload)
        return _response(status_code, payload)

    def _defer_audit(self, session: Session) -> None:
        """Audit rows wait for the end of the unit of work (see ``audit.write_pending``), and
        so do the writes the feature marks as taking a tenant-wide lock (``kit.placement.last_write``:
        a ledger posting), so those locks are the last the write takes, held only briefly."""
        collect_last_writes(session)
        if getattr(self.request.app.state, "audit_flush", None) is not None:
            session.info[AUDIT_DEFER] = []

    def _audit(self, session: Session, payload: str,
               first: Callable[[], None] | None = None) -> None:
        """Every write leaves at least one audit row: the route's own, or a generic one. Then,
        in one PostgreSQL pipeline (one round trip): ``first`` (a driver-level insert: the
        idempotency record), the feature's last writes (the posting, which locks the tenant's
        journal number), the deferred audit rows chained (which lock the tenant's audit
        sequence). When every last write is final (its refusals raised in the database,
        ``kit.placement.last_write``), COMMIT goes out in the same pipeline and the answers
        are read after it: the tenant-wide locks are held only while the database runs the
        statements and the commit. Otherwise the answers are checked first and COMMIT
        follows (a second round trip)."""
        hook: AuditHook | None = getattr(self.request.app.state, "audit_hook", None)
        if hook is not None and not session.info.get("audit_rows"):
            hook(session, self, payload)
        flush: Callable[[Session], Callable[[], int]] | None = getattr(
            self.request.app.state, "audit_flush", None)
        session.flush()  # the feature's own rows first: the tenant-wide locks come last
        finish_last_writes(session, first=first,
                           more=(lambda: flush(session)) if flush is not None else None)

    def _write_once(
        self,
        key: str,
        fingerprint: str,
        fn: Callable[[Session], BaseModel | dict[str, Any] | list[Any] | None],
        status_code: int,
    ) -> Response:
        now = clock.now()
        retention = timedelta(days=get_settings().idempotency_retention_days)
        replay: Response | None = None
        try:
            with self.db.transaction(self.tenant_id) as session:
                # The stored answer is read in the write's own transaction (a plain read
                # takes no lock).
                # On PostgreSQL it goes out with BEGIN and the tenant setting (one round trip).
                dialect = session.get_bind().dialect
                record = read_with_begin(session, lambda conn: _STORED.read(
                    conn, dialect, self.tenant_id, key))
                if record is not None and record.expires_at > now:
                    replay = _replayed(record, fingerprint)
                else:
                    if record is not None:  # expired: the key may be used again
                        session.execute(delete(_idempotency_table).where(
                            _idempotency_table.c.tenant_id == self.tenant_id,
                            _idempotency_table.c.key == key))
                    self._defer_audit(session)
                    result = fn(session)
                    payload = _dump(result)
                    session.flush()
                    # One INSERT through the driver, no unit of work (on PostgreSQL sent with
                    # the audit chain's statement, one round trip). A concurrent twin of this
                    # request in another process fails on the primary key.
                    self._audit(session, payload, lambda: _insert_record(session, {
                        "tenant_id": self.tenant_id, "key": key, "request_hash": fingerprint,
                        "method": self.request.method, "path": self.request.url.path,
                        "status_code": status_code, "response_body": payload,
                        "created_at": now, "expires_at": now + retention,
                    }))
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            # Another process stored this key first: answer as it did.
            replay = self._replay(key, fingerprint)
            if replay is None:
                raise IdempotencyInFlight("a request with this Idempotency-Key is in progress",
                                          field="Idempotency-Key") from exc
            return replay
        if replay is not None:
            return replay
        return _response(status_code, payload)

    def _replay(self, key: str, fingerprint: str) -> Response | None:
        with self.db.read(self.tenant_id) as session:
            record = _stored(session, self.tenant_id, key)
            if record is None or record.expires_at <= clock.now():
                return None
            return _replayed(record, fingerprint)


_writers: dict[str, threading.Semaphore] = {}


@contextlib.contextmanager
def _tenant_writer(tenant_id: str) -> Iterator[None]:
    """One of the tenant's ``ALLEGIANCE_API_TENANT_WRITERS`` slots of this process for the
    block (no limit when 0; see ``Settings.api_tenant_writers``). Measured with
    ``python -m bench redeem`` on PostgreSQL (docs/benchmarks.md): 2 kept up with 200/s
    where an unlimited number of waiting transactions did not."""
    limit = get_settings().api_tenant_writers
    if limit <= 0:
        yield
        return
    with _in_flight_lock:
        slots = _writers.get(tenant_id)
        if slots is None:
            slots = _writers[tenant_id] = threading.Semaphore(limit)
    with slots:
        yield


_idempotency_table = cast(Table, IdempotencyRecord.__table__)
_insert_record = RowInsert(_idempotency_table)
# ``session.info`` key of the deferred audit rows (``allegiance.audit.service.DEFER``).
AUDIT_DEFER = "audit_defer"


# One SELECT through the driver, built once per dialect (see ``kit.rows``).
_STORED = RowByKey(_idempotency_table, ("request_hash", "status_code", "response_body",
                                        "expires_at"), ("tenant_id", "key"))


def _stored(session: Session, tenant_id: str, key: str) -> Any:
    """The stored answer of an Idempotency-Key, or None."""
    return _STORED(session, tenant_id, key)


def _replayed(record: Any, fingerprint: str) -> Response:
    """The stored answer, or 422 when the key was used with a different request."""
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request",
                                   field="Idempotency-Key")
    response = _response(record.status_code, record.response_body)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _fingerprint(request: Request, body: BaseModel | dict[str, Any] | None) -> str:
    if isinstance(body, BaseModel):
        data: Any = body.model_dump(mode="json")
    else:
        data = body
    canonical = json.dumps(
        {"method": request.method, "path": request.url.path, "body": data},
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _dump(result: BaseModel | dict[str, Any] | list[Any] | None) -> str:
    if result is None:
        return "null"
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    if isinstance(result, list):
        return json.dumps(
            [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result],
            default=str,
        )
    return json.dumps(result, default=str)


def _response(status_code: int, payload: str) -> Response:
    if status_code == 204:
        return Response(status_code=204)
    return Response(content=payload, status_code=status_code, media_type="application/json")


def bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'",
                           field="Authorization")
    return token.strip()


# Installed by the app factory: the scope a route (method, path template) needs, from the
# role × route matrix (``allegiance.api.access``); None for a route the matrix does not list.
ScopePolicy = Callable[[str, str], "str | None"]


def route_scope(request: Request) -> str | None:
    """The scope the matrix asks for the route being served (None: not in the matrix)."""
    policy: ScopePolicy | None = getattr(request.app.state, "scope_policy", None)
    template = route_template(request)
    if policy is None or template is None:
        return None
    return policy(request.method, template)


def route_template(request: Request) -> str | None:
    """The full path template of the route being served (``/v1/units/{unit_id}``): the
    router-relative template of the matched route behind the prefix the request came under
    (path parameters never contain ``/``)."""
    route = request.scope.get("route")
    relative = getattr(route, "path", None)
    if not isinstance(relative, str):
        return None
    path = str(request.scope.get("path", ""))
    root = str(request.scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root):]
    segments = path.strip("/").split("/")
    own = relative.strip("/").split("/") if relative.strip("/") else []
    if len(own) > len(segments):
        return None
    prefix = segments[: len(segments) - len(own)]
    return "/" + "/".join([*prefix, *own]) if prefix or own else "/"


# Documents the bearer scheme on every authenticated operation of the OpenAPI document; the
# header itself is parsed (and refused with our error shape) by :func:`bearer`.
BEARER = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="An API key: `Authorization: Bearer <key>`")


def need(scope: str) -> Callable[..., Awaitable[Ctx]]:
    """A dependency that authenticates the API key and enforces the role × route matrix
    installed by the app (``scope`` is the fallback for a route the matrix does not list).

    It runs on the event loop (no thread hop): a key checked moments ago is taken from the
    app's cache (``app.state.cached_principal``); only a miss reads the database, in a
    worker thread."""

    async def dependency(
        request: Request,
        _documented: HTTPAuthorizationCredentials | None = Depends(BEARER),
    ) -> Ctx:
        db = get_db(request)
        secret = bearer(request)
        cached: Callable[[str], Principal | None] | None = getattr(
            request.app.state, "cached_principal", None)
        principal = cached(secret) if cached is not None else None
        if principal is None:
            authenticate: Authenticator = request.app.state.authenticate
            principal = await run_in_threadpool(authenticate, db, secret)
        required = route_scope(request) or scope
        if not scope_allows(list(principal.scopes), required):
            raise Forbidden(f"this API key lacks the {required!r} scope", field="Authorization")
        limiter = getattr(request.app.state, "limiter", None)
        if limiter is not None:
            limiter.check(principal.key_id)
        return Ctx(request=request, db=db, principal=principal)

    return dependency


JSON = JSONResponse


async def no_nul_parameters(request: Request) -> None:
    """Refuse NUL characters in path and query parameters (PostgreSQL cannot store them)."""
    values = [*request.path_params.values(), *request.query_params.values()]
    if any("\x00" in str(v) for v in values):
        raise ValidationFailed("parameters must not contain NUL characters")
