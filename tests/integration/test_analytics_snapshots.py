"""Stored report copies (``analytics.snapshots``): a copy decodes to the report that was
computed (decimals, dates and datetimes intact), is keyed by its parameters, is never
replaced by an older one, is recomputed once however many pages ask, and the ``reports``
job stores every page's default report of every active program."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from allegiance.analytics import snapshots
from allegiance.analytics.models import ReportSnapshot
from allegiance.analytics.reports import Options, run
from allegiance.jobs import registry
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.integration.analytics_support import at, history, standard


def test_a_copy_is_the_report_it_stores(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    for kind in ("liability", "kpis", "breakage", "forecast"):
        options = snapshots.page_options()
        stored = snapshots.compute(db, w.tenant_id, w.program_id, kind, options)
        with db.read() as s:
            again = run(s, w.tenant_id, w.program_id, kind, options)
            loaded = snapshots.load(s, w.tenant_id, w.program_id, kind, options)
        assert loaded is not None and loaded.report == again == stored.report, kind
        assert loaded.computed_at == at(2026, 3, 20)
    liability = stored_liability(db, w.tenant_id, w.program_id)
    assert any(isinstance(v, Decimal) for row in liability.rows for v in row.values())


def stored_liability(db: Database, tenant_id: str, program_id: str) -> snapshots.Report:
    with db.read() as s:
        loaded = snapshots.load(s, tenant_id, program_id, "liability", snapshots.page_options())
    assert loaded is not None
    return loaded.report


def test_copies_are_kept_per_parameters_and_never_replaced_by_older_ones(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    march, january = snapshots.page_options(at="2026-03-20"), snapshots.page_options(
        at="2026-01-31")
    assert snapshots.options_key("liability", march) != snapshots.options_key(
        "liability", january)
    assert snapshots.options_key("liability", march) != snapshots.options_key("kpis", march)
    now = snapshots.compute(db, w.tenant_id, w.program_id, "liability", march)
    snapshots.compute(db, w.tenant_id, w.program_id, "liability", january)
    older = snapshots.Stored(now.report, now.computed_at - timedelta(hours=1), 0.5)
    with db.transaction() as s:
        snapshots.save(s, w.tenant_id, w.program_id, "liability", march, older)
    with db.read() as s:
        kept = snapshots.load(s, w.tenant_id, w.program_id, "liability", march)
        count = s.scalar(select(func.count()).select_from(ReportSnapshot))
    assert kept is not None and kept.computed_at == now.computed_at
    assert kept.seconds == now.seconds and count == 2


def test_latest_is_stored_once_goes_stale_and_is_refreshed_once(
        db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    options = snapshots.page_options()
    first, stale = snapshots.latest(db, w.tenant_id, w.program_id, "kpis", options, 60)
    assert not stale
    h.earn("B", 7)  # the ledger moves on; the copy does not
    frozen_clock.set(at(2026, 3, 20) + timedelta(seconds=30))
    again, stale = snapshots.latest(db, w.tenant_id, w.program_id, "kpis", options, 60)
    assert again == first and not stale
    frozen_clock.set(at(2026, 3, 20) + timedelta(seconds=61))
    again, stale = snapshots.latest(db, w.tenant_id, w.program_id, "kpis", options, 60)
    assert again == first and stale
    tasks: list[Callable[[], None]] = []
    assert snapshots.refresh_later(db, w.tenant_id, w.program_id, "kpis", options, tasks.append)
    # A second page asking while the first refresh waits adds no second computation.
    assert not snapshots.refresh_later(db, w.tenant_id, w.program_id, "kpis", options,
                                       tasks.append)
    assert len(tasks) == 1
    tasks[0]()
    fresh, stale = snapshots.latest(db, w.tenant_id, w.program_id, "kpis", options, 60)
    assert not stale and fresh.computed_at == at(2026, 3, 20) + timedelta(seconds=61)
    issued = {r["unit"]: r["issued"] for r in fresh.report.rows}
    assert issued != {r["unit"]: r["issued"] for r in first.report.rows}
    # Once done, a later refresh may be scheduled again.
    assert snapshots.refresh_later(db, w.tenant_id, w.program_id, "kpis", options, tasks.append)
    tasks[1]()


def test_the_reports_job_stores_every_page_report(db: Database,
                                                  frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    h.event("A", at(2026, 1, 20), amount=5_000)
    h.event("A", at(2026, 2, 20), amount=7_000)
    totals = registry.get("reports").run(db, 100, lambda _step, _count: None)
    assert totals["programs"] == 1
    assert totals["reports"] + totals["not_computable"] == len(snapshots.PAGE_REPORTS)
    with db.read() as s:
        kinds = set(s.scalars(select(ReportSnapshot.kind).where(
            ReportSnapshot.program_id == w.program_id)))
        assert len(kinds) == totals["reports"]
        assert {"kpis", "liability", "breakage", "forecast", "nps"} <= kinds
        for kind in kinds:
            loaded = snapshots.load(s, w.tenant_id, w.program_id, kind, snapshots.page_options())
            assert loaded is not None
            assert loaded.report == run(s, w.tenant_id, w.program_id, kind,
                                        snapshots.page_options()), kind


def test_bad_parameters_store_nothing(db: Database, frozen_clock: clock.FrozenClock) -> None:
    h = standard(history(db, frozen_clock))
    w = h.world
    try:
        snapshots.compute(db, w.tenant_id, w.program_id, "kpis", Options(start="2026-02-30"))
    except snapshots.ReportInvalid as exc:
        assert exc.field == "from"
    else:
        raise AssertionError("a bad date was accepted")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ReportSnapshot)) == 0
