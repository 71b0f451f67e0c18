"""Tiers: the set-based recalculation checked against the domain per member, batch jobs,
audiences, concurrency and tenant isolation (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text

from allegiance import members, tiers
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.tiers import domain
from tests.integration.tiers_support import JAN, SKINCEUTICALS, Tiers, at  # noqa: F401


def test_set_based_recalculation_equals_the_domain_per_member(t: Tiers) -> None:
    """2,000 members with random credits, reports, levels and locks: one set-based run gives
    each member the level the pure domain function gives."""
    definition = {
        "code": "status", "metric": "points_earned",
        "period": {"kind": "rolling_months", "months": 3},
        "levels": [{"code": "l0", "threshold": 0}, {"code": "l1", "threshold": 100},
                   {"code": "l2", "threshold": 500, "requires": {"rating": 3}},
                   {"code": "l3", "threshold": 900}],
        "downgrade": {"grace": "one_step"},
    }
    ladder_id = t.ladder(definition)
    ladder = domain.from_dict(definition)
    rng = random.Random(20261123)
    accounts = t.bulk_accounts(2000)
    ref = domain.month_index(at(2026, 6), "UTC")
    metric_rows: list[dict[str, Any]] = []
    status_rows: list[dict[str, Any]] = []
    values: dict[str, int] = {}
    ratings: dict[str, int] = {}
    current: dict[str, tuple[int, bool]] = {}
    for acc in accounts:
        total = 0
        for bucket in range(ref - 5, ref + 1):
            if rng.random() < 0.5:
                amount = rng.randint(-20, 400)
                metric_rows.append({"metric": "points_earned", "account_id": acc,
                                    "bucket": bucket, "value": amount})
                if bucket >= ref - 2:
                    total += amount
        values[acc] = total
        if rng.random() < 0.5:
            history = sorted(rng.sample(range(ref - 8, ref + 2), 2))
            for bucket in history:
                rating = rng.randint(1, 5)
                metric_rows.append({"metric": "rating", "account_id": acc, "bucket": bucket,
                                    "value": rating})
                if bucket <= ref:
                    ratings[acc] = rating
        if rng.random() < 0.6:
            rank, locked = rng.randint(-1, 3), rng.random() < 0.1
            current[acc] = (rank, locked)
            status_rows.append({
                "account_id": acc, "level_rank": rank, "level_code": ladder.code_of(rank),
                "locked": locked, "since": at(2025, 1), "lock_reason": None, "version": 0,
                "anchor_month": ref - 20})
    common = {"tenant_id": t.tenant_id, "program_id": t.program_id}
    with t.db.transaction() as s:
        s.execute(insert(tiers.TierMetric),
                  [{**common, **r, "updated_at": at(2026, 1)} for r in metric_rows])
        s.execute(insert(tiers.TierStatus),
                  [{**common, **r, "ladder_id": ladder_id, "updated_at": at(2025, 1)}
                   for r in status_rows])
    result = t.recalc(at(2026, 7, 1), period_end=True)  # settles June 2026
    expected: dict[str, int] = {}
    for acc in accounts:
        rank, locked = current.get(acc, (-1, False))
        qualified = domain.qualify_rank(ladder, values[acc], {"rating": ratings.get(acc, 0)})
        expected[acc] = domain.decide_rank(ladder, rank, qualified, period_end=True,
                                           locked=locked)
    with t.db.read() as s:
        got = dict(s.execute(select(tiers.TierStatus.account_id, tiers.TierStatus.level_rank)
                             .where(tiers.TierStatus.tenant_id == t.tenant_id)).all())
        codes = dict(s.execute(select(tiers.TierStatus.account_id, tiers.TierStatus.level_code)
                               .where(tiers.TierStatus.tenant_id == t.tenant_id)).all())
    assert {a: got.get(a, -1) for a in accounts} == expected
    assert all(codes.get(a) == ladder.code_of(r) for a, r in expected.items())
    moved_up = sum(1 for a in accounts if expected[a] > current.get(a, (-1, False))[0])
    moved_down = sum(1 for a in accounts if expected[a] < current.get(a, (-1, False))[0])
    assert (result.upgraded, result.downgraded) == (moved_up, moved_down)
    assert moved_up > 100 and moved_down > 100
    with t.db.read() as s:  # one history row per move
        changes = s.execute(select(tiers.TierChange.account_id).where(
            tiers.TierChange.tenant_id == t.tenant_id)).scalars().all()
    assert len(changes) == moved_up + moved_down
    # Running the same settlement again changes nothing.
    again = t.recalc(at(2026, 7, 2), period_end=True)
    assert (again.upgraded, again.downgraded) == (0, 0)


def test_other_tenants_cannot_reach_the_ladders(t: Tiers) -> None:
    ladder_id = t.ladder(SKINCEUTICALS)
    other = Tiers(t.db)
    with t.db.read() as s, pytest.raises(AllegianceError) as err:
        tiers.get_ladder(s, other.tenant_id, ladder_id)
    assert err.value.status == 404
    with t.db.read() as s, pytest.raises(AllegianceError):
        tiers.list_ladders(s, other.tenant_id, t.program_id)


def test_batch_job_settles_every_program_once(t: Tiers) -> None:
    from allegiance.tiers.jobs import recalculate_all

    t.ladder({**SKINCEUTICALS, "downgrade": {"grace": "one_step"}})
    spa = t.account()
    t.credit(spa, 11_000_000, at(2026, 3))
    other = Tiers(t.db)
    other.ladder(SKINCEUTICALS)
    shop = other.account()
    other.credit(shop, 5_000_000, at(2026, 3))
    totals = recalculate_all(t.db, at(2028, 1, 3))
    assert totals["programs"] == 2 and totals["downgraded"] == 2
    assert (t.level(spa), other.level(shop)) == ("platinum", None)  # grace: none
    again = recalculate_all(t.db, at(2028, 1, 4))  # the same month: nothing twice
    assert again["downgraded"] == 0
    assert t.level(spa) == "platinum"


def test_distributors_and_retailers_have_ladders_of_their_own(t: Tiers) -> None:
    levels = [{"code": "silver", "threshold": 1000}, {"code": "gold", "threshold": 5000}]
    t.ladder({"code": "distributors", "metric": "spend", "levels": levels,
              "audience": {"segment": "distributor"}})
    t.ladder({"code": "retailers", "metric": "spend", "levels": levels,
              "audience": {"segment": ["retailer", "pharmacy"]}})
    dist, shop = t.account(segment="distributor"), t.account(segment="pharmacy")
    loner = t.account()
    moves = t.credit(dist, 1500, at(2026, 2))
    assert [(m.ladder_code, m.to_level) for m in moves] == [("distributors", "silver")]
    with t.db.transaction() as s:
        for acc in (shop, loner):
            s.execute(insert(tiers.TierMetric).values(
                tenant_id=t.tenant_id, program_id=t.program_id, metric="spend", account_id=acc,
                bucket=domain.month_index(at(2026, 3), "UTC"), value=6000,
                updated_at=at(2026, 3)))
    result = t.recalc(at(2026, 4))
    assert result.ladders["retailers"]["upgraded"] == 1
    assert result.ladders["distributors"]["upgraded"] == 0
    with t.db.read() as s:
        assert [x.ladder_code for x in tiers.status(s, t.tenant_id, t.program_id, shop)] == [
            "retailers"]
        assert tiers.status(s, t.tenant_id, t.program_id, loner) == []
    assert t.level(shop) == "gold"
    with t.db.transaction() as s, pytest.raises(AllegianceError) as err:
        tiers.place(s, t.tenant_id, t.program_id, loner, level="gold", reason="x", actor="a",
                    ladder_code="retailers")
    assert err.value.field == "ladder"


def test_concurrent_credits_on_postgres(pg_db: Database) -> None:
    """Many writers crediting one account and its siblings: no credit lost, each move
    recorded once, the parent's roll-up sees every child's credit."""
    from concurrent.futures import ThreadPoolExecutor

    t = Tiers(pg_db)
    t.ladder({**SKINCEUTICALS, "rollup": True})
    parent = t.account()
    kids = [t.account(parent_id=parent) for _ in range(4)]

    def work(i: int) -> int:
        moves = t.credit(kids[i % 4], 500_000, at(2026, 3))
        return len(moves)

    with ThreadPoolExecutor(max_workers=8) as pool:
        moved = sum(pool.map(work, range(40)))
    assert t.state(kids[0], at(2026, 3)).value == 5_000_000
    assert t.state(parent, at(2026, 3)).value == 20_000_000
    assert t.level(parent) == "black-diamond" and t.level(kids[0]) == "gold"
    with t.db.read() as s:
        rows = s.execute(select(tiers.TierChange.account_id, tiers.TierChange.seq).where(
            tiers.TierChange.tenant_id == t.tenant_id)).all()
    assert len(rows) == moved
    for acc in [parent, *kids]:
        seqs = sorted(seq for a, seq in rows if a == acc)
        assert seqs == list(range(1, len(seqs) + 1))


def test_set_based_rollup_and_anniversaries_equal_the_domain(t: Tiers) -> None:
    """A random account tree on an anniversary ladder with roll-up: each account's level
    after one settlement is what the domain gives for its subtree's credits in its own year."""
    definition = {"code": "group", "metric": "count", "period": {"kind": "anniversary"},
                  "levels": [{"code": "a", "threshold": 5}, {"code": "b", "threshold": 40},
                             {"code": "c", "threshold": 120}],
                  "rollup": True}
    ladder_id = t.ladder(definition)
    ladder = domain.from_dict(definition)
    rng = random.Random(7)
    ref = domain.month_index(at(2026, 6), "UTC")
    now = at(2025, 1)
    parents: dict[str, str | None] = {}
    ids = [f"acc_tree{i:022d}" for i in range(300)]
    for i, acc in enumerate(ids):
        parents[acc] = ids[rng.randrange(i)] if i and rng.random() < 0.8 else None
    with t.db.transaction() as s:
        for acc in ids:  # parents first: ids are in creation order
            s.execute(insert(members.Account).values(
                tenant_id=t.tenant_id, id=acc, parent_id=parents[acc], name="n",
                member_number=acc[-8:], attributes={}, status="active", created_at=now,
                updated_at=now))
    credits: dict[tuple[str, int], int] = {}
    for acc in ids:
        for bucket in rng.sample(range(ref - 23, ref + 1), 4):
            credits[(acc, bucket)] = rng.randint(0, 12)
    statuses: dict[str, tuple[int, int]] = {}
    for acc in ids:
        if rng.random() < 0.7:
            statuses[acc] = (rng.randint(-1, 2), ref - rng.randint(0, 30))
    with t.db.transaction() as s:
        s.execute(insert(tiers.TierMetric), [
            {"tenant_id": t.tenant_id, "program_id": t.program_id, "metric": "count",
             "account_id": a, "bucket": b, "value": v, "updated_at": now}
            for (a, b), v in credits.items()])
        s.execute(insert(tiers.TierStatus), [
            {"tenant_id": t.tenant_id, "ladder_id": ladder_id, "account_id": a,
             "program_id": t.program_id, "level_rank": r, "level_code": ladder.code_of(r),
             "since": now, "locked": False, "lock_reason": None, "anchor_month": anchor,
             "version": 0, "updated_at": now} for a, (r, anchor) in statuses.items()])
    t.recalc(at(2026, 7, 3), period_end=True)  # settles June 2026

    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)

    def subtree(root: str) -> set[str]:
        found, todo = {root}, [root]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found

    expected: dict[str, int] = {}
    for acc in ids:
        rank, anchor = statuses.get(acc, (-1, ref))
        first, last = ladder.period.bounds(ref, anchor)
        tree = subtree(acc)
        value = sum(v for (a, b), v in credits.items() if a in tree and first <= b <= last)
        qualified = domain.qualify_rank(ladder, value)
        expected[acc] = domain.decide_rank(ladder, rank, qualified,
                                           period_end=ladder.period.ends_at(ref, anchor),
                                           locked=False)
    with t.db.read() as s:
        got = dict(s.execute(select(tiers.TierStatus.account_id, tiers.TierStatus.level_rank)
                             .where(tiers.TierStatus.tenant_id == t.tenant_id)).all())
    assert {a: got.get(a, -1) for a in ids} == expected
    falls = sum(1 for a in ids if expected[a] < statuses.get(a, (-1, 0))[0])
    assert falls > 3  # some anniversaries ended and fell


