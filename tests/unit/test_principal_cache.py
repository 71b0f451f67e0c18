"""``kit.auth.PrincipalCache``: a checked API key is trusted for ``ttl`` seconds, never past
the key's own expiry, and never after the key changed (revocation, rotation) in this process;
a check that read the key before the change is not kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from allegiance.kit.auth import Principal, PrincipalCache

ALICE = Principal("ten_1", "key_1", ("integration",))
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_an_entry_is_served_until_its_ttl() -> None:
    clock = Clock()
    cache = PrincipalCache(5.0, now=clock)
    cache.put("d1", ALICE, cache.started(), None)
    assert cache.get("d1", NOW) == ALICE
    clock.t += 4.9
    assert cache.get("d1", NOW) == ALICE
    clock.t += 0.2
    assert cache.get("d1", NOW) is None
    assert cache.get("unknown", NOW) is None


def test_an_entry_never_outlives_the_key() -> None:
    cache = PrincipalCache(5.0, now=Clock())
    cache.put("d1", ALICE, cache.started(), NOW + timedelta(seconds=1))
    assert cache.get("d1", NOW) == ALICE
    assert cache.get("d1", NOW + timedelta(seconds=1)) is None


def test_a_change_of_the_key_drops_its_entries_at_once() -> None:
    clock = Clock()
    cache = PrincipalCache(5.0, now=clock)
    other = Principal("ten_1", "key_2", ("read",))
    cache.put("d1", ALICE, cache.started(), None)
    cache.put("d2", other, cache.started(), None)
    clock.t += 0.001
    cache.changed("key_1")
    assert cache.get("d1", NOW) is None
    assert cache.get("d2", NOW) == other


def test_a_check_that_read_the_key_before_the_change_is_not_kept() -> None:
    clock = Clock()
    cache = PrincipalCache(5.0, now=clock)
    started = cache.started()  # a request starts reading the key ...
    clock.t += 0.001
    cache.changed("key_1")  # ... the key is revoked meanwhile ...
    clock.t += 0.001
    cache.put("d1", ALICE, started, None)  # ... and its (stale) answer must not be cached
    assert cache.get("d1", NOW) is None
    later = cache.started()
    cache.put("d1", ALICE, later, None)  # a check after the change is kept
    assert cache.get("d1", NOW) == ALICE


def test_ttl_zero_caches_nothing() -> None:
    cache = PrincipalCache(0.0, now=Clock())
    cache.put("d1", ALICE, cache.started(), None)
    assert cache.get("d1", NOW) is None
