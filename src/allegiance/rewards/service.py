"""The rewards catalogue and redemptions: eligibility, stock that never oversells, holds while
a redemption awaits approval, refunds through the ledger, e-gift code pools and coupons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from allegiance import audit, campaigns, ledger, members, tenants, tiers
from allegiance.kit import clock, outbox
from allegiance.kit.db import OWNS_COMMIT, add_unique, pipelined
from allegiance.kit.errors import Conflict
from allegiance.kit.ids import new_id
from allegiance.kit.placement import last_write
from allegiance.rewards import codes, domain, statements
from allegiance.rewards.errors import (
    INELIGIBLE,
    BelowMinimum,
    DuplicateReward,
    InvalidReward,
    InvalidTransition,
    LimitReached,
    OutOfStock,
    RedemptionNotFound,
    RewardNotFound,
)
from allegiance.rewards.models import Redemption, Reward, RewardCode

CODED = ("egift", "coupon")
UPDATABLE = frozenset({
    "name", "description", "cost", "stock", "min_balance", "eligible_regions", "eligible_tiers",
    "eligible_segments", "causes", "limit_per_member", "limit_period", "visible_from",
    "visible_to", "available_from", "available_to", "requires_approval", "code_valid_days",
    "status",
})

NOT_NULL = frozenset({"name", "description", "cost", "eligible_regions", "eligible_tiers",
                      "eligible_segments", "causes", "limit_period", "requires_approval",
                      "status"})


# --- catalogue -------------------------------------------------------------------------------

def _check(values: dict[str, Any]) -> None:
    if values.get("kind") not in domain.KINDS:
        raise InvalidReward(f"kind must be one of {', '.join(domain.KINDS)}", field="kind")
    cost = values.get("cost")
    if isinstance(cost, bool) or not isinstance(cost, int) or cost <= 0:
        raise InvalidReward("cost must be a positive integer", field="cost")
    for name in ("stock", "min_balance", "limit_per_member", "code_valid_days"):
        value = values.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise InvalidReward(f"{name} must be a non-negative integer", field=name)
    if values.get("limit_period", "all") not in domain.PERIODS:
        raise InvalidReward(f"limit_period must be one of {', '.join(domain.PERIODS)}",
                            field="limit_period")
    if values.get("status", "active") not in ("active", "retired"):
        raise InvalidReward("status must be active or retired", field="status")
    for start, end in (("visible_from", "visible_to"), ("available_from", "available_to")):
        if values.get(start) and values.get(end) and values[start] >= values[end]:
            raise InvalidReward(f"{start} must be before {end}", field=end)
    if values.get("kind") == "donation" and not values.get("causes"):
        raise InvalidReward("a donation reward needs a list of causes", field="causes")


def create_reward(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                  kind: str, unit_id: str, cost: int, **options: Any) -> Reward:
    tenants.get_program(session, tenant_id, program_id)
    unit = tenants.get_unit(session, tenant_id, unit_id)
    if unit.program_id != program_id:
        raise InvalidReward("the unit belongs to another program", field="unit_id")
    unknown = set(options) - UPDATABLE
    if unknown:
        raise InvalidReward(f"unknown option {sorted(unknown)[0]}", field=sorted(unknown)[0])
    now = clock.now()
    values: dict[str, Any] = {
        "description": "", "stock": None, "min_balance": None, "eligible_regions": [],
        "eligible_tiers": [], "eligible_segments": [], "causes": [], "limit_per_member": None,
        "limit_period": "all",
        "visible_from": None, "visible_to": None, "available_from": None,
        "available_to": None, "requires_approval": False, "code_valid_days": None,
        "status": "active",
    }
    values.update({k: v for k, v in options.items() if v is not None})
    values.update(kind=kind, cost=cost)
    _check(values)
    values["eligible_regions"] = [r.upper() for r in values["eligible_regions"]]
    reward = Reward(tenant_id=tenant_id, id=new_id("rwd"), program_id=program_id, code=code,
                    name=name, unit_id=unit_id, created_at=now, updated_at=now, **values)
    add_unique(session, reward, DuplicateReward(f"reward {code} exists in this program", field="code"))
    return reward


def get_reward(session: Session, tenant_id: str, reward_id: str) -> Reward:
    reward = session.get(Reward, (tenant_id, reward_id))
    if reward is None:
        raise RewardNotFound(f"reward {reward_id} not found", field="reward_id")
    return reward


def update_reward(session: Session, tenant_id: str, reward_id: str,
                  changes: dict[str, Any]) -> Reward:
    reward = get_reward(session, tenant_id, reward_id)
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise InvalidReward(f"{sorted(unknown)[0]} cannot be changed", field=sorted(unknown)[0])
    for name in NOT_NULL & set(changes):
        if changes[name] is None:
            raise InvalidReward(f"{name} cannot be empty", field=name)
    values = {name: getattr(reward, name) for name in UPDATABLE | {"kind"}}
    values.update(changes)
    _check(values)
    for name, value in changes.items():
        if name == "eligible_regions" and value is not None:
            value = [r.upper() for r in value]
        setattr(reward, name, value)
    reward.updated_at = clock.now()
    session.flush()
    return reward


def _offer(reward: Any) -> domain.Offer:
    """The eligibility facts of a reward (an ORM ``Reward`` or a row of its columns)."""
    return domain.Offer(
        status=reward.status, visible_from=reward.visible_from, visible_to=reward.visible_to,
        available_from=reward.available_from, available_to=reward.available_to,
        eligible_regions=reward.eligible_regions or [], eligible_tiers=reward.eligible_tiers or [],
        eligible_segments=reward.eligible_segments or [])


def _member_tiers(session: Session, tenant_id: str, program_id: str,
                  account_id: str) -> set[str]:
    return {s.level for s in tiers.status(session, tenant_id, program_id, account_id)
            if s.level is not None}


def _segment(attributes: dict[str, Any] | None) -> str | None:
    """The account's ``segment`` attribute, when it is a text."""
    value = (attributes or {}).get("segment")
    return value if isinstance(value, str) else None


