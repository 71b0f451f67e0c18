"""A refresh that fails half-way (SQLite and PostgreSQL) leaves the memberships exactly as
they were: the segments job hands its membership writes to a second thread
(``kit.writer``) while it goes on computing, in the same transaction — a write that fails, or
a failure of the computing while writes are in flight, rolls every write back, and no write
runs on after the failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from allegiance import campaigns, members
from allegiance.campaigns import memberships
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop
from tests.integration.segments_support import attribute_shop, stored

NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
CONDITIONS = {
    "iberia": 'member.country == "ES" or member.country == "PT"',
    "distributors": 'member.attributes.kind == "distributor"',
    "es-retail": 'member.country == "ES" and member.attributes.kind == "retailer"',
}


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with attribute_shop(db, NOW) as made:
        yield made


def _refresh(shop: Shop) -> dict[str, int]:
    with shop.db.transaction() as s:
        return campaigns.refresh_program(s, shop.tenant_id, shop.program_id)


def _failing_on(call: int, real: Callable[..., Any], slow: float = 0.0) -> Callable[..., Any]:
    """``real``, except that its ``call``-th call raises (earlier ones sleep ``slow`` first)."""
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == call:
            raise RuntimeError("boom")
        time.sleep(slow)
        return real(*args, **kwargs)
    return wrapper


def test_a_failed_refresh_leaves_the_memberships_as_they_were(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    with clock.frozen(NOW):
        accounts = []
        for i in range(30):
            acc = shop.account(region=("ES", "PT", "FR")[i % 3],
                               attributes={"kind": ("retailer", "distributor")[i % 2]})
            with shop.db.transaction() as s:
                members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
            accounts.append(acc)
        with shop.db.transaction() as s:
            for code, condition in CONDITIONS.items():
                campaigns.create_segment(s, shop.tenant_id, shop.program_id, code=code,
                                         name=code, condition=condition)
        _refresh(shop)
        first = stored(shop)
        assert all(first.values())
        # every segment gains and loses members at the next refresh
        with shop.db.transaction() as s:
            for acc in accounts[:12]:
                members.update_account(s, shop.tenant_id, acc, {
                    "region": "FR" if acc in first["iberia"] else "ES",
                    "attributes": {"kind": "retailer" if acc in first["distributors"]
                                   else "distributor"}}, actor="test")
        # a write fails after two segments' writes were done
        monkeypatch.setattr(memberships, "write", _failing_on(3, memberships.write))
        with pytest.raises(RuntimeError, match="boom"):
            _refresh(shop)
        assert stored(shop) == first
        monkeypatch.undo()
        # the computing fails while the (slowed) writes of earlier segments are in flight
        monkeypatch.setattr(memberships, "write", _failing_on(0, memberships.write, slow=0.3))
        monkeypatch.setattr(memberships, "changes_of", _failing_on(3, memberships.changes_of))
        with pytest.raises(RuntimeError, match="boom"):
            _refresh(shop)
        assert not [t for t in threading.enumerate() if t.name.startswith("allegiance-writer")]
        assert stored(shop) == first
        monkeypatch.undo()
        done = _refresh(shop)
        after = stored(shop)
        assert after != first and done["entered"] == sum(
            len(after[c] - first[c]) for c in CONDITIONS) and done["left"] == sum(
            len(first[c] - after[c]) for c in CONDITIONS) > 0
