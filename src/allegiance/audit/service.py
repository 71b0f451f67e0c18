"""Append-only, hash-chained audit log of every change: who, what, when, before, after."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from allegiance.audit.models import AuditRecord
from allegiance.kit import clock, sequences
from allegiance.kit.ids import new_id
from allegiance.kit.rows import DriverStatement, RowInsert

AUDIT_SEQUENCE = sequences.AUDIT

# Personal values never enter the append-only log (GDPR erasure could not remove them): for
# these objects the named fields are recorded as "[personal data]" (or null when empty).
PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    "account": frozenset({"name", "email", "tax_id", "attributes", "external_ids"}),
    "user": frozenset({"name", "email", "external_id"}),
    "invitation": frozenset({"email"}),
    "enrolment": frozenset({"application"}),
    "redemption": frozenset({"shipping"}),
}
PERSONAL = "[personal data]"


def redact(object_type: str, data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``data`` with the personal fields of ``object_type`` replaced by a marker."""
    fields = PERSONAL_FIELDS.get(object_type)
    if data is None or not fields:
        return data
    return {k: (PERSONAL if k in fields and v not in (None, "", {}, []) else v)
            for k, v in data.items()}


def _content(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))


# ``session.info`` key of the audit rows a unit of work keeps until its end (set by
# ``kit.web.Ctx.write``): they are chained and written together by :func:`write_pending`, so
# the tenant's audit-chain lock is taken last and held only for the commit.
DEFER = "audit_defer"
_audit_table = cast(Table, AuditRecord.__table__)
_insert_rows = RowInsert(_audit_table)