def list_rewards(session: Session, tenant_id: str, program_id: str, *,
                 account_id: str | None = None, visible_only: bool = False,
                 limit: int = 50, after: str | None = None) -> list[Reward]:
    """Rewards of a program by id; ``visible_only`` keeps those shown now, and with an
    ``account_id`` only those that account may redeem now. Returns up to ``limit + 1``."""
    tenants.get_program(session, tenant_id, program_id)
    query = select(Reward).where(Reward.tenant_id == tenant_id, Reward.program_id == program_id)
    if after:
        query = query.where(Reward.id > after)
    rows = list(session.scalars(query.order_by(Reward.id)))
    now = clock.now()
    if visible_only or account_id is not None:
        rows = [r for r in rows if domain.is_visible(_offer(r), now)]
    if account_id is not None:
        account = members.get_account(session, tenant_id, account_id)
        levels = _member_tiers(session, tenant_id, program_id, account_id)
        mine = campaigns.segment_codes(session, tenant_id, program_id, account_id)
        rows = [r for r in rows if domain.ineligibility(
            _offer(r), now, account.region, levels, _segment(account.attributes), mine) is None]
    return rows[:limit + 1]


def add_codes(session: Session, tenant_id: str, reward_id: str, codes: list[str]) -> int:
    """Add e-gift codes to a reward's pool; codes already there are skipped. Returns the
    number added."""
    reward = get_reward(session, tenant_id, reward_id)
    if reward.kind != "egift":
        raise InvalidReward("only e-gift rewards have a code pool", field="reward_id")
    wanted = {c.strip() for c in codes if c.strip()}
    have = set(session.scalars(select(RewardCode.code).where(
        RewardCode.tenant_id == tenant_id, RewardCode.reward_id == reward_id,
        RewardCode.code.in_(wanted))))
    now = clock.now()
    fresh = sorted(wanted - have)
    for code in fresh:
        session.add(RewardCode(tenant_id=tenant_id, id=new_id("rcd"), reward_id=reward_id,
                               code=code, redemption_id=None, created_at=now))
    session.flush()
    return len(fresh)


def free_codes(session: Session, tenant_id: str, reward_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(RewardCode).where(
        RewardCode.tenant_id == tenant_id, RewardCode.reward_id == reward_id,
        RewardCode.redemption_id.is_(None))) or 0)


# --- redemptions -----------------------------------------------------------------------------

