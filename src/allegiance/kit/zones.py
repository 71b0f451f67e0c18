"""UTC offsets of IANA time zones as intervals, kept in the database (``zone_offset``) so SQL on
both engines can turn an instant into a program's local day (SQLite has no tz database).

An interval is ``[starts_at, ends_at)`` of UTC instants with one offset. They are generated
from ``zoneinfo`` for 1970–2100 (:data:`FIRST`, :data:`LAST`); before 1970 the zone's 1970
offset holds, after 2100 its 2100 one. :func:`local_day` is the definition the summaries and
reports share: the date of ``instant + offset`` where the offset is the one of the interval
containing the instant.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from allegiance.kit.models import ZoneOffset

FIRST = datetime(1970, 1, 1, tzinfo=UTC)
LAST = datetime(2100, 1, 1, tzinfo=UTC)
# The open ends of the first and last interval.
BEFORE = datetime(1900, 1, 1, tzinfo=UTC)
AFTER = datetime(9999, 12, 31, tzinfo=UTC)
_STEP = 3 * 86400  # offsets are sampled every 3 days, then each change is found to the second

Interval = tuple[datetime, datetime, int]


def _offset(zone: ZoneInfo, seconds: int) -> int:
    moment = datetime.fromtimestamp(seconds, UTC).astimezone(zone)
    offset = moment.utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


@lru_cache(maxsize=256)
def intervals(name: str) -> tuple[Interval, ...]:
    """The zone's intervals of constant UTC offset, in order, covering every instant."""
    zone = ZoneInfo(name)
    start, stop = int(FIRST.timestamp()), int(LAST.timestamp())
    changes: list[tuple[int, int]] = []
    current = _offset(zone, start)
    before = start
    at = start
    while at < stop:
        at = min(at + _STEP, stop)
        offset = _offset(zone, at)
        if offset == current:
            before = at
            continue
        low, high = before, at  # offset(low) == current != offset(high)
        while high - low > 1:
            middle = (low + high) // 2
            if _offset(zone, middle) == current:
                low = middle
            else:
                high = middle
        current = _offset(zone, high)
        changes.append((high, current))
        before = at = high
    out: list[Interval] = []
    begin, offset = BEFORE, _offset(zone, start)
    for second, new in changes:
        moment = datetime.fromtimestamp(second, UTC)
        out.append((begin, moment, offset))
        begin, offset = moment, new
    out.append((begin, AFTER, offset))
    return tuple(out)


@lru_cache(maxsize=256)
def _starts(name: str) -> tuple[datetime, ...]:
    return tuple(start for start, _, _ in intervals(name))


def offset_at(name: str, moment: datetime) -> int:
    """The zone's UTC offset (seconds) at ``moment`` by its intervals."""
    index = bisect_right(_starts(name), moment.astimezone(UTC)) - 1
    return intervals(name)[max(index, 0)][2]


def local_day(name: str, moment: datetime) -> date:
    """The date of ``moment`` in the zone (by its intervals)."""
    utc = moment.astimezone(UTC)
    return (utc + timedelta(seconds=offset_at(name, utc))).date()


def day_start(name: str, day: date) -> datetime:
    """The first UTC instant whose local day (:func:`local_day`) is ``day`` or later."""
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    window = (midnight - timedelta(days=2), midnight + timedelta(days=2))
    candidates = [start for start, _, _ in intervals(name) if window[0] <= start <= window[1]]
    candidates += [midnight - timedelta(seconds=offset) for start, end, offset in intervals(name)
                   if start <= window[1] and end >= window[0]]
    return min(c for c in candidates if local_day(name, c) >= day)


def ensure(session: Session, name: str) -> None:
    """Store the zone's intervals unless they are there (before a program uses the zone); a
    concurrent transaction storing the same rows does not make this one fail."""
    if session.execute(select(func.count()).select_from(ZoneOffset)
                       .where(ZoneOffset.zone == name)).scalar_one():
        return
    dialect = session.get_bind().dialect.name
    statement = (postgresql.insert(ZoneOffset) if dialect == "postgresql"
                 else sqlite.insert(ZoneOffset)).on_conflict_do_nothing()
    session.execute(statement, rows(name))


def rows(name: str) -> list[dict[str, object]]:
    return [{"zone": name, "starts_at": start, "ends_at": end, "offset_seconds": offset}
            for start, end, offset in intervals(name)]
