"""Volume rebates through the ledger.

While a period runs, each member's rebate is accrued as a *pending* hold (program account
``rebate:<code>`` → the member's money wallet) sized to the whole period's volume at the
bracket reached so far; each run replaces the hold when the amount changes. When the period
ends the true-up voids the hold and posts the final amount. Returns after the true-up claw
back the difference by a partial reversal of that entry (a member who already spent it owes
the rest, visibly, in the ledger's receivable).

Cashback at a rate per product or category, per-item cashback and monthly caps are rule
effects (``percent`` / ``fixed`` on a money unit with ``limits``), earned by the events
feature like points.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit, events, ledger, members, tenants
from allegiance.cashback import domain
from allegiance.cashback.errors import DuplicateSchedule, InvalidSchedule, ScheduleNotFound
from allegiance.cashback.models import RebateAccrual, RebateSchedule
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique, is_unique_violation
from allegiance.kit.ids import new_id


def create_schedule(session: Session, tenant_id: str, program_id: str, *, code: str,
                    name: str, unit_id: str, period: str, brackets: list[dict[str, object]],
                    categories: list[str] | None = None, clawback_days: int = 90,
                    actor: str) -> RebateSchedule:
    tenants.get_program(session, tenant_id, program_id)
    unit = tenants.get_unit(session, tenant_id, unit_id)
    if unit.program_id != program_id or unit.kind != "money":
        raise InvalidSchedule("rebates are paid in a money unit of the program",
                              field="unit_id")
    if period not in domain.PERIODS:
        raise InvalidSchedule(f"period must be one of {', '.join(domain.PERIODS)}",
                              field="period")
    try:
        domain.parse_rebate_brackets(brackets)
    except domain.ScheduleError as exc:
        raise InvalidSchedule(str(exc), field=exc.field) from exc
    if clawback_days < 0:
        raise InvalidSchedule("clawback_days must not be negative", field="clawback_days")
    row = RebateSchedule(tenant_id=tenant_id, id=new_id("rbs"), program_id=program_id,
                         code=code, name=name, unit_id=unit_id, period=period,
                         brackets=list(brackets), categories=list(categories or []),
                         clawback_days=clawback_days, active=True, created_at=clock.now())
    add_unique(session, row, DuplicateSchedule(f"rebate schedule {code} exists", field="code"))
    audit.record(session, tenant_id, actor=actor, action="rebate_schedule.create",
                 object_type="rebate_schedule", object_id=row.id,
                 after={"code": code, "period": period, "brackets": list(brackets)})
    return row


def get_schedule(session: Session, tenant_id: str, schedule_id: str) -> RebateSchedule:
    row = session.get(RebateSchedule, (tenant_id, schedule_id))
    if row is None:
        raise ScheduleNotFound(f"rebate schedule {schedule_id} not found",
                               field="schedule_id")
    return row


def _accrual(session: Session, schedule: RebateSchedule, account_id: str, start: datetime,
             end: datetime) -> RebateAccrual:
    tenant_id = schedule.tenant_id
    query = select(RebateAccrual).where(
        RebateAccrual.tenant_id == tenant_id, RebateAccrual.schedule_id == schedule.id,
        RebateAccrual.account_id == account_id, RebateAccrual.period_start == start)
    found = session.scalars(query.with_for_update()).first()
    if found is not None:
        return found
    members.get_account(session, tenant_id, account_id)
    row = RebateAccrual(tenant_id=tenant_id, id=new_id("rba"), schedule_id=schedule.id,
                        account_id=account_id, period_start=start, period_end=end, volume=0,
                        amount=0, clawed_back=0, status="open", revision=0, hold_id=None,
                        entry_id=None, updated_at=clock.now(), settled_at=None)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        found = session.scalars(query.with_for_update()).first()
        if found is None:
            raise
        return found
    return row


def _source(session: Session, schedule: RebateSchedule) -> str:
    return ledger.program_account(session, schedule.tenant_id, schedule.program_id,
                                  schedule.unit_id, f"rebate:{schedule.code}").id


def _volumes(session: Session, schedule: RebateSchedule, start: datetime,
             end: datetime) -> dict[str, int]:
    return events.purchase_volume(session, schedule.tenant_id, schedule.program_id, start, end,
                                  categories=schedule.categories or None)


def _set_pending(session: Session, schedule: RebateSchedule, row: RebateAccrual, volume: int,
                 target: int, actor: str) -> bool:
    """Make the pending hold equal ``target``. Returns whether anything changed."""
    row.volume = volume
    if target == row.amount and (target == 0 or row.hold_id is not None):
        return False
    tenant_id = schedule.tenant_id
    if row.hold_id is not None:
        ledger.void_hold(session, tenant_id, row.hold_id, actor=actor)
        row.hold_id = None
    if target > 0:
        source = _source(session, schedule)
        wallet = ledger.wallet(session, tenant_id, schedule.program_id, schedule.unit_id,
                               "account", row.account_id)
        row.revision += 1
        hold, _ = ledger.create_hold(session, tenant_id, ledger.HoldRequest(
            program_id=schedule.program_id, debit_account_id=source,
            credit_account_id=wallet.id, unit_id=schedule.unit_id, amount=target,
            kind="rebate_accrual", source_type="rebate_accrual", source_id=row.id,
            hold_key=f"rebate:{row.id}:{row.revision}",
            memo=f"{schedule.code}: accrued on {volume} of volume"))
        row.hold_id = hold.id
    row.amount = target
    row.updated_at = clock.now()
    return True


def _settle(session: Session, schedule: RebateSchedule, row: RebateAccrual, volume: int,
            target: int, actor: str) -> None:
    """True-up: the pending hold is replaced by the final amount, posted."""
    tenant_id = schedule.tenant_id
    if row.hold_id is not None:
        ledger.void_hold(session, tenant_id, row.hold_id, actor=actor)
        row.hold_id = None
    if target > 0:
        source = _source(session, schedule)
        wallet = ledger.wallet(session, tenant_id, schedule.program_id, schedule.unit_id,
                               "account", row.account_id)
        result = ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=schedule.program_id, kind="rebate", source_type="rebate_accrual",
            source_id=row.id, entry_key=f"rebate-settle:{row.id}", actor=actor,
            memo=f"{schedule.code}: {volume} of volume, "
                 f"{row.period_start.date().isoformat()} to {row.period_end.date().isoformat()}",
            lines=(ledger.Line(source, schedule.unit_id, ledger.Side.DEBIT, target),
                   ledger.Line(wallet.id, schedule.unit_id, ledger.Side.CREDIT, target))))
        row.entry_id = result.entry_id
    row.volume = volume
    row.amount = target
    row.status = "settled"
    row.settled_at = row.updated_at = clock.now()
    session.flush()
    payload = {"accrual_id": row.id, "schedule_id": schedule.id,
               "account_id": row.account_id, "volume": volume, "amount": target,
               "period_start": row.period_start.isoformat(),
               "period_end": row.period_end.isoformat()}
    audit.record(session, tenant_id, actor=actor, action="rebate.settled",
                 object_type="rebate_accrual", object_id=row.id, after=payload)
    outbox.emit(session, tenant_id, "rebate.settled", payload)


def _claw_back(session: Session, schedule: RebateSchedule, row: RebateAccrual, volume: int,
               actor: str) -> int:
    """After the true-up: a lower volume (returns) gives back the difference."""
    brackets = domain.parse_rebate_brackets(schedule.brackets)
    final = domain.rebate(brackets, volume)
    owed = row.amount - row.clawed_back - final
    if owed <= 0 or row.entry_id is None:
        return 0
    ledger.reverse_entry(session, schedule.tenant_id, row.entry_id, lines={1: owed, 2: owed},
                         entry_key=f"rebate-clawback:{row.id}:{final}", actor=actor,
                         kind="rebate_clawback",
                         memo=f"{schedule.code}: volume now {volume} after returns")
    row.clawed_back += owed
    row.volume = volume
    row.updated_at = clock.now()
    session.flush()
    audit.record(session, schedule.tenant_id, actor=actor, action="rebate.clawback",
                 object_type="rebate_accrual", object_id=row.id,
                 after={"volume": volume, "clawed_back": row.clawed_back})
    return owed


def run_schedule(session: Session, tenant_id: str, schedule_id: str, *,
                 actor: str = "job:rebates") -> dict[str, int]:
    """One pass of a schedule: accrue the running period, true up the periods that ended,
    claw back settled periods whose volume fell (within ``clawback_days``). Idempotent."""
    schedule = get_schedule(session, tenant_id, schedule_id)
    program = tenants.get_program(session, tenant_id, schedule.program_id)
    tz = program.time_zone
    brackets = domain.parse_rebate_brackets(schedule.brackets)
    now = clock.now()
    report = {"accrued": 0, "settled": 0, "clawed_back": 0}
    if not schedule.active:
        return report
    # The running period: pending accruals.
    start, end = domain.period_bounds(schedule.period, now, tz)
    for account_id, volume in sorted(_volumes(session, schedule, start, end).items()):
        row = _accrual(session, schedule, account_id, start, end)
        if _set_pending(session, schedule, row, volume, domain.rebate(brackets, volume), actor):
            report["accrued"] += 1
    # Ended periods: the previous one (even if never accrued) and any open accrual.
    ended: set[tuple[datetime, datetime]] = {domain.previous_period(schedule.period, now, tz)}
    for row_start, row_end in session.execute(
            select(RebateAccrual.period_start, RebateAccrual.period_end).where(
                RebateAccrual.tenant_id == tenant_id, RebateAccrual.schedule_id == schedule.id,
                RebateAccrual.status == "open", RebateAccrual.period_end <= now).distinct()):
        ended.add((row_start, row_end))
    for period_start, period_end in sorted(ended):
        volumes = _volumes(session, schedule, period_start, period_end)
        open_rows = {r.account_id for r in _rows(session, schedule, period_start, "open")}
        for account_id in sorted(set(volumes) | open_rows):
            row = _accrual(session, schedule, account_id, period_start, period_end)
            if row.status != "open":
                continue
            volume = volumes.get(account_id, 0)
            _settle(session, schedule, row, volume, domain.rebate(brackets, volume), actor)
            report["settled"] += 1
    # Settled periods still inside the claw-back horizon.
    horizon = now - timedelta(days=schedule.clawback_days)
    settled = [r for r in _rows(session, schedule, None, "settled")
               if r.period_end >= horizon]
    by_period: dict[tuple[datetime, datetime], list[RebateAccrual]] = {}
    for row in settled:
        by_period.setdefault((row.period_start, row.period_end), []).append(row)
    for (period_start, period_end), rows in sorted(by_period.items()):
        volumes = _volumes(session, schedule, period_start, period_end)
        for row in rows:
            if _claw_back(session, schedule, row, volumes.get(row.account_id, 0), actor):
                report["clawed_back"] += 1
    session.flush()
    return report


def _rows(session: Session, schedule: RebateSchedule, period_start: datetime | None,
          status: str) -> list[RebateAccrual]:
    query = select(RebateAccrual).where(RebateAccrual.tenant_id == schedule.tenant_id,
                                        RebateAccrual.schedule_id == schedule.id,
                                        RebateAccrual.status == status)
    if period_start is not None:
        query = query.where(RebateAccrual.period_start == period_start)
    return list(session.scalars(query.order_by(RebateAccrual.id)))


def accruals(session: Session, tenant_id: str, schedule_id: str, *,
             account_id: str | None = None) -> list[RebateAccrual]:
    get_schedule(session, tenant_id, schedule_id)
    query = select(RebateAccrual).where(RebateAccrual.tenant_id == tenant_id,
                                        RebateAccrual.schedule_id == schedule_id)
    if account_id is not None:
        query = query.where(RebateAccrual.account_id == account_id)
    return list(session.scalars(query.order_by(RebateAccrual.period_start,
                                               RebateAccrual.account_id)))


def run_all(session: Session, *, actor: str = "job:rebates") -> dict[str, int]:
    """Every active schedule of every tenant (the ``rebates`` job)."""
    total = {"schedules": 0, "accrued": 0, "settled": 0, "clawed_back": 0}
    for tenant_id, schedule_id in session.execute(
            select(RebateSchedule.tenant_id, RebateSchedule.id)
            .where(RebateSchedule.active.is_(True))
            .order_by(RebateSchedule.tenant_id, RebateSchedule.id)).all():
        report = run_schedule(session, tenant_id, schedule_id, actor=actor)
        total["schedules"] += 1
        for name, value in report.items():
            total[name] += value
    return total
