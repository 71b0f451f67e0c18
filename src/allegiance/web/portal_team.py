"""Portal: the team view of an account owner. Every user of the owner's account and of the
accounts below it, with the balances of their own wallets in the program, what they earned
in the last 30 and 90 days, and the team's latest earnings. Only owners see it (403 for every
other role); everything is read in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from allegiance import ledger, members
from allegiance.kit import clock
from allegiance.web import queries
from allegiance.web.portal_base import account_of
from allegiance.web.security import Member, PermissionDenied, member, reading
from allegiance.web.templating import render

router = APIRouter()
RECENT = 20


@dataclass
class TeamMember:
    user: members.User
    account_name: str
    wallets: list[queries.WalletRow] = field(default_factory=list)
    earned_30: dict[str, int] = field(default_factory=dict)  # unit code → amount
    earned_90: dict[str, int] = field(default_factory=dict)


def _earnings(s: Session, tenant_id: str, wallet_ids: list[str]
              ) -> tuple[dict[str, tuple[int, int]], list[tuple[str, datetime, str, int]]]:
    """Per wallet: credits of kind ``earn`` in the last 30 and 90 days; and the latest
    earnings of these wallets (wallet, when, memo, amount)."""
    if not wallet_ids:
        return {}, []
    now = clock.now()
    recent_30 = now - timedelta(days=30)
    base = and_(ledger.Posting.tenant_id == tenant_id,
                ledger.Posting.account_id.in_(wallet_ids), ledger.Posting.side == "C",
                ledger.JournalEntry.kind == "earn")
    join = and_(ledger.JournalEntry.tenant_id == ledger.Posting.tenant_id,
                ledger.JournalEntry.id == ledger.Posting.entry_id)
    sums = s.execute(
        select(ledger.Posting.account_id,
               func.sum(case((ledger.JournalEntry.effective_at >= recent_30,
                              ledger.Posting.amount), else_=0)),
               func.sum(ledger.Posting.amount))
        .join(ledger.JournalEntry, join)
        .where(base, ledger.JournalEntry.effective_at >= now - timedelta(days=90))
        .group_by(ledger.Posting.account_id))
    totals = {str(w): (int(a or 0), int(b or 0)) for w, a, b in sums}
    latest = [(str(w), at, memo or "", int(amount)) for w, at, memo, amount in s.execute(
        select(ledger.Posting.account_id, ledger.JournalEntry.effective_at,
               ledger.JournalEntry.memo, ledger.Posting.amount)
        .join(ledger.JournalEntry, join).where(base)
        .order_by(ledger.JournalEntry.seq.desc()).limit(RECENT))]
    return totals, latest


@router.get("/team")
def team(request: Request, account: str | None = Query(None, max_length=40),
         ctx: Member = Depends(member)) -> Response:
    if ctx.user.role != "owner":
        raise PermissionDenied("only an account owner sees the team's earnings")
    account = account or None  # "All accounts"
    account_id = account_of(ctx, account)
    program = ctx.program
    team_rows: list[TeamMember] = []
    latest: list[tuple[str, datetime, str, int]] = []
    wallet_owner: dict[str, TeamMember] = {}
    with reading(ctx.db) as s:
        users = list(s.scalars(select(members.User).where(
            members.User.tenant_id == ctx.tenant_id,
            members.User.account_id.in_(ctx.tree)).order_by(
            members.User.account_id, members.User.name).limit(500)))
        by_user = {u.id: TeamMember(u, ctx.account_names.get(u.account_id, u.account_id))
                   for u in users}
        team_rows = list(by_user.values())
        if program is not None:
            rows = queries.wallets(s, ctx.tenant_id, ctx.tree, program.id)
            for w in rows:
                if w.owner_type == "user" and w.owner_id in by_user:
                    by_user[w.owner_id].wallets.append(w)
                    wallet_owner[w.id] = by_user[w.owner_id]
            totals, latest = _earnings(s, ctx.tenant_id, sorted(wallet_owner))
            for wallet_id, (d30, d90) in totals.items():
                person = wallet_owner[wallet_id]
                unit = next(w.unit_code for w in person.wallets if w.id == wallet_id)
                person.earned_30[unit] = person.earned_30.get(unit, 0) + d30
                person.earned_90[unit] = person.earned_90.get(unit, 0) + d90
    if account is not None:
        team_rows = [t for t in team_rows if t.user.account_id == account_id]
        latest = [r for r in latest if wallet_owner[r[0]].user.account_id == account_id]
    units = {w.id: w for t in team_rows for w in t.wallets}
    return render(request, "portal/team.html", {
        "ctx": ctx, "account_id": account_id, "team": team_rows, "latest": latest,
        "wallet_owner": wallet_owner, "units": units, "filtered": account is not None})
