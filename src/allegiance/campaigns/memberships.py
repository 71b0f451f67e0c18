"""Segment memberships written in bulk: the difference between a segment's members and
those stored, and its writes (deletes, then inserts in key order through ``kit.frames``) —
handed to a second thread by the segments job (``kit.writer``), so they touch the
connection only, never the session's objects. Also one account's segment codes and which
accounts were erased (an erased account is in no segment: ``segments.leave_all_segments``)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import polars as pl
from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from allegiance import members, rules
from allegiance.campaigns.models import Segment, SegmentMember
from allegiance.kit.frames import insert_frame, read_frame
from allegiance.kit.writer import Writer

SEGMENT_MEMBER: Table = SegmentMember.__table__  # type: ignore[assignment]
ERASED = "erased"  # an account's status after a GDPR erasure: in no segment, ever


# Accounts entering or leaving a segment: a sorted Polars series from a set-based refresh
# (a million of them need no Python string each), a list from one account's re-evaluation.
Accounts = list[str] | pl.Series


def as_list(accounts: Accounts) -> list[str]:
    return accounts if isinstance(accounts, list) else accounts.to_list()


def changes_of(frame: pl.DataFrame, node: rules.Node,
               before: pl.DataFrame) -> tuple[int, pl.Series, pl.Series]:
    """(members, entered, left) of the segment of ``node`` among ``frame`` against the
    members stored ``before`` (Polars only; entered and left sorted)."""
    inside = frame.filter(rules.to_polars(node)).select("account_id") if frame.height \
        else pl.DataFrame(schema={"account_id": pl.Utf8})
    entered = inside.join(before, on="account_id", how="anti")["account_id"].sort()
    if not entered.len() and inside.height == before.height:  # inside ⊆ before: the same
        return inside.height, entered, entered
    left = before.join(inside, on="account_id", how="anti")["account_id"].sort()
    return inside.height, entered, left


def write(connection: Connection, tenant_id: str, segment_id: str, entered: Accounts,
          left: Accounts, now: datetime) -> None:
    """Delete the memberships ``left``, insert ``entered`` (on the connection only: this may
    run on the writer's thread, see ``segments.refresh_program``)."""
    for start in range(0, len(left), 500):
        connection.execute(delete(SEGMENT_MEMBER).where(
            SEGMENT_MEMBER.c.tenant_id == tenant_id, SEGMENT_MEMBER.c.segment_id == segment_id,
            SEGMENT_MEMBER.c.account_id.in_(as_list(left[start:start + 500]))))
    _insert_members(connection, tenant_id, segment_id, entered, now)


def _insert_members(connection: Connection, tenant_id: str, segment_id: str,
                    accounts: Accounts, since: datetime) -> None:
    """Store new members (in key order) without a statement per row (kit.frames)."""
    at = since.astimezone(UTC)
    stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f") \
        if connection.dialect.name == "sqlite" else at.isoformat()  # the engine's form
    insert_frame(connection, "segment_member", pl.DataFrame(
        {"account_id": pl.Series(accounts, dtype=pl.Utf8)}).select(
        pl.lit(tenant_id).alias("tenant_id"), pl.lit(segment_id).alias("segment_id"),
        pl.col("account_id").cast(pl.Utf8), pl.lit(stamp).alias("since")),
        ("text", "text", "text", "timestamptz"), in_order=False)  # found by key only


def stored_members(session: Session, tenant_id: str,
                   segment_ids: list[str]) -> dict[str, pl.DataFrame]:
    """Per segment, the accounts of its stored memberships (a range of the key each: one read
    of the pairs would carry the segment id along: ≈ 30 more bytes a row to build and parse)."""
    return {segment_id: read_frame(
        session, "SELECT account_id FROM segment_member WHERE tenant_id = :t "
                 "AND segment_id = :s", {"t": tenant_id, "s": segment_id},
        {"account_id": pl.Utf8}) for segment_id in segment_ids}


def hand_over(writer: Writer, connection: Connection, tenant_id: str, frame: pl.DataFrame,
              nodes: list[tuple[Segment, rules.Node]], stored: dict[str, pl.DataFrame],
              now: datetime,
              changes: list[tuple[Segment, int, Accounts, Accounts]]) -> None:
    """Each segment's changes computed here and their writes handed to ``writer``."""
    for segment, node in nodes:
        members, entered, left = changes_of(frame, node, stored[segment.id])
        changes.append((segment, members, entered, left))
        # the id read here: the writer's thread must not touch the session's objects
        writer.submit(functools.partial(write, connection, tenant_id, segment.id, entered,
                                        left, now))


def segment_codes(session: Session, tenant_id: str, program_id: str,
                  account_id: str) -> list[str]:
    """The codes of the program's segments the account is in (``member.segments``)."""
    return list(session.scalars(select(Segment.code).join(SegmentMember, (
        SegmentMember.tenant_id == Segment.tenant_id) & (SegmentMember.segment_id == Segment.id)
    ).where(Segment.tenant_id == tenant_id, Segment.program_id == program_id,
            SegmentMember.account_id == account_id).order_by(Segment.code)))


def erased_among(session: Session, tenant_id: str, accounts: list[str]) -> set[str]:
    """Those of ``accounts`` that were erased (memberships an older release left behind)."""
    found: set[str] = set()
    for start in range(0, len(accounts), 500):
        found.update(session.scalars(select(members.Account.id).where(
            members.Account.tenant_id == tenant_id, members.Account.status == ERASED,
            members.Account.id.in_(accounts[start:start + 500]))))
    return found