def _take_stock(session: Session, tenant_id: str, reward: Any, quantity: int) -> None:
    """The one place stock goes down: a conditional update, so two redemptions can never
    both take the last item."""
    if reward.stock is None:
        return
    result = session.execute(
        update(Reward)
        .where(Reward.tenant_id == tenant_id, Reward.id == reward.id,
               Reward.stock.is_not(None), Reward.stock >= quantity)
        .values(stock=Reward.stock - quantity)
        .execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) != 1:
        raise OutOfStock(f"reward {reward.code} is out of stock", field="quantity")
    _expire_stock(session, tenant_id, reward.id)


def _give_back_stock(session: Session, tenant_id: str, reward_id: str, quantity: int) -> None:
    session.execute(
        update(Reward)
        .where(Reward.tenant_id == tenant_id, Reward.id == reward_id, Reward.stock.is_not(None))
        .values(stock=Reward.stock + quantity)
        .execution_options(synchronize_session=False))


def _used_in_period(session: Session, tenant_id: str, reward_id: str, period: str,
                    account_id: str, now: datetime) -> int:
    start = domain.period_start(now, period)
    query = select(func.coalesce(func.sum(Redemption.quantity), 0)).where(
        Redemption.tenant_id == tenant_id, Redemption.reward_id == reward_id,
        Redemption.account_id == account_id,
        Redemption.status.not_in(("cancelled", "rejected")))
    if start is not None:
        query = query.where(Redemption.created_at >= start)
    return int(session.scalar(query) or 0)


def redeem(session: Session, tenant_id: str, program_id: str, reward_id: str, account_id: str,
           *, quantity: int = 1, user_id: str | None = None, cause: str | None = None,
           shipping: dict[str, Any] | None = None, pay_from: str = "account",
           actor: str = "system") -> Redemption:
    """Redeem ``quantity`` of a reward from an account's wallet, or with ``pay_from="user"``
    from the wallet of its user ``user_id`` (an employee's own points): the points are posted
    at once, or held until approval when the reward requires it. See :func:`redeem_values`."""
    values = redeem_values(session, tenant_id, program_id, reward_id, account_id,
                           quantity=quantity, user_id=user_id, cause=cause, shipping=shipping,
                           pay_from=pay_from, actor=actor)
    row = session.get(Redemption, (tenant_id, values["id"]))
    assert row is not None  # written above, in this transaction
    return row