def test_a_recalculation_that_moves_nobody_writes_nothing(t: Tiers) -> None:
    """The counts are read before any write: a repeat leaves statuses, history and enrolment
    tiers exactly as they were (same stamps, same versions), a later move still writes."""
    t.ladder({**SKINCEUTICALS, "primary": True})
    spa, shop = t.account(), t.account()
    t.credit(spa, 11_000_000, at(2026, 3))

    def snapshot() -> list[Any]:
        with t.db.read() as s:
            statuses = s.execute(select(tiers.TierStatus.account_id, tiers.TierStatus.version,
                                        tiers.TierStatus.updated_at)
                                 .order_by(tiers.TierStatus.account_id)).all()
            changes = s.execute(select(tiers.TierChange.account_id, tiers.TierChange.seq)
                                .order_by(tiers.TierChange.account_id)).all()
            enrolments = s.execute(select(members.Enrolment.account_id, members.Enrolment.tier,
                                          members.Enrolment.updated_at)
                                   .order_by(members.Enrolment.account_id)).all()
        return [statuses, changes, enrolments]

    first = t.recalc(at(2026, 4))
    assert (first.evaluated, first.upgraded) == (1, 0)  # the credit already moved spa
    before = snapshot()
    again = t.recalc(at(2026, 5))
    assert (again.evaluated, again.upgraded, again.downgraded) == (1, 0, 0)
    assert snapshot() == before
    with t.db.transaction() as s:  # a credit the per-event path did not evaluate
        tiers.repository.add_metric(s, t.tenant_id, t.program_id, "spend", shop,
                                    domain.month_index(at(2026, 5), "UTC"), 5_000_000,
                                    at(2026, 5))
    moved = t.recalc(at(2026, 5, 20))
    assert (moved.evaluated, moved.upgraded) == (2, 1)
    assert t.level(shop) == t.enrolment_tier(shop) is not None
    assert t.history(shop) == [(None, t.level(shop), "upgrade")]


