"""The query planner's statistics on SQLite.

SQLite keeps no statistics until ``ANALYZE`` runs, and nothing runs it for an application:
without them its planner assumes that an equality on an index's first column picks about ten
rows, so ``tenant_id = ?`` looks selective even when one tenant owns every row. A batch
statement that joins a chunk's rows (``json_each``) to ``ledger_account`` or ``lot`` is then
planned with the tenant's index scan on the outside and the chunk scanned once per row:
quadratic in a fresh production database, where the benchmarks (which analyse after loading)
never see it. The batch jobs therefore refresh the statistics before they run when there are
none for the ledger's accounts or that table has more than doubled since they were taken
(a job that runs every minute does not re-analyse every minute), sampling at most
``ANALYSIS_LIMIT`` rows per index so that it stays quick on a large database.

PostgreSQL keeps its own statistics (autovacuum's analyse); nothing is done there."""

from __future__ import annotations

from sqlalchemy import Engine

ANALYSIS_LIMIT = 1000


def refresh(engine: Engine) -> bool:
    """Run a bounded ``ANALYZE`` on a SQLite database whose statistics are missing or stale
    (True), or nothing (False; always on other engines)."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as conn:
        analysed = None
        if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
                                ).first() is not None:
            stat = conn.exec_driver_sql(
                "SELECT stat FROM sqlite_stat1 WHERE tbl = 'ledger_account' LIMIT 1").scalar()
            analysed = int(str(stat).split()[0]) if stat else None
        rows = int(conn.exec_driver_sql("SELECT count(*) FROM ledger_account").scalar() or 0)
        if analysed is not None and rows <= 2 * analysed:
            conn.rollback()
            return False
        conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return True
