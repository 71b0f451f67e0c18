"""kit.rows: rows inserted and read through the driver are stored and returned exactly as
Core stores and returns them (JSON, JSON null, UTC timestamps), on both engines."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select

from allegiance import tenants
from allegiance.audit.models import AuditRecord
from allegiance.engagement.models import Tally
from allegiance.engagement.repository import TALLY_METRICS
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.models import IdempotencyRecord
from allegiance.kit.rows import CompiledMany, CounterAdd, RowByKey, RowInsert
from tests.integration.events_support import Shop

_audit = cast(Table, AuditRecord.__table__)
_records = cast(Table, IdempotencyRecord.__table__)
_tallies = cast(Table, Tally.__table__)


def _tenant(db: Database) -> str:
    with db.transaction() as s:
        return tenants.create_tenant(s, "Rows").id


def _audit_row(tenant_id: str, row_id: str, seq: int, before: Any) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "id": row_id, "seq": seq, "actor": "t", "action": "a",
            "object_type": "o", "object_id": "x", "before": before,
            "after": {"n": 1, "nested": {"ü": [1, None]}}, "at": clock.now(), "hash": "h"}


def test_row_insert_stores_what_core_stores(db: Database) -> None:
    tenant_id = _tenant(db)
    driver = _audit_row(tenant_id, "aud_driver", 1, None)
    core = _audit_row(tenant_id, "aud_core", 2, None)
    with db.transaction() as s:
        RowInsert(_audit)(s, driver)
        s.execute(insert(_audit), core)
        RowInsert(_audit)(s, [_audit_row(tenant_id, "aud_m1", 3, {"a": 1}),
                              _audit_row(tenant_id, "aud_m2", 4, [])])
    with db.read() as s:
        rows = {r.id: r for r in s.execute(select(_audit).where(_audit.c.tenant_id == tenant_id))}
    assert set(rows) == {"aud_driver", "aud_core", "aud_m1", "aud_m2"}
    for name in ("before", "after", "at", "actor", "seq"):
        assert getattr(rows["aud_driver"], name) == {**driver}[name], name
    assert rows["aud_driver"].before == rows["aud_core"].before
    assert rows["aud_driver"].at.tzinfo is not None
    assert (rows["aud_m1"].before, rows["aud_m2"].before) == ({"a": 1}, [])


def _add_tallies(ins: Any) -> Any:
    stmt = ins(_tallies)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "program_id", "day", "account_id"],
        set_={m: _tallies.c[m] + stmt.excluded[m] for m in TALLY_METRICS})


def test_compiled_many_stores_what_core_stores(db: Database) -> None:
    """An upsert and an insert of many rows (JSON, empty JSON, shared and distinct UTC
    timestamps, NULL) through the driver leave the rows Core leaves."""
    shop, now = Shop(db), clock.now()
    tenant_id = shop.tenant_id
    accounts = [shop.account() for _ in range(3)]
    keys = ["tenant_id", "program_id", "day", "account_id", *TALLY_METRICS]
    upsert = CompiledMany(_add_tallies, keys)

    def tally(account: str, day: int, n: int) -> dict[str, Any]:
        return {"tenant_id": tenant_id, "program_id": shop.program_id, "day": day,
                "account_id": account, **dict.fromkeys(TALLY_METRICS, n)}

    rows = [tally(accounts[n % 3], 740_000, n) for n in range(6)]  # n and n + 3 share a row
    with db.transaction() as s:
        upsert(s, rows[:3])
        upsert(s, rows[3:])
        upsert(s, [])
    with db.read() as s:
        found = {(r.account_id, r.day): r.points for r in s.execute(
            select(_tallies).where(_tallies.c.tenant_id == tenant_id))}
    assert found == {(accounts[0], 740_000): 0 + 3, (accounts[1], 740_000): 1 + 4,
                     (accounts[2], 740_000): 2 + 5}
    insert_audit = CompiledMany(lambda ins: ins(_audit), [c.key for c in _audit.columns])
    later = now + timedelta(seconds=5)
    made = [{**_audit_row(tenant_id, f"aud_c{n}", 10 + n, before), "at": at}
            for n, (before, at) in enumerate([({}, now), ({}, now), ([], later),
                                              (None, later), ({"a": [1, None]}, now)])]
    core = [{**row, "id": row["id"].replace("aud_c", "aud_k"), "seq": row["seq"] + 10}
            for row in made]
    with db.transaction() as s:
        insert_audit(s, made)
        s.execute(insert(_audit), core)
    with db.read() as s:
        stored = {r.id: r for r in s.execute(select(_audit).where(_audit.c.tenant_id == tenant_id))}
    for row in made:
        mine, theirs = stored[row["id"]], stored[row["id"].replace("aud_c", "aud_k")]
        assert (mine.before, mine.after, mine.at) == (theirs.before, theirs.after, theirs.at)
        assert (mine.before, mine.at) == (row["before"], row["at"])
    with pytest.raises(ValueError, match="rows' keys"), db.transaction() as s:
        CompiledMany(_add_tallies, keys[:-1])(s, rows)


def test_row_by_key_reads_what_core_reads(db: Database) -> None:
    tenant_id, now = _tenant(db), clock.now()
    values = {"tenant_id": tenant_id, "key": "k-1", "request_hash": "f" * 64,
              "method": "POST", "path": "/v1/x", "status_code": 201, "response_body": "{}",
              "created_at": now, "expires_at": now + timedelta(days=1)}
    read = RowByKey(_records, ("request_hash", "status_code", "expires_at"), ("tenant_id", "key"))
    with db.transaction() as s:
        RowInsert(_records)(s, values)
        found = read(s, tenant_id, "k-1")
        assert read(s, tenant_id, "k-2") is None
        core = s.execute(select(_records.c.expires_at).where(_records.c.tenant_id == tenant_id, _records.c.key == "k-1")).scalar_one()
    assert found.request_hash == "f" * 64 and found.status_code == 201
    assert found.expires_at == core == values["expires_at"]
    assert found.expires_at.tzinfo is not None and found.expires_at > now


def test_counter_add_inserts_then_adds_and_returns_the_row_after(db: Database) -> None:
    shop = Shop(db)
    key = {"tenant_id": shop.tenant_id, "program_id": shop.program_id, "day": 740_000,
           "account_id": shop.account()}
    with pytest.raises(ValueError, match=r"engagement_tally\.challenges must be a key or"):
        CounterAdd(_tallies, ("tenant_id", "program_id", "day", "account_id"),
                   ("points", "sales", "purchases", "activities"))
    add = CounterAdd(_tallies, ("tenant_id", "program_id", "day", "account_id"),
                     TALLY_METRICS, returning=("purchases", "sales"))
    with db.transaction() as s:
        assert add(s, key, {"purchases": 1, "sales": 500}) == (1, 500)
        assert add(s, key, {"points": 7, "sales": -200}) == (1, 300)
    with db.read() as s:
        row = s.execute(select(_tallies).where(*(_tallies.c[k] == v for k, v in key.items())))
        stored = row.one()
    assert (stored.points, stored.sales, stored.purchases, stored.activities) == (7, 300, 1, 0)
    with db.transaction() as s, pytest.raises(ValueError, match="no counter bonus"):
        add(s, key, {"bonus": 1})


def test_counter_add_loses_no_update_under_concurrent_first_inserts(pg_db: Database) -> None:
    """Threads adding to the same missing row at once: one inserts, the others add to it
    (PostgreSQL, where writers run concurrently); every after-value is seen exactly once."""
    shop = Shop(pg_db)
    key = {"tenant_id": shop.tenant_id, "program_id": shop.program_id, "day": 740_001,
           "account_id": shop.account()}
    add = CounterAdd(_tallies, ("tenant_id", "program_id", "day", "account_id"),
                     TALLY_METRICS, returning=("purchases",))
    start = threading.Barrier(8)

    def one() -> int:
        start.wait()
        with pg_db.transaction() as s:
            return int(add(s, key, {"purchases": 1})[0])

    with ThreadPoolExecutor(8) as pool:
        seen = sorted(pool.map(lambda _: one(), range(8)))
    assert seen == list(range(1, 9))