def redeem_values(session: Session, tenant_id: str, program_id: str, reward_id: str,
                  account_id: str, *, quantity: int = 1, user_id: str | None = None,
                  cause: str | None = None, shipping: dict[str, Any] | None = None,
                  pay_from: str = "account", actor: str = "system",
                  post_last: bool = False) -> dict[str, Any]:
    """:func:`redeem`, returning the new redemption's column values instead of an ORM row
    (the API's path: the reads are one statement, the row one Core insert).

    ``post_last`` (the API): an approved-at-once redemption's writes — the stock taken, the
    row, its event and the posting — are left to the end of the unit of work
    (``kit.placement.last_write``), which sends them with its idempotency record and audit chain in
    one round trip; their refusals (out of stock, overdrawn) are raised from there and roll
    the unit back. The caller must not read the wallet's balance before then."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidReward("quantity must be a positive integer", field="quantity")
    if pay_from not in ("account", "user"):
        raise InvalidReward("pay_from must be account or user", field="pay_from")
    if pay_from == "user" and (user_id is None or members.get_user(
            session, tenant_id, user_id).account_id != account_id):
        raise InvalidReward("paying from a user's wallet needs a user_id of the account",
                            field="user_id")
    owner_id = user_id if pay_from == "user" and user_id is not None else account_id
    reward = statements.lookup(session, tenant_id, reward_id, account_id, pay_from, owner_id)
    if reward is None or reward.program_id != program_id:
        raise RewardNotFound(f"reward {reward_id} not found", field="reward_id")
    if reward.account_found is None:
        raise members.AccountNotFound(f"account {account_id} not found", field="account_id")
    now = clock.now()
    levels = (_member_tiers(session, tenant_id, program_id, account_id)
              if reward.eligible_tiers else set())
    mine = (campaigns.segment_codes(session, tenant_id, program_id, account_id)
            if reward.eligible_segments else [])
    problem = domain.ineligibility(_offer(reward), now, reward.account_region, levels,
                                   _segment(reward.account_attributes), mine)
    if problem is not None:
        raise INELIGIBLE[problem[0]](problem[1], field="reward_id")
    if reward.kind == "donation" and cause not in (reward.causes or []):
        raise InvalidReward("choose one of the reward's causes", field="cause")
    if reward.limit_per_member is not None:
        # Lock the reward first (the order every redemption path uses: reward, then the
        # ledger), so two concurrent redemptions cannot both pass the count.
        limit, period = statements.lock_limit(session, tenant_id, reward.id)
        if limit is not None:
            used = _used_in_period(session, tenant_id, reward.id, period, account_id, now)
            if used + quantity > limit:
                raise LimitReached(f"at most {limit} per member per {period}",
                                   field="quantity")
    points = reward.cost * quantity
    wallet_id = reward.wallet_id
    if wallet_id is None or reward.min_balance is not None:
        wallet = ledger.wallet(session, tenant_id, program_id, reward.unit_id, pay_from,
                               owner_id)
        wallet_id = wallet.id
        if reward.min_balance is not None:
            available = ledger.balance_of(wallet).available
            if available < reward.min_balance:
                raise BelowMinimum(
                    f"needs an available balance of at least {reward.min_balance}",
                    field="reward_id")
    deferred = post_last and not reward.requires_approval
    if not deferred:
        _take_stock(session, tenant_id, reward, quantity)
    elif reward.stock is not None and reward.stock < quantity:
        # Refused at once on the stock just read; the conditional update sent at the end
        # decides the rest (it never oversells).
        raise OutOfStock(f"reward {reward.code} is out of stock", field="quantity")
    redeemed_id = reward.redeemed_id
    if redeemed_id is None:
        redeemed_id = ledger.program_account(session, tenant_id, program_id, reward.unit_id,
                                             "redeemed", normal="credit").id
    row: dict[str, Any] = {
        "tenant_id": tenant_id, "id": new_id("rdm"), "program_id": program_id,
        "reward_id": reward.id, "account_id": account_id, "user_id": user_id,
        "quantity": quantity, "points": points, "status": "requested", "hold_id": None,
        "entry_id": None, "reversal_entry_id": None, "code": None, "code_expires_at": None,
        "code_used_at": None, "shipping": shipping or {}, "cause": cause, "reason": None,
        "created_at": now, "decided_at": None, "decided_by": None, "fulfilled_at": None}
    if reward.requires_approval:
        hold, _ = ledger.create_hold(session, tenant_id, ledger.HoldRequest(
            program_id=program_id, debit_account_id=wallet_id, credit_account_id=redeemed_id,
            unit_id=reward.unit_id, amount=points, kind="redemption",
            source_type="redemption", source_id=row["id"], hold_key=f"redemption:{row['id']}"))
        row["hold_id"] = hold.id
        statements.insert_redemption(session, row)
        outbox.emit(session, tenant_id, "reward.redeemed", _payload(row))
        return row
    # Approved at once: the row and its event are written before the points are posted, so
    # the posting (which locks the program's redeemed account and the tenant's journal
    # number until the commit) is the last write; if it fails, the transaction rolls back.
    # On PostgreSQL the two inserts go out with the posting, in one round trip.
    row.update(entry_id=new_id("txn"), status="approved", decided_at=now, decided_by="auto")
    entry = ledger.EntryRequest(
        program_id=program_id, kind="redeem",
        lines=(ledger.Line(wallet_id, reward.unit_id, ledger.Side.DEBIT, points),
               ledger.Line(redeemed_id, reward.unit_id, ledger.Side.CREDIT, points)),
        source_type="redemption", source_id=row["id"],
        entry_key=f"redemption:{row['id']}", actor=actor, entry_id=row["entry_id"])
    if deferred:
        # Final (its refusals raised in the database, COMMIT sent before the answers are
        # read) unless the posting tracks lots, which are written after its answer.
        # Inside a commit group (no COMMIT of its own to send early) a refusal raised by the
        # database would abort the group's transaction: not final there either.
        final = (_keeps_no_lots(reward.unit_expiry_policy)
                 and bool(session.info.get(OWNS_COMMIT)))
        last_write(session, lambda: _send_approved(session, tenant_id, reward, quantity, row,
                                                   entry, final=final),
                   refused=(lambda reason, detail: _refusal(reward, entry, reason, detail))
                   if final else None)
        return row
    with pipelined(session):
        statements.insert_redemption(session, row)
        outbox.emit(session, tenant_id, "reward.redeemed", _payload(row))
        posted = ledger.post_entry_sent(session, tenant_id, entry)
    # Read once the pipeline has ended: the posting's lots (a unit that expires) are written
    # by ORM statements, which get no rows inside a psycopg pipeline.
    result = posted()
    if result.entry_id != row["entry_id"]:  # the entry key is new, so never in practice
        row["entry_id"] = result.entry_id
        session.execute(update(Redemption).where(
            Redemption.tenant_id == tenant_id, Redemption.id == row["id"])
            .values(entry_id=result.entry_id).execution_options(synchronize_session=False))
    return row


def _keeps_no_lots(policy: dict[str, Any] | None) -> bool:
    """Whether a wallet of a unit with this expiry policy keeps no lots (the condition of
    ``ledger_post_one``'s ``lots``: the policy's kind is missing or ``never``)."""
    return (policy or {}).get("kind") in (None, "never")


def _refusal(reward: Any, entry: ledger.EntryRequest, reason: str,
             detail: str) -> Exception | None:
    """The error of a final redemption's refusal raised in the database."""
    if reason == statements.OUT_OF_STOCK and detail == reward.id:
        return OutOfStock(f"reward {reward.code} is out of stock", field="quantity")
    if reason == "exists":  # the entry key is new: never in practice
        return Conflict("the redemption's ledger entry exists already", field="reward_id")
    return ledger.refusal(entry, reason, detail)


