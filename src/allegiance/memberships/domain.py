"""Pure membership logic: the life of a subscription to a paid plan (trial, active, grace,
lapsed, cancelled) as a function of its dates and the clock, and which perks an account may
use.

A subscription is paid up to ``paid_until`` (None: a one-time fee, paid for good). Past it the
member has ``grace_days`` to pay the renewal while keeping the perks; after that the
subscription has lapsed. A trial is paid up to its end by nobody: at its end the first fee is
due, with the same grace. A cancellation takes effect at once or at the end of the paid period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

BILLINGS = ("one_time", "monthly", "yearly")
STATUSES = ("trial", "active", "grace", "lapsed", "cancelled")
LIVE = ("trial", "active", "grace")  # the statuses whose perks are usable


def add_months(at: datetime, months: int) -> datetime:
    """``at`` plus whole months, clamped to the month's last day (31 Jan + 1 month = 28/29
    Feb)."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    day = at.day
    while True:
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def next_period_end(billing: str, start: datetime,
                    anchor_day: int | None = None) -> datetime | None:
    """The end of a paid period starting at ``start`` (None for a one-time fee).

    ``anchor_day`` is the day of the month the first paid period started on: a period that
    starts on a month's last day because the anchor did not fit (31 Jan → 28 Feb) ends back on
    the anchor where it fits (28 Feb → 31 Mar)."""
    if billing == "one_time":
        return None
    end = add_months(start, 1 if billing == "monthly" else 12)
    if anchor_day is not None and anchor_day > start.day \
            and (start + timedelta(days=1)).month != start.month:
        for day in range(anchor_day, 0, -1):
            try:
                return end.replace(day=day)
            except ValueError:
                continue
    return end


@dataclass(frozen=True)
class Terms:
    billing: str
    trial_days: int
    grace_days: int


@dataclass(frozen=True)
class Dates:
    started_at: datetime
    trial_ends_at: datetime | None
    paid_until: datetime | None
    paid: bool  # at least one fee recorded
    anchor_day: int | None  # day of the month the first paid period started
    cancel_at: datetime | None  # cancellation takes effect then
    cancelled_at: datetime | None  # cancellation recorded then


@dataclass(frozen=True)
class State:
    status: str
    until: datetime | None  # when the status changes next, if nothing happens (None: never)


def _lapses_at(terms: Terms, dates: Dates) -> datetime | None:
    """When the subscription lapses if nothing more is paid (None: never)."""
    if dates.paid:
        return None if dates.paid_until is None else \
            dates.paid_until + timedelta(days=terms.grace_days)
    return (dates.trial_ends_at or dates.started_at) + timedelta(days=terms.grace_days)


def state_at(terms: Terms, dates: Dates, now: datetime) -> State:
    """The status of a subscription at ``now``. Lapsed and cancelled are final: whichever
    came first stays."""
    lapses = _lapses_at(terms, dates)
    if dates.cancel_at is not None and now >= dates.cancel_at and (
            lapses is None or dates.cancel_at <= lapses):
        return State("cancelled", None)
    cut = dates.cancel_at
    if not dates.paid:
        ends = dates.trial_ends_at or dates.started_at
        if now < ends:
            return State("trial", min(ends, cut) if cut else ends)
        grace_end = ends + timedelta(days=terms.grace_days)
        if now < grace_end:
            return State("grace", min(grace_end, cut) if cut else grace_end)
        return State("lapsed", None)
    if dates.paid_until is None:
        return State("active", cut)
    if now < dates.paid_until:
        return State("active", min(dates.paid_until, cut) if cut else dates.paid_until)
    grace_end = dates.paid_until + timedelta(days=terms.grace_days)
    if now < grace_end:
        return State("grace", min(grace_end, cut) if cut else grace_end)
    return State("lapsed", None)


def live_until(terms: Terms, dates: Dates) -> datetime | None:
    """When the subscription stops being live if nothing more is paid (None: never)."""
    ends = _lapses_at(terms, dates)
    if dates.cancel_at is not None:
        return dates.cancel_at if ends is None else min(ends, dates.cancel_at)
    return ends


def renewal_period(terms: Terms, dates: Dates, now: datetime) -> tuple[datetime, datetime | None]:
    """The period a fee recorded at ``now`` pays for: from the end of what is paid (or of the
    trial) when the subscription is still live, else from ``now``. Raises ValueError when no
    fee can be recorded (cancelled, lapsed or a one-time fee already paid)."""
    status = state_at(terms, dates, now).status
    if status in ("cancelled", "lapsed"):
        raise ValueError(f"the subscription is {status}: subscribe again")
    if dates.paid and dates.paid_until is None:
        raise ValueError("a one-time fee is paid for good")
    start: datetime = now
    if dates.paid and dates.paid_until is not None:
        start = dates.paid_until
    elif status == "trial" and dates.trial_ends_at is not None:
        start = dates.trial_ends_at
    return start, next_period_end(terms.billing, start, dates.anchor_day)


# --- perks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerkRule:
    code: str
    plans: frozenset[str]
    tiers: frozenset[str]


@dataclass(frozen=True)
class PerkAnswer:
    code: str
    allowed: bool
    reason: str
    until: datetime | None


def perk_answer(perk: PerkRule, live_plans: Iterable[tuple[str, datetime | None]],
                levels: Iterable[str]) -> PerkAnswer:
    """May the account use ``perk`` now? ``live_plans`` are (plan code, live until) of its live
    subscriptions, ``levels`` its current tier levels. A plan gives the longest-lasting answer;
    a tier level holds until the tier changes (until None)."""
    by_plan = [(code, until) for code, until in live_plans if code in perk.plans]
    held = sorted(set(levels) & perk.tiers)
    if held:
        return PerkAnswer(perk.code, True, f"tier level {held[0]}", None)
    if by_plan:
        code, until = max(by_plan, key=lambda item: (item[1] is None, item[1] or datetime.min))
        return PerkAnswer(perk.code, True, f"plan {code}", until)
    needs = [f"plan {p}" for p in sorted(perk.plans)] + [f"tier level {t}"
                                                         for t in sorted(perk.tiers)]
    return PerkAnswer(perk.code, False, "needs " + (" or ".join(needs) or "nothing it has"),
                      None)


# Custom requests (an item outside the catalogue, priced by the account's manager):
# status -> the statuses it may move to.
REQUEST_TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"quoted", "declined", "cancelled"}),
    "quoted": frozenset({"quoted", "accepted", "declined", "cancelled"}),
    "accepted": frozenset({"fulfilled", "cancelled"}),
    "fulfilled": frozenset(),
    "declined": frozenset(),
    "cancelled": frozenset(),
}


def request_may_move(current: str, target: str) -> bool:
    return target in REQUEST_TRANSITIONS.get(current, frozenset())
