"""Super tickets (Verizon Up): a release of a limited catalogue reward — event tickets with a
small stock — between ``opens_at`` and ``closes_at``, one entry per account.

* ``first_come``: an entry redeems the reward at once through the catalogue (stock that never
  oversells, eligibility, per-member limits, the points through the ledger); when the stock is
  gone, entries are refused with ``out_of_stock`` and nothing is recorded.
* ``lottery``: entries are only recorded (nothing is spent); the draw, after ``closes_at``,
  shuffles the entrants with a random seed kept on the release and redeems the reward for
  each in that order until ``winners`` (default: the reward's stock) have won. An entrant who
  cannot redeem (balance, eligibility, limit) is ``skipped`` with the reason and the next one
  is drawn; everyone else ``lost``.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import audit, members, rewards, tenants
from allegiance.engagement import domain
from allegiance.engagement.errors import (
    AlreadyEntered,
    DuplicateCode,
    EntriesClosed,
    InvalidSuperTicket,
    InvalidTransition,
    SuperTicketNotFound,
)
from allegiance.engagement.models import SuperTicket, TicketEntry
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.errors import AllegianceError
from allegiance.kit.ids import new_id

MODES = ("first_come", "lottery")


def create_super_ticket(session: Session, tenant_id: str, program_id: str, *, code: str,
                        name: str, reward_id: str, mode: str, opens_at: datetime,
                        closes_at: datetime, winners: int | None = None) -> SuperTicket:
    tenants.get_program(session, tenant_id, program_id)
    if mode not in MODES:
        raise InvalidSuperTicket(f"mode must be one of {', '.join(MODES)}", field="mode")
    if opens_at >= closes_at:
        raise InvalidSuperTicket("opens_at must be before closes_at", field="closes_at")
    if winners is not None and winners <= 0:
        raise InvalidSuperTicket("winners must be positive", field="winners")
    reward = rewards.get_reward(session, tenant_id, reward_id)
    if reward.program_id != program_id:
        raise InvalidSuperTicket("the reward belongs to another program", field="reward_id")
    if mode == "lottery" and winners is None and reward.stock is None:
        raise InvalidSuperTicket("a lottery of an unlimited reward names its winners",
                                 field="winners")
    row = SuperTicket(tenant_id=tenant_id, id=new_id("stk"), program_id=program_id, code=code,
                      name=name, reward_id=reward_id, mode=mode, opens_at=opens_at,
                      closes_at=closes_at, winners=winners, status="open", seed=None,
                      drawn_at=None, created_at=clock.now())
    add_unique(session, row, DuplicateCode(f"super ticket {code} exists in this program",
                                           field="code"))
    return row


def get_super_ticket(session: Session, tenant_id: str, super_ticket_id: str) -> SuperTicket:
    row = session.get(SuperTicket, (tenant_id, super_ticket_id))
    if row is None:
        raise SuperTicketNotFound(f"super ticket {super_ticket_id} not found",
                                  field="super_ticket_id")
    return row


def list_super_tickets(session: Session, tenant_id: str, program_id: str) -> list[SuperTicket]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(SuperTicket).where(
        SuperTicket.tenant_id == tenant_id, SuperTicket.program_id == program_id
    ).order_by(SuperTicket.opens_at, SuperTicket.code)))


def enter(session: Session, tenant_id: str, super_ticket_id: str, account_id: str, *,
          user_id: str | None = None, actor: str) -> TicketEntry:
    """Enter an account (once). First come: redeems at once. Lottery: waits for the draw."""
    ticket = get_super_ticket(session, tenant_id, super_ticket_id)
    members.get_account(session, tenant_id, account_id)
    now = clock.now()
    if ticket.status != "open" or not ticket.opens_at <= now < ticket.closes_at:
        raise EntriesClosed("entries are not open now", field="super_ticket_id")
    if session.get(TicketEntry, (tenant_id, ticket.id, account_id)) is not None:
        raise AlreadyEntered("this account has entered", field="account_id")
    row = TicketEntry(tenant_id=tenant_id, super_ticket_id=ticket.id, account_id=account_id,
                      user_id=user_id, status="entered", position=None, redemption_id=None,
                      reason=None, entered_at=now, decided_at=None)
    add_unique(session, row, AlreadyEntered("this account has entered", field="account_id"))
    if ticket.mode == "first_come":
        redemption = rewards.redeem(session, tenant_id, ticket.program_id, ticket.reward_id,
                                    account_id, user_id=user_id, actor=actor)
        row.status, row.redemption_id, row.decided_at = "won", redemption.id, now
        session.flush()
    outbox.emit(session, tenant_id, "super_ticket.entered", {
        "program_id": ticket.program_id, "super_ticket": ticket.code,
        "account_id": account_id, "status": row.status,
        "redemption_id": row.redemption_id})
    return row


def entries(session: Session, tenant_id: str, super_ticket_id: str) -> list[TicketEntry]:
    get_super_ticket(session, tenant_id, super_ticket_id)
    return list(session.scalars(select(TicketEntry).where(
        TicketEntry.tenant_id == tenant_id, TicketEntry.super_ticket_id == super_ticket_id
    ).order_by(TicketEntry.position, TicketEntry.account_id)))


def draw(session: Session, tenant_id: str, super_ticket_id: str, *,
         actor: str) -> list[TicketEntry]:
    """Draw a lottery once its entries have closed; returns the entries in draw order."""
    ticket = session.get(SuperTicket, (tenant_id, super_ticket_id), with_for_update=True,
                         populate_existing=True)
    if ticket is None:
        raise SuperTicketNotFound(f"super ticket {super_ticket_id} not found",
                                  field="super_ticket_id")
    if ticket.mode != "lottery":
        raise InvalidTransition("only a lottery is drawn", field="super_ticket_id")
    if ticket.status != "open":
        raise InvalidTransition(f"the super ticket is {ticket.status}", field="super_ticket_id")
    now = clock.now()
    if now < ticket.closes_at:
        raise InvalidTransition("entries close at closes_at; draw after", field="super_ticket_id")
    reward = rewards.get_reward(session, tenant_id, ticket.reward_id)
    places = ticket.winners if ticket.winners is not None else (reward.stock or 0)
    pending = {e.account_id: e for e in session.scalars(select(TicketEntry).where(
        TicketEntry.tenant_id == tenant_id, TicketEntry.super_ticket_id == ticket.id,
        TicketEntry.status == "entered"))}
    seed = secrets.token_hex(16)
    order = domain.draw_order(list(pending), seed)
    won = 0
    for position, account_id in enumerate(order, start=1):
        entry = pending[account_id]
        entry.position, entry.decided_at = position, now
        if won >= places:
            entry.status = "lost"
            continue
        try:
            with session.begin_nested():
                redemption = rewards.redeem(session, tenant_id, ticket.program_id, reward.id,
                                            account_id, user_id=entry.user_id, actor=actor)
        except AllegianceError as exc:
            entry.status, entry.reason = "skipped", f"{exc.code}: {exc.message}"[:300]
            if exc.code == "out_of_stock":
                places = won  # nothing left for anyone after this
            continue
        entry.status, entry.redemption_id = "won", redemption.id
        won += 1
    ticket.status, ticket.seed, ticket.drawn_at = "drawn", seed, now
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="super_ticket.draw",
                 object_type="super_ticket", object_id=ticket.id, before={"status": "open"},
                 after={"status": "drawn", "seed": seed, "entries": len(order), "won": won})
    outbox.emit(session, tenant_id, "super_ticket.drawn", {
        "program_id": ticket.program_id, "super_ticket": ticket.code, "entries": len(order),
        "winners": [e for e in order if pending[e].status == "won"]})
    return [pending[a] for a in order]
