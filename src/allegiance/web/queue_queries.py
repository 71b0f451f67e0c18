"""Read-only queries of the admin queues for enrolment applications and co-marketing (MDF)
requests and claims: tenant-filtered, a page of rows (``limit + 1`` so the caller knows there
is more), newest first by id (ids are time-ordered), lookups batched."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from allegiance import mdf, members

APPLICATION_STATUSES = ("applied", "rejected", "active")
MDF_QUEUES: dict[str, tuple[str, ...]] = {
    "open": ("requested", "claimed"), "requested": ("requested",),
    "preapproved": ("preapproved",), "claimed": ("claimed",), "paid": ("paid",),
    "rejected": ("rejected",), "expired": ("expired",), "all": ()}


def applications(session: Session, tenant_id: str, program_id: str, *, status: str,
                 q: str | None = None, before: str | None = None,
                 limit: int = 50) -> list[tuple[members.Enrolment, members.Account]]:
    """Enrolments of the program with ``status`` and their accounts; ``q`` matches the
    account's name, member number or e-mail (case-insensitive)."""
    enrolment, account = members.Enrolment, members.Account
    stmt = (select(enrolment, account)
            .join(account, (account.tenant_id == enrolment.tenant_id)
                  & (account.id == enrolment.account_id))
            .where(enrolment.tenant_id == tenant_id, enrolment.program_id == program_id,
                   enrolment.status == status))
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(account.name).like(pattern),
                              func.lower(account.member_number).like(pattern),
                              func.lower(account.email).like(pattern)))
    if before:
        stmt = stmt.where(enrolment.id < before)
    rows = session.execute(stmt.order_by(enrolment.id.desc()).limit(limit + 1)).all()
    return [(e, a) for e, a in rows]


def funds(session: Session, tenant_id: str, program_id: str) -> list[mdf.MdfFund]:
    return list(session.scalars(select(mdf.MdfFund).where(
        mdf.MdfFund.tenant_id == tenant_id, mdf.MdfFund.program_id == program_id)
        .order_by(mdf.MdfFund.code).limit(200)))


def mdf_claims(session: Session, tenant_id: str, fund_ids: list[str], *,
               statuses: tuple[str, ...], account_id: str | None = None,
               before: str | None = None, limit: int = 50) -> list[mdf.MdfClaim]:
    """Co-marketing requests and claims of these funds."""
    if not fund_ids:
        return []
    claim = mdf.MdfClaim
    stmt = select(claim).where(claim.tenant_id == tenant_id, claim.fund_id.in_(fund_ids))
    if statuses:
        stmt = stmt.where(claim.status.in_(list(statuses)))
    if account_id:
        stmt = stmt.where(claim.account_id == account_id)
    if before:
        stmt = stmt.where(claim.id < before)
    return list(session.scalars(stmt.order_by(claim.id.desc()).limit(limit + 1)))


def waiting(session: Session, tenant_id: str, program_id: str) -> dict[str, int]:
    """How many applications and co-marketing requests and claims wait for a decision."""
    applications_waiting = session.scalar(select(func.count()).select_from(members.Enrolment)
                                          .where(members.Enrolment.tenant_id == tenant_id,
                                                 members.Enrolment.program_id == program_id,
                                                 members.Enrolment.status == "applied")) or 0
    claim, fund = mdf.MdfClaim, mdf.MdfFund
    mdf_waiting = session.scalar(
        select(func.count()).select_from(claim)
        .join(fund, (fund.tenant_id == claim.tenant_id) & (fund.id == claim.fund_id))
        .where(claim.tenant_id == tenant_id, fund.program_id == program_id,
               claim.status.in_(MDF_QUEUES["open"]))) or 0
    return {"applications": int(applications_waiting), "mdf": int(mdf_waiting)}
