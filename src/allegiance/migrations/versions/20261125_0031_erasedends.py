"""erasedends: accounts erased before session 9 end their enrolments and leave their segments

Since session 9 a GDPR erasure (``privacy.erase_member``) closes every enrolment of the
account that has not ended (``members.end_enrolments``: applied, invited, active or suspended
→ closed, reason ``erased``) and takes it out of every segment (``campaigns.leave_all_segments``).
Accounts erased earlier kept both. This data migration gives them the same end state, with
the same traces the services leave:

* each such enrolment → ``closed`` (``updated_at`` now), one ``enrolment_change`` row
  (from its status, to closed, reason ``erased``), one ``enrolment.status_changed`` outbox
  message (the service's payload) and one ``enrolment.status_changed`` audit row chained onto
  the tenant's audit chain (``audit.verify`` still holds);
* each of its segment memberships deleted, the segment's cached member count lowered by as
  many (never below 0), one ``segment.left`` outbox message each (ids and the code). As with
  the service, no ``segment_left`` activity: an erased member earns nothing.

The actor of every row is ``migration:0031_erasedends``. It is plain SQL over the tables as
they are at this revision (no service code, which follows later schemas); the triggers of the
tables (the analytics summaries) run as for any update. Running it again finds nothing to do.
Downgrade changes nothing: closed enrolments are not reopened for erased accounts.

Revision ID: 0031_erasedends
Revises: 0029_tiermoves
Create Date: 2026-11-25 01:30:00
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from allegiance.kit import sequences
from allegiance.kit.db import UTCDateTime
from allegiance.kit.ids import new_id

revision: str = '0031_erasedends'
down_revision: str | None = '0029_tiermoves'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR = "migration:0031_erasedends"
REASON = "erased"  # privacy.service.ERASED_REASON
OPEN = ("applied", "invited", "active", "suspended")  # not members.enrolments.ENDED
AUDIT = "audit"  # kit.sequences.AUDIT

_account = sa.table("account", sa.column("tenant_id"), sa.column("id"), sa.column("status"))
_enrolment = sa.table(
    "enrolment", sa.column("tenant_id"), sa.column("id"), sa.column("program_id"),
    sa.column("account_id"), sa.column("status"), sa.column("updated_at", UTCDateTime()))
_change = sa.table(
    "enrolment_change", sa.column("tenant_id"), sa.column("id"), sa.column("enrolment_id"),
    sa.column("from_status"), sa.column("to_status"), sa.column("reason"), sa.column("actor"),
    sa.column("at", UTCDateTime()))
_segment = sa.table("segment", sa.column("tenant_id"), sa.column("id"),
                    sa.column("program_id"), sa.column("code"), sa.column("members"))
_segment_member = sa.table("segment_member", sa.column("tenant_id"), sa.column("segment_id"),
                           sa.column("account_id"))
_outbox = sa.table(
    "outbox_message", sa.column("tenant_id"), sa.column("id"), sa.column("event_type"),
    sa.column("payload", sa.JSON()), sa.column("created_at", UTCDateTime()),
    sa.column("available_at", UTCDateTime()), sa.column("dispatched_at", UTCDateTime()),
    sa.column("attempts"))
_audit = sa.table(
    "audit_log", sa.column("tenant_id"), sa.column("id"), sa.column("seq"), sa.column("actor"),
    sa.column("action"), sa.column("object_type"), sa.column("object_id"),
    sa.column("before", sa.JSON()), sa.column("after", sa.JSON()),
    sa.column("at", UTCDateTime()), sa.column("hash"))
_sequence = sa.table("sequence", sa.column("tenant_id"), sa.column("name"),
                     sa.column("last_value"), sa.column("last_hash"))


def _erased(table: sa.TableClause, column: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(_account.c.tenant_id == table.c.tenant_id,
                             _account.c.id == table.c[column], _account.c.status == "erased")


def _message(tenant_id: str, event_type: str, payload: dict[str, Any],
             now: datetime) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "id": new_id("msg"), "event_type": event_type,
            "payload": payload, "created_at": now, "available_at": now, "dispatched_at": None,
            "attempts": 0}


def _chain_audit(bind: sa.Connection, tenant_id: str, rows: list[dict[str, Any]]) -> None:
    """Number and chain ``rows`` after the tenant's last audit row, as ``audit.record`` does
    (canonical JSON of the row with its ``seq``, linked by ``kit.sequences.chain``)."""
    found = bind.execute(sa.select(_sequence.c.last_value, _sequence.c.last_hash).where(
        _sequence.c.tenant_id == tenant_id, _sequence.c.name == AUDIT)
        .with_for_update()).first()
    if found is None:
        bind.execute(sa.insert(_sequence).values(tenant_id=tenant_id, name=AUDIT, last_value=0,
                                                 last_hash=""))
        last, previous = 0, ""
    else:
        last, previous = int(found[0]), str(found[1])
    for row in rows:
        last += 1
        row["seq"] = last
        content = json.dumps({
            "seq": last, "actor": row["actor"], "action": row["action"],
            "object_type": row["object_type"], "object_id": row["object_id"],
            "before": row["before"], "after": row["after"], "at": row["at"].isoformat(),
        }, sort_keys=True, default=str, separators=(",", ":"))
        previous = row["hash"] = sequences.chain(previous, content)
    bind.execute(sa.insert(_audit), rows)
    bind.execute(sa.update(_sequence).where(
        _sequence.c.tenant_id == tenant_id, _sequence.c.name == AUDIT)
        .values(last_value=last, last_hash=previous))


def _close_enrolments(bind: sa.Connection, now: datetime) -> None:
    open_rows = bind.execute(sa.select(
        _enrolment.c.tenant_id, _enrolment.c.id, _enrolment.c.program_id,
        _enrolment.c.account_id, _enrolment.c.status).where(
        _enrolment.c.status.in_(OPEN), _erased(_enrolment, "account_id"))
        .order_by(_enrolment.c.tenant_id, _enrolment.c.id)).all()
    audits: dict[str, list[dict[str, Any]]] = defaultdict(list)
    changes, messages = [], []
    for tenant_id, enrolment_id, program_id, account_id, status in open_rows:
        bind.execute(sa.update(_enrolment).where(
            _enrolment.c.tenant_id == tenant_id, _enrolment.c.id == enrolment_id)
            .values(status="closed", updated_at=now))
        changes.append({"tenant_id": tenant_id, "id": new_id("enc"),
                        "enrolment_id": enrolment_id, "from_status": status,
                        "to_status": "closed", "reason": REASON, "actor": ACTOR, "at": now})
        messages.append(_message(tenant_id, "enrolment.status_changed", {
            "enrolment_id": enrolment_id, "program_id": program_id, "account_id": account_id,
            "from_status": status, "status": "closed", "reason": REASON}, now))
        audits[tenant_id].append({
            "tenant_id": tenant_id, "id": new_id("aud"), "actor": ACTOR,
            "action": "enrolment.status_changed", "object_type": "enrolment",
            "object_id": enrolment_id, "before": {"status": status},
            "after": {"status": "closed", "reason": REASON}, "at": now})
    if changes:
        bind.execute(sa.insert(_change), changes)
        bind.execute(sa.insert(_outbox), messages)
    for tenant_id in sorted(audits):
        _chain_audit(bind, tenant_id, audits[tenant_id])


def _leave_segments(bind: sa.Connection, now: datetime) -> None:
    held = bind.execute(sa.select(
        _segment_member.c.tenant_id, _segment_member.c.segment_id,
        _segment_member.c.account_id, _segment.c.program_id, _segment.c.code).join(
        _segment, sa.and_(_segment.c.tenant_id == _segment_member.c.tenant_id,
                          _segment.c.id == _segment_member.c.segment_id)).where(
        _erased(_segment_member, "account_id"))
        .order_by(_segment_member.c.tenant_id, _segment_member.c.segment_id,
                  _segment_member.c.account_id)).all()
    left: dict[tuple[str, str], int] = defaultdict(int)
    messages = []
    for tenant_id, segment_id, account_id, program_id, code in held:
        bind.execute(sa.delete(_segment_member).where(
            _segment_member.c.tenant_id == tenant_id,
            _segment_member.c.segment_id == segment_id,
            _segment_member.c.account_id == account_id))
        left[(tenant_id, segment_id)] += 1
        messages.append(_message(tenant_id, "segment.left", {
            "program_id": program_id, "segment": code, "account_id": account_id}, now))
    for (tenant_id, segment_id), count in sorted(left.items()):
        members = sa.case((_segment.c.members > count, _segment.c.members - count), else_=0)
        bind.execute(sa.update(_segment).where(
            _segment.c.tenant_id == tenant_id, _segment.c.id == segment_id)
            .values(members=members))
    if messages:
        bind.execute(sa.insert(_outbox), messages)


def upgrade() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    _close_enrolments(bind, now)
    _leave_segments(bind, now)


def downgrade() -> None:
    pass  # the erased accounts' enrolments stay closed and out of their segments
