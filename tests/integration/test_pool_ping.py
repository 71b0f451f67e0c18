"""The PostgreSQL pool pings a connection only after it idled (``kit.db._ping_if_idle``), not on
every checkout: a dead connection that idled is replaced before use, one the driver knows
broken is replaced at once, and a connection back moments ago is used without a ping."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from allegiance.kit import db as kit_db
from allegiance.kit.db import Database
from tests.support import databases


def _backend_pid(db: Database) -> int:
    with db.transaction() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    url = databases.postgres_admin_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_dead_connection_that_idled_is_replaced_before_use(
        pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = _backend_pid(pg_db)
    _terminate(pid)
    monkeypatch.setattr(kit_db, "PING_AFTER_IDLE", 0.0)  # every pooled connection "idled"
    assert _backend_pid(pg_db) != pid  # the ping failed, the pool opened a new connection


def test_a_connection_back_moments_ago_is_not_pinged(pg_db: Database) -> None:
    _backend_pid(pg_db)
    pinged: list[str] = []
    original = pg_db.engine.dialect.do_ping

    def spy(connection: object) -> bool:
        pinged.append("ping")
        return original(connection)

    pg_db.engine.dialect.do_ping = spy  # type: ignore[method-assign]
    for _ in range(3):
        _backend_pid(pg_db)
    assert pinged == []


def test_a_connection_the_driver_knows_broken_is_replaced(pg_db: Database) -> None:
    with pg_db.engine.connect() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        conn.rollback()
        conn.connection.driver_connection.close()  # closed, still in the pool's hands
    assert _backend_pid(pg_db) != pid
