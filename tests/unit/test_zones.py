"""kit.zones: the offset intervals agree with zoneinfo at random instants and around every
offset change of 1970–2100; day_start is the first instant of a local day."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from allegiance.kit import zones

ZONES = ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe",
         "Africa/Casablanca", "America/Santiago", "Pacific/Apia"]


@pytest.mark.parametrize("zone", ZONES)
def test_intervals_agree_with_zoneinfo(zone: str) -> None:
    info = ZoneInfo(zone)
    rng = random.Random(zone)
    spans = zones.intervals(zone)
    assert spans[0][0] == zones.BEFORE and spans[-1][1] == zones.AFTER
    assert all(a[1] == b[0] for a, b in pairwise(spans))
    moments = [zones.FIRST + timedelta(seconds=rng.randrange(130 * 365 * 86400))
               for _ in range(3000)]
    moments += [start + timedelta(seconds=d) for start, _, _ in spans[1:] for d in (-1, 0)]
    for moment in moments:
        assert zones.local_day(zone, moment) == moment.astimezone(info).date(), moment
        assert zones.offset_at(zone, moment) == moment.astimezone(info).utcoffset().total_seconds()


@pytest.mark.parametrize("zone", ZONES)
def test_day_start_is_the_first_instant_of_the_local_day(zone: str) -> None:
    day = date(2024, 1, 1)
    for _ in range(400):
        start = zones.day_start(zone, day)
        assert zones.local_day(zone, start) == day
        assert zones.local_day(zone, start - timedelta(microseconds=1)) < day
        day += timedelta(days=1)
    assert zones.day_start("UTC", date(2026, 3, 1)) == datetime(2026, 3, 1, tzinfo=UTC)
