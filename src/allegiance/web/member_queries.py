"""Read-only queries of Member 360 beyond wallets and history: the account's sales claims,
co-marketing claims and referrals (as referrer and as referred), newest first, a bounded
number of each, with one batched lookup of names and reward totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from allegiance import claims, mdf, referrals, tenants
from allegiance.web import queries

LIMIT = 20


def sales_claims(session: Session, tenant_id: str, program_id: str,
                 account_id: str) -> list[claims.SalesClaim]:
    claim = claims.SalesClaim
    return list(session.scalars(select(claim).where(
        claim.tenant_id == tenant_id, claim.program_id == program_id,
        claim.account_id == account_id).order_by(claim.id.desc()).limit(LIMIT)))


def mdf_claims(session: Session, tenant_id: str, program_id: str,
               account_id: str) -> list[tuple[mdf.MdfClaim, str, str | None]]:
    """(claim, fund name, the fund's currency) of the account in the program's funds."""
    claim, fund, unit = mdf.MdfClaim, mdf.MdfFund, tenants.Unit
    rows = session.execute(
        select(claim, fund.name, unit.currency)
        .join(fund, (fund.tenant_id == claim.tenant_id) & (fund.id == claim.fund_id))
        .join(unit, (unit.tenant_id == fund.tenant_id) & (unit.id == fund.unit_id))
        .where(claim.tenant_id == tenant_id, fund.program_id == program_id,
               claim.account_id == account_id)
        .order_by(claim.id.desc()).limit(LIMIT)).all()
    return [(c, str(n), cur) for c, n, cur in rows]


@dataclass
class ReferralRow:
    id: str
    role: str  # "referrer" (this account brought the other) or "referred"
    other_id: str
    other_name: str
    status: str
    reason: str | None
    signed_up_at: datetime
    rewarded: int  # what this account earned from the referral, net of reversals


def referral_rows(session: Session, tenant_id: str, account_id: str) -> list[ReferralRow]:
    ref = referrals.Referral
    rows = list(session.scalars(select(ref).where(
        ref.tenant_id == tenant_id, ref.kind == "signup",
        or_(ref.referrer_account_id == account_id, ref.referred_account_id == account_id))
        .order_by(ref.id.desc()).limit(LIMIT)))
    if not rows:
        return []
    reward = referrals.ReferralReward
    earned = {str(i): int(t or 0) for i, t in session.execute(
        select(reward.referral_id, func.sum(reward.amount - reward.reversed_amount))
        .where(reward.tenant_id == tenant_id, reward.owner_account_id == account_id,
               reward.referral_id.in_([r.id for r in rows]))
        .group_by(reward.referral_id))}
    # sign-ups only (filtered above): their referred account is always set
    others = [str(r.referred_account_id) if r.referrer_account_id == account_id
              else r.referrer_account_id for r in rows]
    names = queries.account_names(session, tenant_id, others)
    return [ReferralRow(r.id, "referrer" if r.referrer_account_id == account_id else "referred",
                        other, names.get(other, other), r.status, r.reason, r.signed_up_at,
                        earned.get(r.id, 0))
            for r, other in zip(rows, others, strict=True)]
