"""Codes a redemption hands out: e-gift codes from a reward's pool, and coupon codes the
member shows at the till (validated, then used exactly once)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit import clock
from allegiance.rewards import domain
from allegiance.rewards.errors import CodesExhausted, CouponExpired, CouponNotFound, CouponUsed
from allegiance.rewards.models import Redemption, Reward, RewardCode


def take_code(session: Session, tenant_id: str, reward: Reward, redemption_id: str) -> str:
    """Claim a free pool code with a conditional update (retried if another claim won)."""
    for _ in range(5):
        candidate = session.scalars(
            select(RewardCode).where(RewardCode.tenant_id == tenant_id,
                                     RewardCode.reward_id == reward.id,
                                     RewardCode.redemption_id.is_(None))
            .order_by(RewardCode.id).limit(1)).first()
        if candidate is None:
            break
        result = session.execute(
            update(RewardCode)
            .where(RewardCode.tenant_id == tenant_id, RewardCode.id == candidate.id,
                   RewardCode.redemption_id.is_(None))
            .values(redemption_id=redemption_id).execution_options(synchronize_session=False))
        if getattr(result, "rowcount", 0) == 1:
            return candidate.code
        session.expire(candidate)
    raise CodesExhausted(f"no e-gift codes left for reward {reward.code}", field="reward_id")


def new_coupon(session: Session, tenant_id: str) -> str:
    for _ in range(10):
        code = domain.new_coupon_code()
        taken = session.scalar(select(Redemption.id).where(
            Redemption.tenant_id == tenant_id, Redemption.code == code))
        if taken is None:
            return code
    raise CodesExhausted("could not generate a unique coupon code", field="code")


def _coupon(session: Session, tenant_id: str, code: str) -> Redemption:
    clean = domain.normalise_code(code)
    row = None
    if domain.code_well_formed(clean):
        row = session.scalars(select(Redemption).where(
            Redemption.tenant_id == tenant_id, Redemption.code == clean,
            Redemption.status == "fulfilled")).first()
    reward = session.get(Reward, (tenant_id, row.reward_id)) if row is not None else None
    if row is None or reward is None or reward.kind != "coupon":
        raise CouponNotFound("no such coupon", field="code")
    return row


def validate_coupon(session: Session, tenant_id: str, code: str) -> Redemption:
    """The coupon's redemption if the code may be used now; raises otherwise."""
    row = _coupon(session, tenant_id, code)
    if row.code_used_at is not None:
        raise CouponUsed("the coupon has been used", field="code")
    if row.code_expires_at is not None and row.code_expires_at <= clock.now():
        raise CouponExpired("the coupon has expired", field="code")
    return row


def use_coupon(session: Session, tenant_id: str, code: str, *, actor: str) -> Redemption:
    """Mark a coupon used, exactly once (a conditional update)."""
    row = validate_coupon(session, tenant_id, code)
    now = clock.now()
    result = session.execute(
        update(Redemption)
        .where(Redemption.tenant_id == tenant_id, Redemption.id == row.id,
               Redemption.code_used_at.is_(None))
        .values(code_used_at=now).execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) != 1:
        raise CouponUsed("the coupon has been used", field="code")
    session.refresh(row)
    audit.record(session, tenant_id, actor=actor, action="coupon.use",
                 object_type="redemption", object_id=row.id, after={"code_used_at": str(now)})
    return row


def coupon_reward(session: Session, tenant_id: str, program_id: str,
                  reward_code: str) -> Reward | None:
    """The program's active coupon-kind reward ``reward_code``, or None."""
    reward = session.scalars(select(Reward).where(
        Reward.tenant_id == tenant_id, Reward.program_id == program_id,
        Reward.code == reward_code)).first()
    return reward if reward is not None and reward.kind == "coupon" \
        and reward.status == "active" else None


def issue_coupon(session: Session, tenant_id: str, program_id: str, reward_code: str,
                 account_id: str, *, source: str, source_id: str, actor: str) -> Redemption:
    """Give ``account_id`` a single-use code of the program's coupon reward ``reward_code``
    for free (a challenge completion, say): a fulfilled redemption of 0 points that the till
    validates and uses like a bought coupon. Its id follows from ``source_id`` (``rdm_`` and
    the id's tail), so issuing twice for the same source returns the first coupon. The
    reward's cost, stock and limits are not applied: the source decided the member earned it."""
    redemption_id = "rdm_" + source_id.split("_", 1)[-1]
    existing = session.get(Redemption, (tenant_id, redemption_id))
    if existing is not None:
        return existing
    reward = coupon_reward(session, tenant_id, program_id, reward_code)
    if reward is None:
        raise CouponNotFound(f"no active coupon reward {reward_code!r} in the program",
                             field="reward")
    now = clock.now()
    row = Redemption(
        tenant_id=tenant_id, id=redemption_id, program_id=program_id, reward_id=reward.id,
        account_id=account_id, user_id=None, quantity=1, points=0, status="fulfilled",
        hold_id=None, entry_id=None, reversal_entry_id=None, code=new_coupon(session, tenant_id),
        code_expires_at=(now + timedelta(days=reward.code_valid_days)
                         if reward.code_valid_days is not None else None),
        code_used_at=None, shipping={}, cause=None, reason=f"{source} {source_id}",
        created_at=now, decided_at=now, decided_by=actor, fulfilled_at=now)
    session.add(row)
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="coupon.issue",
                 object_type="redemption", object_id=row.id,
                 after={"reward": reward.code, "account_id": account_id, "source": source,
                        "source_id": source_id})
    return row


def void_coupon(session: Session, tenant_id: str, redemption_id: str, *,
                actor: str) -> bool:
    """Cancel an issued coupon not used yet (its source was undone); False if it was used."""
    result = session.execute(
        update(Redemption)
        .where(Redemption.tenant_id == tenant_id, Redemption.id == redemption_id,
               Redemption.status == "fulfilled", Redemption.code_used_at.is_(None))
        .values(status="cancelled").execution_options(synchronize_session=False))
    voided = getattr(result, "rowcount", 0) == 1
    if voided:
        audit.record(session, tenant_id, actor=actor, action="coupon.void",
                     object_type="redemption", object_id=redemption_id, after={})
    return voided
