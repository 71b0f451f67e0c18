"""What the segment tests share: a shop whose members carry a ``kind`` attribute, and the
stored memberships of each of its segments."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from allegiance import campaigns
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.events_support import Shop, definition


@contextlib.contextmanager
def attribute_shop(db: Database, now: datetime) -> Iterator[Shop]:
    """A shop (clock frozen at ``now``) whose program declares the ``kind`` attribute."""
    with clock.frozen(now):
        doc = definition()
        doc["member_attributes"] = {"kind": "str"}
        yield Shop(db, doc)


def stored(shop: Shop) -> dict[str, set[str]]:
    """Each segment's stored members by code (its member count checked against them)."""
    with shop.db.read() as s:
        out: dict[str, set[str]] = {}
        for seg in campaigns.list_segments(s, shop.tenant_id, shop.program_id):
            found = {m.account_id for m in campaigns.members_of(s, shop.tenant_id, seg.id,
                                                                limit=10_000)}
            assert seg.members == len(found)
            out[seg.code] = found
        return out