def record(
    session: Session,
    tenant_id: str,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one audit row in the caller's transaction (personal fields redacted). In a unit
    of work that defers its audit rows (and outside a savepoint, whose rollback must take the
    row with it) the row gets its number and hash at the end, from :func:`write_pending`."""
    before, after = redact(object_type, before), redact(object_type, after)
    at = clock.now()
    session.info["audit_rows"] = int(session.info.get("audit_rows", 0)) + 1
    pending: list[AuditRecord] | None = session.info.get(DEFER)
    row = AuditRecord(
        tenant_id=tenant_id, id=new_id("aud"), actor=actor, action=action,
        object_type=object_type, object_id=object_id, before=before, after=after, at=at)
    if pending is not None and not session.in_nested_transaction():
        pending.append(row)
        return row
    _chain(session, tenant_id, [row])()
    return row


def write_pending(session: Session) -> int:
    """Number, chain and insert the deferred audit rows of the unit of work (one sequence
    update, one multi-row insert, one hash update per tenant); returns how many."""
    return send_pending(session)()


def send_pending(session: Session) -> Callable[[], int]:
    """:func:`write_pending` in two steps: this sends the rows; the function returned reads
    the answers (each row's number and hash) and returns how many. On PostgreSQL the usual
    single row is one statement that is not waited for: in a pipeline (``kit.db.pipelined``)
    it travels with the next statement read, or with the unit of work's COMMIT."""
    pending: list[AuditRecord] | None = session.info.pop(DEFER, None)
    if not pending:
        return lambda: 0
    by_tenant: dict[str, list[AuditRecord]] = {}
    for row in pending:
        by_tenant.setdefault(row.tenant_id, []).append(row)
    answers = [_chain(session, tenant_id, by_tenant[tenant_id]) for tenant_id in sorted(by_tenant)]
    count = len(pending)

    def written() -> int:
        for answer in answers:
            answer()
        return count

    return written


# One statement on PostgreSQL for the usual single row: the sequence's number and hash move
# on in the upsert (created at its first use; the hash computed by the database, over exactly
# the text ``verify`` hashes: the row's canonical JSON ends with its "seq" key) and the row
# is inserted from it. It always answers one row, so nothing waits for its answer.
_PG_ONE = DriverStatement(lambda d: """
WITH s AS (
  INSERT INTO sequence AS q (tenant_id, name, last_value, last_hash)
  VALUES (%s, %s, 1, encode(sha256(convert_to(chr(10) || %s || '1}', 'UTF8')), 'hex'))
  ON CONFLICT (tenant_id, name) DO UPDATE SET last_value = q.last_value + 1,
    last_hash = encode(sha256(convert_to(
      q.last_hash || chr(10) || %s || (q.last_value + 1)::text || '}', 'UTF8')),
      'hex')
  RETURNING last_value, last_hash)
INSERT INTO audit_log (tenant_id, id, seq, actor, action, object_type, object_id, "before",
                       "after", at, hash)
SELECT %s, %s, s.last_value, %s, %s, %s, %s, %s::json, %s::json, %s, s.last_hash FROM s
RETURNING seq, hash
""")


def _send_one_postgres(session: Session, tenant_id: str,
                       row: AuditRecord) -> Callable[[], None] | None:
    """The single-row chain step in one statement, sent; None when the row's text does not
    end as the statement assumes (the general path chains it)."""
    content = _content({
        "seq": 0, "actor": row.actor, "action": row.action, "object_type": row.object_type,
        "object_id": row.object_id, "before": row.before, "after": row.after,
        "at": row.at.isoformat(),
    })
    if not content.endswith(',"seq":0}'):
        return None
    answer = _PG_ONE.send(session, (
        tenant_id, AUDIT_SEQUENCE, content[:-2], content[:-2], tenant_id, row.id, row.actor, row.action,
        row.object_type, row.object_id, json.dumps(row.before), json.dumps(row.after), row.at))

    def numbered() -> None:
        found = answer()
        assert found is not None  # the upsert always yields the sequence's row
        row.seq, row.hash = int(found[0]), str(found[1])

    return numbered


def _chain(session: Session, tenant_id: str, rows: list[AuditRecord]) -> Callable[[], None]:
    """Chain ``rows``; the function returned reads the answer of a single row sent to
    PostgreSQL unread (a no-op otherwise)."""
    if len(rows) == 1 and session.get_bind().dialect.name == "postgresql":
        sent = _send_one_postgres(session, tenant_id, rows[0])
        if sent is not None:
            return sent
    seq, previous_hash = sequences.reserve(session, tenant_id, AUDIT_SEQUENCE, len(rows))
    values = []
    for row in rows:
        row.seq = seq
        fields = {
            "seq": seq, "actor": row.actor, "action": row.action,
            "object_type": row.object_type, "object_id": row.object_id, "before": row.before,
            "after": row.after, "at": row.at.isoformat(),
        }
        previous_hash = row.hash = sequences.chain(previous_hash, _content(fields))
        values.append({
            "tenant_id": tenant_id, "id": row.id, "seq": seq, "actor": row.actor,
            "action": row.action, "object_type": row.object_type, "object_id": row.object_id,
            "before": row.before, "after": row.after, "at": row.at, "hash": row.hash})
        seq += 1
    sequences.set_last_hash(session, tenant_id, AUDIT_SEQUENCE, previous_hash)
    _insert_rows(session, values)
    return lambda: None


def history(
    session: Session, tenant_id: str, object_type: str | None = None, object_id: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    stmt = select(AuditRecord).where(AuditRecord.tenant_id == tenant_id)
    if object_type:
        stmt = stmt.where(AuditRecord.object_type == object_type)
    if object_id:
        stmt = stmt.where(AuditRecord.object_id == object_id)
    return list(session.scalars(stmt.order_by(AuditRecord.seq.desc()).limit(limit)))


def page(session: Session, tenant_id: str, *, object_type: str | None = None,
         object_id: str | None = None, actor: str | None = None, action: str | None = None,
         before_seq: int | None = None, limit: int = 50) -> list[AuditRecord]:
    """Up to ``limit`` rows newest first, below ``before_seq`` when given, filtered by the
    values that are set (the API's list and the admin page)."""
    stmt = select(AuditRecord).where(AuditRecord.tenant_id == tenant_id)
    for column, value in ((AuditRecord.object_type, object_type),
                          (AuditRecord.object_id, object_id), (AuditRecord.actor, actor),
                          (AuditRecord.action, action)):
        if value:
            stmt = stmt.where(column == value)
    if before_seq is not None:
        stmt = stmt.where(AuditRecord.seq < before_seq)
    return list(session.scalars(stmt.order_by(AuditRecord.seq.desc()).limit(limit)))


@dataclass(frozen=True)
class ChainCheck:
    rows: int
    first_bad_seq: int | None


def verify(session: Session, tenant_id: str) -> ChainCheck:
    """Recompute the hash chain; ``first_bad_seq`` is the first row that does not match."""
    previous = ""
    count = 0
    expected_seq = 1
    for row in session.scalars(
        select(AuditRecord).where(AuditRecord.tenant_id == tenant_id).order_by(AuditRecord.seq)
    ):
        count += 1
        fields = {
            "seq": row.seq, "actor": row.actor, "action": row.action,
            "object_type": row.object_type, "object_id": row.object_id, "before": row.before,
            "after": row.after, "at": row.at.isoformat(),
        }
        previous = sequences.chain(previous, _content(fields))
        if row.seq != expected_seq or previous != row.hash:
            return ChainCheck(count, row.seq)
        expected_seq += 1
    return ChainCheck(count, None)


def record_request(session: Session, tenant_id: str, *, actor: str, method: str, route: str,
                   path_params: dict[str, str], response: Any) -> AuditRecord:
    """The generic audit row of an API write whose route recorded none itself: the route, its
    path parameters and the id and status of what it returned (never the body: it may hold
    secrets or personal data)."""
    params = [name for name in path_params]
    object_type = params[-1].removesuffix("_id") if params else (
        route.strip("/").split("/")[1].rstrip("s").replace("-", "_") if "/" in route.strip("/")
        else "request")
    summary: dict[str, Any] = {"route": f"{method} {route}", "path": dict(path_params)}
    object_id = path_params[params[-1]] if params else "-"
    if isinstance(response, dict):
        for key in ("id", "status", "entry_id"):
            if isinstance(response.get(key), (str, int)):
                summary[key] = response[key]
        if not params and isinstance(response.get("id"), str):
            object_id = response["id"]
    return record(session, tenant_id, actor=actor, action=f"{method} {route}"[:80],
                  object_type=object_type[:40], object_id=str(object_id)[:200], after=summary)
