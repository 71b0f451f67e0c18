"""Member events: invitations, registration within a capacity that is never exceeded (the
event row is locked while seats are counted), attendance check-in with points through the
ledger (and counted as the activity ``event_attended`` by challenges and leaderboards), and
sponsors with their contributions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance import ledger, members, tenants
from allegiance.engagement import domain, service
from allegiance.engagement.errors import (
    DuplicateCode,
    EventFull,
    InvalidMemberEvent,
    InvalidTransition,
    MemberEventNotFound,
    NotInvited,
)
from allegiance.engagement.models import Attendee, MemberEvent, Sponsor
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.ids import new_id

ATTENDED = "event_attended"  # the activity type challenges see on check-in
TAKING_SEATS = ("registered", "attended")


def create_event(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                 starts_at: datetime, ends_at: datetime, capacity: int | None = None,
                 invitation_only: bool = False, attendance_unit_id: str | None = None,
                 attendance_points: int = 0) -> MemberEvent:
    tenants.get_program(session, tenant_id, program_id)
    if starts_at >= ends_at:
        raise InvalidMemberEvent("starts_at must be before ends_at", field="ends_at")
    if capacity is not None and capacity < 0:
        raise InvalidMemberEvent("capacity must be >= 0", field="capacity")
    if attendance_points < 0:
        raise InvalidMemberEvent("attendance_points must be >= 0", field="attendance_points")
    if attendance_points and attendance_unit_id is None:
        raise InvalidMemberEvent("points name their unit", field="attendance_unit_id")
    if attendance_unit_id is not None and tenants.get_unit(
            session, tenant_id, attendance_unit_id).program_id != program_id:
        raise InvalidMemberEvent("the unit belongs to another program",
                                 field="attendance_unit_id")
    row = MemberEvent(tenant_id=tenant_id, id=new_id("mev"), program_id=program_id, code=code,
                      name=name, starts_at=starts_at, ends_at=ends_at, capacity=capacity,
                      invitation_only=invitation_only, attendance_unit_id=attendance_unit_id,
                      attendance_points=attendance_points, status="open",
                      created_at=clock.now())
    add_unique(session, row, DuplicateCode(f"member event {code} exists in this program", field="code"))
    return row


def get_event(session: Session, tenant_id: str, member_event_id: str, *,
              lock: bool = False) -> MemberEvent:
    row = session.get(MemberEvent, (tenant_id, member_event_id), with_for_update=lock)
    if row is None:
        raise MemberEventNotFound(f"member event {member_event_id} not found",
                                  field="member_event_id")
    return row


def list_events(session: Session, tenant_id: str, program_id: str) -> list[MemberEvent]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(MemberEvent).where(
        MemberEvent.tenant_id == tenant_id, MemberEvent.program_id == program_id
    ).order_by(MemberEvent.starts_at, MemberEvent.code)))


def set_status(session: Session, tenant_id: str, member_event_id: str,
               status: str) -> MemberEvent:
    row = get_event(session, tenant_id, member_event_id, lock=True)
    if status not in ("open", "closed", "cancelled"):
        raise InvalidMemberEvent("status must be open, closed or cancelled", field="status")
    if row.status == "cancelled":
        raise InvalidTransition("the event is cancelled", field="member_event_id")
    row.status = status
    session.flush()
    return row


def _attendee(session: Session, tenant_id: str, event_id: str,
              account_id: str) -> Attendee | None:
    return session.get(Attendee, (tenant_id, event_id, account_id), with_for_update=True)


@dataclass(frozen=True)
class NotInvitedAccount:
    """An account of an invitation list that was left out, and why (an error code:
    ``account_erased``)."""

    account_id: str
    reason: str


@dataclass(frozen=True)
class InviteOutcome:
    invited: int  # new invitations
    not_invited: tuple[NotInvitedAccount, ...]  # by account id


def invite(session: Session, tenant_id: str, member_event_id: str,
           account_ids: Sequence[str]) -> InviteOutcome:
    """Invite accounts (already invited or registered ones are left as they are). Erased
    accounts are left out — nothing written for them — and listed with the reason, so one
    erased partner does not refuse a list of hundreds; an unknown account still refuses the
    whole list (404 ``account_not_found`` with the id: a mistyped id is the caller's to
    fix, and nothing is written)."""
    event = get_event(session, tenant_id, member_event_id, lock=True)
    now = clock.now()
    added = 0
    left_out: list[NotInvitedAccount] = []
    for account_id in sorted(set(account_ids)):
        try:
            members.refuse_erased(members.get_account(session, tenant_id, account_id),
                                  "account_ids")
        except members.AccountErased as erased:
            left_out.append(NotInvitedAccount(account_id, erased.code))
            continue
        row = _attendee(session, tenant_id, event.id, account_id)
        if row is None:
            session.add(Attendee(tenant_id=tenant_id, member_event_id=event.id,
                                 account_id=account_id, status="invited", invited=True,
                                 invited_at=now, registered_at=None, checked_in_at=None,
                                 entry_id=None))
            added += 1
            outbox.emit(session, tenant_id, "member_event.invited", {
                "program_id": event.program_id, "member_event": event.code,
                "account_id": account_id})
        elif not row.invited:
            row.invited, row.invited_at = True, now
    session.flush()
    return InviteOutcome(added, tuple(left_out))


def seats_taken(session: Session, tenant_id: str, member_event_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(Attendee).where(
        Attendee.tenant_id == tenant_id, Attendee.member_event_id == member_event_id,
        Attendee.status.in_(TAKING_SEATS))) or 0)


def register(session: Session, tenant_id: str, member_event_id: str,
             account_id: str) -> Attendee:
    """Take a seat. Registering twice returns the registration; a full event or one by
    invitation that did not invite the account refuses."""
    event = get_event(session, tenant_id, member_event_id, lock=True)
    if event.status != "open":
        raise InvalidTransition(f"the event is {event.status}", field="member_event_id")
    members.refuse_erased(members.get_account(session, tenant_id, account_id), "account_id")
    row = _attendee(session, tenant_id, event.id, account_id)
    if row is not None and row.status in TAKING_SEATS:
        return row
    if event.invitation_only and (row is None or not row.invited):
        raise NotInvited("this event is by invitation", field="account_id")
    if event.capacity is not None and \
            seats_taken(session, tenant_id, event.id) >= event.capacity:
        raise EventFull("the event is full", field="member_event_id")
    now = clock.now()
    if row is None:
        row = Attendee(tenant_id=tenant_id, member_event_id=event.id, account_id=account_id,
                       status="registered", invited=False, invited_at=None,
                       registered_at=now, checked_in_at=None, entry_id=None)
        session.add(row)
    else:
        row.status, row.registered_at = "registered", now
    session.flush()
    outbox.emit(session, tenant_id, "member_event.registered", {
        "program_id": event.program_id, "member_event": event.code, "account_id": account_id})
    return row


def cancel_registration(session: Session, tenant_id: str, member_event_id: str,
                        account_id: str) -> Attendee:
    event = get_event(session, tenant_id, member_event_id, lock=True)
    row = _attendee(session, tenant_id, event.id, account_id)
    if row is None or row.status != "registered":
        raise InvalidTransition("the account is not registered", field="account_id")
    row.status = "cancelled"
    session.flush()
    return row


def check_in(session: Session, tenant_id: str, member_event_id: str, account_id: str, *,
             actor: str) -> Attendee:
    """Record attendance (once): pays the attendance points and counts as the activity
    ``event_attended`` for challenges and leaderboards."""
    event = get_event(session, tenant_id, member_event_id, lock=True)
    if event.status == "cancelled":
        raise InvalidTransition("the event is cancelled", field="member_event_id")
    row = _attendee(session, tenant_id, event.id, account_id)
    if row is not None and row.status == "attended":
        return row
    if row is None or row.status != "registered":
        raise InvalidTransition("only a registered account checks in", field="account_id")
    # registered before its erasure: an erased member attends for nothing
    members.refuse_erased(members.get_account(session, tenant_id, account_id), "account_id")
    now = clock.now()
    row.status, row.checked_in_at = "attended", now
    program = tenants.get_program(session, tenant_id, event.program_id)
    points = 0
    if event.attendance_points and event.attendance_unit_id:
        unit_id = event.attendance_unit_id
        issued = ledger.program_account(session, tenant_id, program.id, unit_id, "issued")
        wallet = ledger.wallet(session, tenant_id, program.id, unit_id, "account", account_id)
        entry = ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=program.id, kind="earn", source_type="member_event",
            source_id=event.id, entry_key=f"attendance:{event.id}:{account_id}", actor=actor,
            memo=f"attended {event.code}",
            lines=(ledger.Line(issued.id, unit_id, ledger.Side.DEBIT, event.attendance_points),
                   ledger.Line(wallet.id, unit_id, ledger.Side.CREDIT,
                               event.attendance_points))))
        row.entry_id = entry.entry_id
        if tenants.get_unit(session, tenant_id, unit_id).kind == "points":
            points = event.attendance_points
    session.flush()
    members.ensure_enrolled(session, tenant_id, program.id, account_id, actor)
    service.on_event(session, tenant_id, program, domain.Occurrence(
        event_id="", program_id=program.id, account_id=account_id, kind="activity",
        activity_type=ATTENDED, occurred_at=now, amount=0, quantity=0, points=points),
        actor=actor)
    outbox.emit(session, tenant_id, "member_event.attended", {
        "program_id": program.id, "member_event": event.code, "account_id": account_id,
        "points": event.attendance_points})
    return row


def attendees(session: Session, tenant_id: str, member_event_id: str) -> list[Attendee]:
    get_event(session, tenant_id, member_event_id)
    return list(session.scalars(select(Attendee).where(
        Attendee.tenant_id == tenant_id, Attendee.member_event_id == member_event_id
    ).order_by(Attendee.account_id)))


def add_sponsor(session: Session, tenant_id: str, member_event_id: str, *, name: str,
                contribution: int, currency: str | None = None, account_id: str | None = None,
                note: str = "") -> Sponsor:
    event = get_event(session, tenant_id, member_event_id)
    if contribution < 0:
        raise InvalidMemberEvent("contribution must be >= 0", field="contribution")
    if account_id is not None:
        members.get_account(session, tenant_id, account_id)
    program = tenants.get_program(session, tenant_id, event.program_id)
    row = Sponsor(tenant_id=tenant_id, id=new_id("spn"), member_event_id=event.id, name=name,
                  account_id=account_id, contribution=contribution,
                  currency=(currency or program.base_currency).upper(), note=note,
                  created_at=clock.now())
    session.add(row)
    session.flush()
    return row


def sponsors(session: Session, tenant_id: str, member_event_id: str) -> list[Sponsor]:
    return list(session.scalars(select(Sponsor).where(
        Sponsor.tenant_id == tenant_id, Sponsor.member_event_id == member_event_id
    ).order_by(Sponsor.created_at, Sponsor.id)))


@dataclass(frozen=True)
class Summary:
    event: MemberEvent
    invited: int
    registered: int
    attended: int
    seats_left: int | None
    sponsors: list[Sponsor]


def summary(session: Session, tenant_id: str, member_event_id: str) -> Summary:
    event = get_event(session, tenant_id, member_event_id)
    rows = attendees(session, tenant_id, member_event_id)
    taken = sum(1 for r in rows if r.status in TAKING_SEATS)
    return Summary(event, sum(1 for r in rows if r.invited),
                   sum(1 for r in rows if r.status == "registered"),
                   sum(1 for r in rows if r.status == "attended"),
                   None if event.capacity is None else max(event.capacity - taken, 0),
                   sponsors(session, tenant_id, member_event_id))