def _send_approved(session: Session, tenant_id: str, reward: Any, quantity: int,
                   row: dict[str, Any], entry: ledger.EntryRequest, *,
                   final: bool = False) -> Callable[[], None]:
    """Send an approved-at-once redemption's writes in the lock order of every redemption
    path (the reward's stock, then the ledger); returns the check of their answers.
    ``final``: every refusal is raised in the database (see ``kit.placement.last_write``)."""
    stock = (statements.send_take_stock(session, tenant_id, reward.id, quantity, final=final)
             if reward.stock is not None else None)
    statements.insert_redemption(session, row)
    outbox.emit(session, tenant_id, "reward.redeemed", _payload(row))
    posted = (ledger.post_entry_final if final else ledger.post_entry_sent)(
        session, tenant_id, entry)

    def check() -> None:
        if stock is not None:
            if not stock():
                raise OutOfStock(f"reward {reward.code} is out of stock", field="quantity")
            _expire_stock(session, tenant_id, reward.id)
        if posted().entry_id != row["entry_id"]:  # the entry key is new: never in practice
            raise Conflict("the redemption's ledger entry exists already", field="reward_id")

    return check


def _expire_stock(session: Session, tenant_id: str, reward_id: str) -> None:
    loaded = session.identity_map.get(identity_key(Reward, (tenant_id, reward_id)))
    if loaded is not None:  # a Reward this session holds reads its new stock
        session.expire(loaded, ["stock"])