def test_an_upgrade_only_run_counts_first_and_keeps_only_the_movers(t: Tiers) -> None:
    """Statuses exist, no period end, no free level: the evaluation is counted without a
    write; only when someone moves is it run again, keeping the movers alone for the writes.
    300 members with random values, levels and locks end where the pure domain puts them;
    a repeat writes no scratch row at all."""
    definition = {"code": "status", "metric": "points_earned", "primary": True,
                  "period": {"kind": "calendar_year"},
                  "levels": [{"code": "l0", "threshold": 100}, {"code": "l1", "threshold": 500},
                             {"code": "l2", "threshold": 900}]}
    ladder_id = t.ladder(definition)
    ladder = domain.from_dict(definition)
    rng = random.Random(20261125)
    accounts = t.bulk_accounts(300)
    ref = domain.month_index(at(2026, 6), "UTC")
    values: dict[str, int] = {}
    current: dict[str, tuple[int, bool]] = {}
    metric_rows: list[dict[str, Any]] = []
    status_rows: list[dict[str, Any]] = []
    for acc in accounts:
        if rng.random() < 0.9:
            months = rng.sample(range(ref - 5, ref + 1), rng.randint(1, 4))
            amounts = [rng.randint(-50, 400) for _ in months]
            values[acc] = sum(amounts)
            metric_rows += [{"account_id": acc, "bucket": b, "value": v}
                            for b, v in zip(months, amounts, strict=True)]
        if rng.random() < 0.7:
            rank, locked = rng.randint(-1, 2), rng.random() < 0.15
            current[acc] = (rank, locked)
            status_rows.append({
                "account_id": acc, "level_rank": rank, "level_code": ladder.code_of(rank),
                "locked": locked, "since": at(2025, 1), "lock_reason": None, "version": 0,
                "anchor_month": ref - 20})
    common = {"tenant_id": t.tenant_id, "program_id": t.program_id}
    with t.db.transaction() as s:
        s.execute(insert(tiers.TierMetric),
                  [{**common, **r, "metric": "points_earned", "updated_at": at(2026, 1)}
                   for r in metric_rows])
        s.execute(insert(tiers.TierStatus),
                  [{**common, **r, "ladder_id": ladder_id, "updated_at": at(2025, 1)}
                   for r in status_rows])
    kept: list[int] = []

    def watch(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO tier_scratch"):
            kept.append(cursor.rowcount)

    expected: dict[str, int] = {}
    for acc in accounts:
        rank, locked = current.get(acc, (-1, False))
        qualified = domain.qualify_rank(ladder, values[acc]) if acc in values else -1
        expected[acc] = domain.decide_rank(ladder, rank, qualified, period_end=False,
                                           locked=locked)
    movers = [a for a in accounts if expected[a] != current.get(a, (-1, False))[0]]
    event.listen(t.db.engine, "after_cursor_execute", watch)
    try:
        result = t.recalc(at(2026, 6, 20))
        assert kept == [len(movers)] and len(movers) > 30
        assert (result.evaluated, result.downgraded) == (len(values), 0)
        assert result.upgraded == len(movers)
        with t.db.read() as s:
            got = dict(s.execute(select(tiers.TierStatus.account_id,
                                        tiers.TierStatus.level_rank)).all())
            tiers_of = dict(s.execute(select(members.Enrolment.account_id,
                                             members.Enrolment.tier)).all())
            changes = s.execute(select(tiers.TierChange.account_id)).scalars().all()
        assert {a: got.get(a, -1) for a in accounts} == expected
        assert sorted(changes) == sorted(movers)
        assert all(tiers_of[a] == ladder.code_of(expected[a]) for a in movers)
        kept.clear()
        again = t.recalc(at(2026, 6, 21))
        assert kept == []
        assert (again.evaluated, again.upgraded, again.downgraded) == (len(values), 0, 0)
    finally:
        event.remove(t.db.engine, "after_cursor_execute", watch)


def test_storage_leaves_room_for_the_recalculations_writes(db: Database) -> None:
    """Migration 0023: tier history clustered by its key on SQLite; enrolments half-full on
    PostgreSQL so that the copy of the primary level into enrolment.tier is a heap-only
    update."""
    with db.read() as s:
        if s.connection().dialect.name == "sqlite":
            sql = s.execute(text("SELECT sql FROM sqlite_master WHERE name = 'tier_change'"))
            assert "WITHOUT ROWID" in sql.scalar_one()
        else:
            options = s.execute(text("SELECT reloptions FROM pg_class "
                                     "WHERE relname = 'enrolment'")).scalar_one()
            assert "fillfactor=50" in (options or [])


def test_postgres_recalculation_keeps_its_hash_tables_in_memory(pg_db: Database) -> None:
    """The grouping of a program's members and the joins with it run with 256 MB of working
    memory for the recalculation's transaction (at the server's default 4 MB a million
    members spill to temporary files), and only for it."""
    t = Tiers(pg_db)
    t.ladder({**SKINCEUTICALS, "levels": [{"code": "member", "threshold": 1}]})
    spa = t.account()
    t.credit(spa, 100, at(2026, 3))
    with pg_db.transaction() as s:
        default = s.execute(text("SHOW work_mem")).scalar_one()
    with pg_db.transaction() as s:
        tiers.recalculate(s, t.tenant_id, t.program_id, at=at(2026, 3, 20))
        assert s.execute(text("SHOW work_mem")).scalar_one() == "256MB"
    with pg_db.transaction() as s:
        assert s.execute(text("SHOW work_mem")).scalar_one() == default


def test_postgres_evaluation_reads_statuses_without_index_probes(pg_db: Database) -> None:
    """The evaluation joins a ladder's statuses whole: index scans (one probe per status, the
    plan statistics taken on an empty table choose for a million) are off for that statement
    and back on after it."""
    t = Tiers(pg_db)
    t.ladder({**SKINCEUTICALS, "levels": [{"code": "member", "threshold": 1}]})
    spa = t.account()
    t.credit(spa, 100, at(2026, 3))
    seen: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "tier_status AS st " in statement:  # the evaluation: values against statuses
            row = cursor.connection.execute("SHOW enable_indexscan").fetchone()
            seen.append(row[0])

    event.listen(pg_db.engine, "before_cursor_execute", watch)
    try:
        with pg_db.transaction() as s:
            tiers.recalculate(s, t.tenant_id, t.program_id, at=at(2026, 3, 20))
            after = s.execute(text("SHOW enable_indexscan")).scalar_one()
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", watch)
    assert seen == ["off"] and after == "on"


def test_postgres_writes_and_their_triggers_plan_with_nested_loops(pg_db: Database) -> None:
    """Nested loops are off for the evaluation (whole-table joins) but back on for the writes:
    the row triggers they fire (liability by tier on `enrolment`) look one wallet up per row,
    and without nested loops each lookup scans whole tables (a first run went quadratic)."""
    t = Tiers(pg_db)
    t.ladder({**SKINCEUTICALS, "primary": True})
    shop = t.account()
    with pg_db.transaction() as s:  # a metric the per-event path did not evaluate
        tiers.repository.add_metric(s, t.tenant_id, t.program_id, "spend", shop,
                                    domain.month_index(at(2026, 3), "UTC"), 5_000_000,
                                    at(2026, 3))
    seen: list[tuple[str, str]] = []

    def watch(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        for start in ("INSERT INTO tier_scratch", "INSERT INTO tier_status", "UPDATE enrolment"):
            if statement.startswith(start):
                row = cursor.connection.execute("SHOW enable_nestloop").fetchone()
                seen.append((start, row[0]))

    event.listen(pg_db.engine, "before_cursor_execute", watch)
    try:
        with pg_db.transaction() as s:
            tiers.recalculate(s, t.tenant_id, t.program_id, at=at(2026, 3, 20))
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", watch)
    assert seen == [("INSERT INTO tier_scratch", "off"), ("INSERT INTO tier_status", "on"),
                    ("UPDATE enrolment", "on")]


def test_postgres_scratch_is_kept_in_account_order(pg_db: Database) -> None:
    """The evaluation leaves its rows in account order (the grouping's hash order otherwise):
    the writes read them in that order, to the right edge of the status and history keys and
    along the enrolments (ids grow with time) instead of a random page per row."""
    t = Tiers(pg_db)
    t.ladder({**SKINCEUTICALS, "primary": True})
    accounts = t.bulk_accounts(400)
    rng = random.Random(7)
    bucket = domain.month_index(at(2026, 3), "UTC")
    with pg_db.transaction() as s:
        s.execute(insert(tiers.TierMetric), [
            {"tenant_id": t.tenant_id, "program_id": t.program_id, "metric": "spend",
             "account_id": a, "bucket": bucket, "value": rng.randint(1, 9) * 1_500_000,
             "updated_at": at(2026, 3)} for a in rng.sample(accounts, len(accounts))])
        s.execute(text("ANALYZE tier_metric"))
    seen: list[list[str]] = []

    def hashed(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO tier_scratch"):  # the grouping of a million
            cursor.connection.execute("SET LOCAL enable_sort = off")  # (a small one sorts)

    def watch(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO tier_scratch"):
            rows = cursor.connection.execute("SELECT account_id FROM tier_scratch").fetchall()
            seen.append([r[0] for r in rows])

    event.listen(pg_db.engine, "before_cursor_execute", hashed)
    event.listen(pg_db.engine, "after_cursor_execute", watch)
    try:
        result = t.recalc(at(2026, 3, 20))
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", hashed)
        event.remove(pg_db.engine, "after_cursor_execute", watch)
    assert result.evaluated == len(accounts) and len(seen) == 1
    assert seen[0] == sorted(accounts)
