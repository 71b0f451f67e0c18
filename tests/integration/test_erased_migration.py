"""Migration ``0031_erasedends`` (SQLite and PostgreSQL): accounts erased before erasure closed
enrolments and left segments get that end state — every enrolment not yet ended closed with
a history row, an audit row (the chain still verifies) and an ``enrolment.status_changed``
message, every segment membership gone with the count lowered and a ``segment.left``
message — while an account that was not erased, and an erased account's rejected enrolment,
stay as they were; running it again changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from allegiance import audit, campaigns, members, tenants
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.migrate import alembic_config, grant_app_role, upgrade
from allegiance.kit.models import OutboxMessage
from tests.conftest import build_world
from tests.support import databases

REVISION = "0031_erasedends"
NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)


def _migrate_again(db: Database) -> None:
    """Down to the revision before 0031 (the schema an old deployment has), then head."""
    db.dispose()
    owner = db.url if db.url.startswith("sqlite") else databases.admin_url_of(db.url)
    config = alembic_config(owner)
    before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
    assert isinstance(before, str)
    command.downgrade(config, before)


def _upgrade(db: Database) -> None:
    owner = db.url if db.url.startswith("sqlite") else databases.admin_url_of(db.url)
    upgrade(owner)
    if not db.url.startswith("sqlite"):
        grant_app_role(owner)


def _statuses(db: Database, tenant_id: str) -> dict[str, str]:
    with db.read() as s:
        return {e.id: e.status for e in s.scalars(select(members.Enrolment).where(
            members.Enrolment.tenant_id == tenant_id))}


def _changes(db: Database, tenant_id: str, enrolment_id: str) -> list[tuple[object, ...]]:
    with db.read() as s:
        return [(c.from_status, c.to_status, c.reason, c.actor)
                for c in members.enrolment_history(s, tenant_id, enrolment_id)]


def _messages(db: Database, tenant_id: str, event_type: str) -> list[dict[str, object]]:
    with db.read() as s:
        return [m.payload for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant_id, OutboxMessage.event_type == event_type))]


def test_the_migration_ends_what_old_erasures_left_open(db: Database) -> None:
    with clock.frozen(NOW):
        w = build_world(db)
        with db.transaction() as s:
            second = tenants.create_program(s, w.tenant_id, code="second", name="Second",
                                            base_currency="USD").id
            erased, rejected_one, kept = (
                members.create_account(s, w.tenant_id, name=n).id
                for n in ("Erased long ago", "Erased, rejected", "Kept"))
            enrolments = {
                (acc, prog): members.ensure_enrolled(s, w.tenant_id, prog, acc, "test").id
                for acc, prog in ((erased, w.program_id), (erased, second),
                                  (rejected_one, w.program_id), (kept, w.program_id))}
            segment = campaigns.create_segment(s, w.tenant_id, w.program_id, code="everyone",
                                               name="Everyone", condition="true").id
            other = campaigns.create_segment(s, w.tenant_id, second, code="second-all",
                                             name="All", condition="true").id
        with db.read() as s:
            audit_rows = audit.verify(s, w.tenant_id).rows
        history_before = {k: _changes(db, w.tenant_id, v) for k, v in enrolments.items()}

    _migrate_again(db)
    # what an erasure before session 9 left behind, planted as rows: the account erased, its
    # enrolments still open (one active, one suspended; a rejected one of another erased
    # account), both accounts in segments with the counts that say so
    with db.transaction() as s:
        s.execute(text("UPDATE account SET status = 'erased' WHERE tenant_id = :t "
                       "AND id IN (:a, :b)"), {"t": w.tenant_id, "a": erased, "b": rejected_one})
        s.execute(text("UPDATE enrolment SET status = 'suspended' WHERE tenant_id = :t "
                       "AND id = :e"), {"t": w.tenant_id, "e": enrolments[(erased, second)]})
        s.execute(text("UPDATE enrolment SET status = 'rejected' WHERE tenant_id = :t "
                       "AND id = :e"),
                  {"t": w.tenant_id, "e": enrolments[(rejected_one, w.program_id)]})
        for seg, acc in ((segment, erased), (segment, kept), (other, erased)):
            s.execute(text("INSERT INTO segment_member (tenant_id, segment_id, account_id, since)"
                           " VALUES (:t, :g, :a, :since)"),
                      {"t": w.tenant_id, "g": seg, "a": acc,
                       "since": NOW.replace(tzinfo=None) if db.url.startswith("sqlite")
                       else NOW})
        s.execute(text("UPDATE segment SET members = 2 WHERE tenant_id = :t AND id = :g"),
                  {"t": w.tenant_id, "g": segment})
        s.execute(text("UPDATE segment SET members = 1 WHERE tenant_id = :t AND id = :g"),
                  {"t": w.tenant_id, "g": other})
    _upgrade(db)

    statuses = _statuses(db, w.tenant_id)
    assert statuses[enrolments[(erased, w.program_id)]] == "closed"
    assert statuses[enrolments[(erased, second)]] == "closed"
    # positive controls: an ended enrolment stays ended, an account not erased is untouched
    assert statuses[enrolments[(rejected_one, w.program_id)]] == "rejected"
    assert statuses[enrolments[(kept, w.program_id)]] == "active"
    for key, from_status in (((erased, w.program_id), "active"), ((erased, second), "suspended")):
        assert _changes(db, w.tenant_id, enrolments[key]) == [
            *history_before[key],
            (from_status, "closed", "erased", "migration:0031_erasedends")]
    for key in ((rejected_one, w.program_id), (kept, w.program_id)):
        assert _changes(db, w.tenant_id, enrolments[key]) == history_before[key]
    closed = _messages(db, w.tenant_id, "enrolment.status_changed")
    assert sorted((m["enrolment_id"], m["from_status"], m["status"], m["reason"],
                   m["account_id"]) for m in closed) == sorted([
        (enrolments[(erased, w.program_id)], "active", "closed", "erased", erased),
        (enrolments[(erased, second)], "suspended", "closed", "erased", erased)])
    with db.read() as s:
        check = audit.verify(s, w.tenant_id)
        assert check.first_bad_seq is None
        assert check.rows == audit_rows + 2
        trail = {r.object_id: (r.action, r.before, r.after, r.actor)
                 for r in audit.history(s, w.tenant_id, object_type="enrolment")
                 if r.actor == "migration:0031_erasedends"}
    assert trail == {enrolments[(erased, w.program_id)]: (
        "enrolment.status_changed", {"status": "active"},
        {"status": "closed", "reason": "erased"}, "migration:0031_erasedends"),
        enrolments[(erased, second)]: (
        "enrolment.status_changed", {"status": "suspended"},
        {"status": "closed", "reason": "erased"}, "migration:0031_erasedends")}

    with db.read() as s:
        held = {g: ({m.account_id for m in campaigns.members_of(s, w.tenant_id, g)},
                    campaigns.get_segment(s, w.tenant_id, g).members)
                for g in (segment, other)}
    assert held == {segment: ({kept}, 1), other: (set(), 0)}
    assert sorted((m["segment"], m["account_id"])
                  for m in _messages(db, w.tenant_id, "segment.left")) == [
        ("everyone", erased), ("second-all", erased)]

    # a second run (down and up again) finds nothing left to do
    with db.read() as s:
        counts = [s.scalar(select(func.count()).select_from(t)) for t in (
            members.EnrolmentChange, OutboxMessage)]
    _migrate_again(db)
    _upgrade(db)
    with db.read() as s:
        assert [s.scalar(select(func.count()).select_from(t)) for t in (
            members.EnrolmentChange, OutboxMessage)] == counts
        assert audit.verify(s, w.tenant_id).rows == audit_rows + 2