def _payload(row: Redemption | dict[str, Any]) -> dict[str, Any]:
    """The event payload of a redemption (an ORM row or its column values)."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return {"redemption_id": get("id"), "program_id": get("program_id"),
            "reward_id": get("reward_id"), "account_id": get("account_id"),
            "quantity": get("quantity"), "points": get("points"), "status": get("status")}


def get_redemption(session: Session, tenant_id: str, redemption_id: str) -> Redemption:
    row = session.get(Redemption, (tenant_id, redemption_id))
    if row is None:
        raise RedemptionNotFound(f"redemption {redemption_id} not found",
                                 field="redemption_id")
    return row


def list_redemptions(session: Session, tenant_id: str, program_id: str, *,
                     status: str | None = None, account_id: str | None = None,
                     limit: int = 50, after: str | None = None) -> list[Redemption]:
    tenants.get_program(session, tenant_id, program_id)  # another tenant's program: not found
    query = select(Redemption).where(Redemption.tenant_id == tenant_id,
                                     Redemption.program_id == program_id)
    if status is not None:
        query = query.where(Redemption.status == status)
    if account_id is not None:
        query = query.where(Redemption.account_id == account_id)
    if after:
        query = query.where(Redemption.id > after)
    return list(session.scalars(query.order_by(Redemption.id).limit(limit + 1)))


def lock_redemption(session: Session, tenant_id: str, redemption_id: str) -> Redemption:
    """The redemption, locked and read afresh (``404`` when the tenant has none of that id)."""
    row = session.scalars(
        select(Redemption).where(Redemption.tenant_id == tenant_id,
                                 Redemption.id == redemption_id)
        .with_for_update().execution_options(populate_existing=True)).first()
    if row is None:
        raise RedemptionNotFound(f"redemption {redemption_id} not found",
                                 field="redemption_id")
    return row


def _locked(session: Session, tenant_id: str, redemption_id: str, target: str) -> Redemption:
    row = lock_redemption(session, tenant_id, redemption_id)
    if not domain.may_move(row.status, target):
        raise InvalidTransition(f"a {row.status} redemption cannot become {target}",
                                field="status")
    return row


def _decided(session: Session, tenant_id: str, row: Redemption, before: str, actor: str,
             reason: str | None) -> None:
    row.decided_at = clock.now()
    row.decided_by = actor
    if reason is not None:
        row.reason = reason
    session.flush()
    audit.record(session, tenant_id, actor=actor, action=f"redemption.{row.status}",
                 object_type="redemption", object_id=row.id, before={"status": before},
                 after=_payload(row))
    outbox.emit(session, tenant_id, f"redemption.{row.status}", _payload(row))


def approve(session: Session, tenant_id: str, redemption_id: str, *,
            actor: str) -> Redemption:
    row = _locked(session, tenant_id, redemption_id, "approved")
    assert row.hold_id is not None  # a requested redemption always holds its points
    hold = ledger.post_hold(session, tenant_id, row.hold_id, actor=actor)
    row.entry_id = hold.resolved_entry_id
    row.status = "approved"
    _decided(session, tenant_id, row, "requested", actor, None)
    return row


def _refund(session: Session, tenant_id: str, row: Redemption, target: str, actor: str,
            reason: str | None) -> Redemption:
    before = row.status
    # Stock first: the reward row is always locked before ledger accounts.
    _give_back_stock(session, tenant_id, row.reward_id, row.quantity)
    if row.entry_id is not None:
        result = ledger.reverse_entry(
            session, tenant_id, row.entry_id, entry_key=f"redemption-refund:{row.id}",
            actor=actor, source_type="redemption", source_id=row.id,
            memo=reason or f"redemption {target}")
        row.reversal_entry_id = result.entry_id
    elif row.hold_id is not None:
        ledger.void_hold(session, tenant_id, row.hold_id, actor=actor)
    session.execute(update(RewardCode).where(
        RewardCode.tenant_id == tenant_id, RewardCode.redemption_id == row.id)
        .values(redemption_id=None).execution_options(synchronize_session=False))
    row.status = target
    _decided(session, tenant_id, row, before, actor, reason)
    return row


def reject(session: Session, tenant_id: str, redemption_id: str, *, actor: str,
           reason: str | None = None) -> Redemption:
    row = _locked(session, tenant_id, redemption_id, "rejected")
    return _refund(session, tenant_id, row, "rejected", actor, reason)


def cancel(session: Session, tenant_id: str, redemption_id: str, *, actor: str,
           reason: str | None = None) -> Redemption:
    row = _locked(session, tenant_id, redemption_id, "cancelled")
    return _refund(session, tenant_id, row, "cancelled", actor, reason)


def fulfil(session: Session, tenant_id: str, redemption_id: str, *, actor: str,
           shipping: dict[str, Any] | None = None) -> Redemption:
    """Deliver an approved redemption: an e-gift takes a code from the pool, a coupon gets a
    fresh unique code, a physical gift records its shipping status."""
    row = _locked(session, tenant_id, redemption_id, "fulfilled")
    reward = get_reward(session, tenant_id, row.reward_id)
    now = clock.now()
    if reward.kind == "egift":
        row.code = codes.take_code(session, tenant_id, reward, row.id)
    elif reward.kind == "coupon":
        row.code = codes.new_coupon(session, tenant_id)
    if reward.kind in CODED and reward.code_valid_days is not None:
        row.code_expires_at = now + timedelta(days=reward.code_valid_days)
    if shipping:
        row.shipping = {**(row.shipping or {}), **shipping}
    row.status = "fulfilled"
    row.fulfilled_at = now
    session.flush()
    audit.record(session, tenant_id, actor=actor, action="redemption.fulfilled",
                 object_type="redemption", object_id=row.id, before={"status": "approved"},
                 after=_payload(row))
    outbox.emit(session, tenant_id, "redemption.fulfilled", _payload(row))
    return row
