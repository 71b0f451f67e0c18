"""Pure engagement logic: period indices in a time zone, what an event contributes to a
challenge, streaks and completions from per-period totals, leaderboard ranking and NPS.

Challenge progress is kept as one total per period (an integer index of the day, ISO week,
month, quarter or year in the program's time zone). Everything else is a function of those
totals, so the result does not depend on the order events arrive in: a late event that fills a
gap joins two runs, and the completions computed from the totals only ever grow.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "quarter", "year", "all")
METRICS = ("count", "amount", "quantity")
RANKINGS = ("competition", "dense")

# Monday 2001-01-01 has ordinal 730486; weeks are counted from a Monday so that
# (ordinal - MONDAY) // 7 is the index of the ISO week.
_MONDAY = date(2001, 1, 1).toordinal()


def period_index(period: str, at: datetime, time_zone: str) -> int:
    """The index of the period holding ``at`` in ``time_zone``; consecutive periods have
    consecutive indices (so a streak is a run of consecutive indices). ``all`` is one period."""
    if period == "all":
        return 0
    local = at.astimezone(ZoneInfo(time_zone)).date()
    if period == "day":
        return local.toordinal()
    if period == "week":
        return (local.toordinal() - _MONDAY) // 7
    if period == "month":
        return local.year * 12 + local.month - 1
    if period == "quarter":
        return local.year * 4 + (local.month - 1) // 3
    if period == "year":
        return local.year
    raise ValueError(f"unknown period {period!r}")


def period_of_day(period: str, day: int) -> int:
    """The index of the period holding local day ordinal ``day`` (as :func:`period_index`)."""
    if period == "all":
        return 0
    if period == "day":
        return day
    if period == "week":
        return (day - _MONDAY) // 7
    local = date.fromordinal(day)
    if period == "month":
        return local.year * 12 + local.month - 1
    if period == "quarter":
        return local.year * 4 + (local.month - 1) // 3
    if period == "year":
        return local.year
    raise ValueError(f"unknown period {period!r}")


def period_start(period: str, index: int) -> date:
    """The first local day of period ``index`` (``all`` has none: date.min)."""
    if period == "all":
        return date.min
    if period == "day":
        return date.fromordinal(index)
    if period == "week":
        return date.fromordinal(_MONDAY + index * 7)
    if period == "month":
        return date(index // 12, index % 12 + 1, 1)
    if period == "quarter":
        return date(index // 4, (index % 4) * 3 + 1, 1)
    if period == "year":
        return date(index, 1, 1)
    raise ValueError(f"unknown period {period!r}")


def period_bounds(period: str, index: int, time_zone: str) -> tuple[datetime, datetime] | None:
    """[start, end) of period ``index`` as UTC instants (None for ``all``)."""
    if period == "all":
        return None
    zone = ZoneInfo(time_zone)
    start = period_start(period, index)
    end = period_start(period, index + 1)
    return (datetime.combine(start, time(), zone).astimezone(UTC),
            datetime.combine(end, time(), zone).astimezone(UTC))


def period_label(period: str, index: int) -> str:
    """A readable key: 2026-03-07, 2026-W10, 2026-03, 2026-Q1, 2026 or all."""
    if period == "all":
        return "all"
    start = period_start(period, index)
    if period == "day":
        return start.isoformat()
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "month":
        return f"{start.year:04d}-{start.month:02d}"
    if period == "quarter":
        return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year:04d}"


# --- what an event contributes ---------------------------------------------------------------


@dataclass(frozen=True)
class LineFact:
    sku: str | None
    category: str | None
    quantity: int
    amount: int


@dataclass(frozen=True)
class Occurrence:
    """An ingested event as challenges see it."""

    event_id: str
    program_id: str
    account_id: str
    kind: str
    activity_type: str | None
    occurred_at: datetime
    amount: int
    quantity: int
    lines: tuple[LineFact, ...] = ()
    product_lists: Mapping[str, frozenset[str]] = field(default_factory=dict)
    points: int = 0
    badges: tuple[str, ...] = ()  # codes of the badge effects the rules awarded
    attributes: Mapping[str, object] = field(default_factory=dict)  # an activity's attributes
    user_id: str | None = None
    returned: bool = False  # a purchase given back in full (it no longer counts)


@dataclass(frozen=True)
class ChallengeSpec:
    """What a challenge counts: events of ``trigger`` (``purchase``, ``activity`` or
    ``activity:<type>``), by ``metric`` (count, amount or quantity), optionally only the lines
    of a product list or a category; ``target`` per ``period``, ``streak`` periods in a row."""

    trigger: str
    metric: str
    target: int
    period: str
    streak: int = 1
    product_list: str | None = None
    category: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


def triggered(trigger: str, kind: str, activity_type: str | None) -> bool:
    if trigger == kind:
        return True
    return kind == "activity" and trigger == f"activity:{activity_type}"


def contribution(spec: ChallengeSpec, event: Occurrence) -> int:
    """What ``event`` adds to the total of its period (0 if it does not count)."""
    if not triggered(spec.trigger, event.kind, event.activity_type):
        return 0
    if spec.starts_at is not None and event.occurred_at < spec.starts_at:
        return 0
    if spec.ends_at is not None and event.occurred_at >= spec.ends_at:
        return 0
    if event.returned:
        return 0
    if spec.product_list is None and spec.category is None:
        if spec.metric == "count":
            return 1
        return event.amount if spec.metric == "amount" else event.quantity
    skus = event.product_lists.get(spec.product_list or "", frozenset())
    lines = [line for line in event.lines if (line.quantity > 0 or line.amount > 0)
             and (spec.product_list is None or (line.sku is not None and line.sku in skus))
             and (spec.category is None or line.category == spec.category)]
    if not lines:
        return 0
    if spec.metric == "count":
        return 1
    if spec.metric == "amount":
        return sum(line.amount for line in lines)
    return sum(line.quantity for line in lines)


# --- streaks and completions -----------------------------------------------------------------


def runs(totals: Mapping[int, int], target: int) -> list[tuple[int, int]]:
    """Maximal runs of consecutive periods that met ``target``, as (first, last) indices."""
    met = sorted(index for index, value in totals.items() if value >= target)
    out: list[tuple[int, int]] = []
    for index in met:
        if out and out[-1][1] == index - 1:
            out[-1] = (out[-1][0], index)
        else:
            out.append((index, index))
    return out


def completions(totals: Mapping[int, int], target: int, streak: int) -> list[int]:
    """The period indices at which a completion happened, oldest first: each run of ``L``
    consecutive met periods gives ``L // streak`` completions (the streak restarts after each
    one), so 8 months in a row of a "4 months in a row" challenge completes it twice."""
    out: list[int] = []
    for first, last in runs(totals, target):
        length = last - first + 1
        out.extend(first + streak * (n + 1) - 1 for n in range(length // streak))
    return out


def settle(live: int, totals: Mapping[int, int], target: int, streak: int,
           cap: int | None) -> tuple[list[int], int]:
    """Bring ``live`` completions in line with the totals: (period indices of the completions
    to add, how many of the latest live ones to undo). Events only add (a late one may fill a
    gap); a return may take a period below its target, and with it the completions the
    totals no longer hold."""
    ends = completions(totals, target, streak)
    allowed = len(ends) if cap is None else min(len(ends), cap)
    if allowed >= live:
        return ends[live:allowed], 0
    return [], live - allowed


def current_streak(totals: Mapping[int, int], target: int, streak: int, now_index: int) -> int:
    """Periods met in a row toward the next completion, as of the period ``now_index``.

    The run must end in the current period or the one before (the current period may still be
    met); a run that ended earlier is broken and counts 0. Periods already used by a completion
    do not count again."""
    for first, last in runs(totals, target):
        if last in (now_index, now_index - 1):
            return (last - first + 1) % streak
    return 0


# --- leaderboards ----------------------------------------------------------------------------


def rank(scores: Sequence[tuple[str, int]], method: str = "competition") -> list[tuple[str, int, int]]:
    """(who, score, rank), best first; ties share a rank. ``competition`` ranking skips after a
    tie (1, 1, 3), ``dense`` does not (1, 1, 2). Equal scores are ordered by ``who``."""
    if method not in RANKINGS:
        raise ValueError(f"unknown ranking {method!r}")
    ordered = sorted(scores, key=lambda item: (-item[1], item[0]))
    out: list[tuple[str, int, int]] = []
    previous: int | None = None
    current = 0
    for position, (who, score) in enumerate(ordered, start=1):
        if score != previous:
            current = position if method == "competition" else current + 1
            previous = score
        out.append((who, score, current))
    return out


# --- surveys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpsResult:
    responses: int
    promoters: int
    passives: int
    detractors: int

    @property
    def score(self) -> int | None:
        """Net promoter score, -100..100, rounded half away from zero (None without answers)."""
        if not self.responses:
            return None
        value = 100 * (self.promoters - self.detractors)
        whole, rest = divmod(abs(value), self.responses)
        if 2 * rest >= self.responses:
            whole += 1
        return whole if value >= 0 else -whole


def nps(scores: Iterable[int]) -> NpsResult:
    """Promoters answer 9–10, passives 7–8, detractors 0–6."""
    promoters = passives = detractors = 0
    for score in scores:
        if not 0 <= score <= 10:
            raise ValueError("an NPS answer is 0 to 10")
        if score >= 9:
            promoters += 1
        elif score >= 7:
            passives += 1
        else:
            detractors += 1
    return NpsResult(promoters + passives + detractors, promoters, passives, detractors)


def check_answers(questions: Sequence[Mapping[str, object]],
                  answers: Mapping[str, object]) -> tuple[str, str] | None:
    """(field, message) of the first answer that does not fit its question, else None."""
    known = {str(q["code"]): q for q in questions}
    for code in answers:
        if code not in known:
            return f"answers.{code}", "is not a question of this survey"
    for code, question in known.items():
        value = answers.get(code)
        path = f"answers.{code}"
        if value is None:
            if question.get("required", True):
                return path, "is required"
            continue
        kind = question["kind"]
        if kind in ("nps", "scale"):
            low, high = (0, 10) if kind == "nps" else (int(str(question.get("min", 1))),
                                                        int(str(question.get("max", 5))))
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                return path, f"must be a whole number from {low} to {high}"
        elif kind == "choice":
            options = question.get("options") or []
            if value not in options:  # type: ignore[operator]
                return path, "must be one of the options"
        elif kind == "text":
            if not isinstance(value, str) or len(value) > 2000:
                return path, "must be text of at most 2000 characters"
        else:
            return path, f"unknown question kind {kind}"
    return None


def draw_order(account_ids: Sequence[str], seed: str) -> list[str]:
    """The order in which a lottery's entrants are drawn: a shuffle of the sorted ids by a
    generator seeded with ``seed`` — the same entries and seed always give the same order, so a
    draw can be checked afterwards."""
    order = sorted(set(account_ids))
    random.Random(seed).shuffle(order)
    return order
