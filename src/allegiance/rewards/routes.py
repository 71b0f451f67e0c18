"""HTTP routes of the rewards catalogue (writes: admin), redemptions (integration) and coupons.
Another tenant's ids read as not found."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need
from allegiance.rewards import codes, service, shipping
from allegiance.rewards.models import Redemption
from allegiance.rewards.schemas import (
    CodesAdded,
    CodesUpload,
    CouponIn,
    CouponRead,
    Decision,
    Fulfilment,
    RedemptionCreate,
    RedemptionPage,
    RedemptionRead,
    RewardCreate,
    RewardPage,
    RewardRead,
    RewardUpdate,
    ShippingUpdate,
)

router = APIRouter(tags=["rewards"])

LimitQuery = Query(50, ge=1, le=MAX_LIMIT, description="page size")
CursorQuery = Query(None, max_length=200, description="next_cursor of the previous page")


@router.post("/programs/{program_id}/rewards", status_code=201, response_model=RewardRead,
             summary="Add a reward to the catalogue")
def create_reward(program_id: str, body: RewardCreate,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> RewardRead:
        options = body.model_dump(exclude_none=True,
                                  exclude={"code", "name", "kind", "unit_id", "cost"})
        row = service.create_reward(session, ctx.tenant_id, program_id, code=body.code,
                                    name=body.name, kind=body.kind, unit_id=body.unit_id,
                                    cost=body.cost, **options)
        out = RewardRead.model_validate(row)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="reward.create",
                     object_type="reward", object_id=row.id,
                     after=out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/rewards", response_model=RewardPage,
            summary="List rewards (visible=true: shown now; account_id: redeemable by it now)")
def list_rewards(program_id: str, visible: bool = False, account_id: str | None = None,
                 limit: int = LimitQuery, cursor: str | None = CursorQuery,
                 ctx: Ctx = Depends(need("read"))) -> RewardPage:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = service.list_rewards(session, ctx.tenant_id, program_id, account_id=account_id,
                                    visible_only=visible, limit=limit,
                                    after=decode_cursor(cursor))
        items = [RewardRead.model_validate(r) for r in rows[:limit]]
    return RewardPage(items=items,
                      next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/rewards/{reward_id}", response_model=RewardRead, summary="Read a reward")
def get_reward(reward_id: str, ctx: Ctx = Depends(need("read"))) -> RewardRead:
    with ctx.read() as session:
        row = service.get_reward(session, ctx.tenant_id, reward_id)
        ctx.check_program(row.program_id)
        return RewardRead.model_validate(row)


@router.patch("/rewards/{reward_id}", response_model=RewardRead, summary="Change a reward")
def update_reward(reward_id: str, body: RewardUpdate,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> RewardRead:
        ctx.check_program(service.get_reward(session, ctx.tenant_id, reward_id).program_id)
        row = service.update_reward(session, ctx.tenant_id, reward_id,
                                    body.model_dump(exclude_unset=True))
        out = RewardRead.model_validate(row)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="reward.update",
                     object_type="reward", object_id=row.id,
                     after=out.model_dump(mode="json"))
        return out

    return ctx.write(body, run)


@router.post("/rewards/{reward_id}/codes", response_model=CodesAdded,
             summary="Add e-gift codes to a reward's pool (duplicates are skipped)")
def add_codes(reward_id: str, body: CodesUpload, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> CodesAdded:
        ctx.check_program(service.get_reward(session, ctx.tenant_id, reward_id).program_id)
        added = service.add_codes(session, ctx.tenant_id, reward_id, body.codes)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="reward.codes_add",
                     object_type="reward", object_id=reward_id, after={"added": added})
        return CodesAdded(added=added,
                          free=service.free_codes(session, ctx.tenant_id, reward_id))

    return ctx.write(body, run)


@router.post("/programs/{program_id}/redemptions", status_code=201,
             response_model=RedemptionRead, summary="Redeem a reward for an account")
def redeem(program_id: str, body: RedemptionCreate,
           ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> RedemptionRead:
        row = service.redeem_values(session, ctx.tenant_id, program_id, body.reward_id,
                                    body.account_id, quantity=body.quantity,
                                    user_id=body.user_id, cause=body.cause,
                                    shipping=body.shipping, pay_from=body.pay_from,
                                    actor=ctx.actor, post_last=True)
        return RedemptionRead.model_validate(row)

    return ctx.write(body, run, 201, queued=True)


@router.get("/programs/{program_id}/redemptions", response_model=RedemptionPage,
            summary="List redemptions (filter by status or account)")
def list_redemptions(program_id: str, status: str | None = Query(None, max_length=16),
                     account_id: str | None = Query(None, max_length=40),
                     limit: int = LimitQuery, cursor: str | None = CursorQuery,
                     ctx: Ctx = Depends(need("read"))) -> RedemptionPage:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = service.list_redemptions(session, ctx.tenant_id, program_id, status=status,
                                        account_id=account_id, limit=limit,
                                        after=decode_cursor(cursor))
        items = [RedemptionRead.model_validate(r) for r in rows[:limit]]
    return RedemptionPage(items=items,
                          next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@router.get("/redemptions/{redemption_id}", response_model=RedemptionRead,
            summary="Read a redemption")
def get_redemption(redemption_id: str, ctx: Ctx = Depends(need("read"))) -> RedemptionRead:
    with ctx.read() as session:
        row = service.get_redemption(session, ctx.tenant_id, redemption_id)
        ctx.check_program(row.program_id)
        return RedemptionRead.model_validate(row)


def _decide(ctx: Ctx, redemption_id: str, body: Decision | Fulfilment, action: str) -> Response:
    def run(session: Session) -> RedemptionRead:
        ctx.check_program(service.get_redemption(session, ctx.tenant_id,
                                                 redemption_id).program_id)
        if isinstance(body, Fulfilment):
            row = service.fulfil(session, ctx.tenant_id, redemption_id, actor=ctx.actor,
                                 shipping=body.shipping)
        elif action == "approve":
            row = service.approve(session, ctx.tenant_id, redemption_id, actor=ctx.actor)
        elif action == "reject":
            row = service.reject(session, ctx.tenant_id, redemption_id, actor=ctx.actor,
                                 reason=body.reason)
        else:
            row = service.cancel(session, ctx.tenant_id, redemption_id, actor=ctx.actor,
                                 reason=body.reason)
        return RedemptionRead.model_validate(row)

    return ctx.write(body, run)


@router.post("/redemptions/{redemption_id}/approve", response_model=RedemptionRead,
             summary="Approve a requested redemption (posts its held points)")
def approve(redemption_id: str, body: Decision | None = None,
            ctx: Ctx = Depends(need("admin"))) -> Response:
    return _decide(ctx, redemption_id, body or Decision(), "approve")


@router.post("/redemptions/{redemption_id}/reject", response_model=RedemptionRead,
             summary="Reject a requested redemption (releases the hold, returns the stock)")
def reject(redemption_id: str, body: Decision | None = None,
           ctx: Ctx = Depends(need("admin"))) -> Response:
    return _decide(ctx, redemption_id, body or Decision(), "reject")


@router.post("/redemptions/{redemption_id}/cancel", response_model=RedemptionRead,
             summary="Cancel a redemption before fulfilment (refunds the points)")
def cancel(redemption_id: str, body: Decision | None = None,
           ctx: Ctx = Depends(need("integration"))) -> Response:
    return _decide(ctx, redemption_id, body or Decision(), "cancel")


@router.post("/redemptions/{redemption_id}/fulfil", response_model=RedemptionRead,
             summary="Fulfil an approved redemption (issues its code, records shipping)")
def fulfil(redemption_id: str, body: Fulfilment | None = None,
           ctx: Ctx = Depends(need("admin"))) -> Response:
    return _decide(ctx, redemption_id, body or Fulfilment(), "fulfil")


@router.post("/redemptions/{redemption_id}/shipping", response_model=RedemptionRead,
             summary="Update the shipping of a fulfilled physical gift (status, carrier, "
                     "tracking; audited)")
def update_shipping(redemption_id: str, body: ShippingUpdate,
                    ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> RedemptionRead:
        ctx.check_program(service.get_redemption(session, ctx.tenant_id,
                                                 redemption_id).program_id)
        row = shipping.update_shipping(session, ctx.tenant_id, redemption_id, actor=ctx.actor,
                                       status=body.shipping_status, carrier=body.carrier,
                                       tracking=body.tracking, note=body.note)
        return RedemptionRead.model_validate(row)

    return ctx.write(body, run)


def _coupon(row_code: str, row: Redemption) -> CouponRead:
    return CouponRead(code=row_code, valid=row.code_used_at is None,
                      redemption_id=row.id, reward_id=row.reward_id, account_id=row.account_id,
                      expires_at=row.code_expires_at, used_at=row.code_used_at)


@router.post("/coupons/validate", response_model=CouponRead,
             summary="Check a coupon code (unknown, used or expired codes are errors)")
def validate_coupon(body: CouponIn, ctx: Ctx = Depends(need("read"))) -> CouponRead:
    with ctx.read() as session:
        row = codes.validate_coupon(session, ctx.tenant_id, body.code)
        return _coupon(row.code or body.code, row)


@router.post("/coupons/redeem", response_model=CouponRead,
             summary="Use a coupon code (exactly once)")
def use_coupon(body: CouponIn, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> CouponRead:
        row = codes.use_coupon(session, ctx.tenant_id, body.code, actor=ctx.actor)
        return _coupon(row.code or body.code, row)

    return ctx.write(body, run)
