"""Every writer locks ledger accounts in one order — member accounts first, program accounts
last, each group by id — and on PostgreSQL a single posting keeps a member wallet's aging
before it locks the program's accounts (migration ``0034_posthot``): a program's ``redeemed``
or ``issued`` account, which every posting of the program locks, is then held for less."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import text

from allegiance import ledger
from allegiance.kit.db import Database
from allegiance.ledger.repository import AccountInfo
from allegiance.ledger.writes import lock_order
from tests.conftest import build_world


def _info(account_id: str, owner_type: str, purpose: str) -> AccountInfo:
    return AccountInfo(id=account_id, program_id="prg_x", unit_id="unt_x",
                       owner_type=owner_type, owner_id="o", purpose=purpose,
                       normal="credit", no_overdraw=True)


def test_member_accounts_come_before_program_accounts_each_by_id() -> None:
    infos = [_info("wal_B", "account", "wallet"), _info("lac_A", "program", "issued"),
             _info("wal_A", "user", "wallet"), _info("lac_0", "program", "redeemed")]
    ordered = sorted(infos, key=lambda i: lock_order(i.id, i))
    assert [i.id for i in ordered] == ["wal_A", "wal_B", "lac_0", "lac_A"]


def _driver_url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")


def test_a_posting_keeps_the_wallets_aging_before_it_waits_for_the_program_account(
        pg_db: Database) -> None:
    """Hold the program's ``redeemed`` account in another transaction: a redemption's posting
    then waits for it already holding the wallet's row and having written the wallet's aging
    (visible to nobody until it commits); once released it completes, and the aging equals
    its recomputation (the trigger did not count the posting a second time)."""
    w = build_world(pg_db)
    wallet = w.wallet("acc_lock_order")
    w.earn(wallet, 100)
    url = _driver_url(pg_db)
    outcome: list[object] = []

    def redeem() -> None:
        try:
            with pg_db.transaction() as s:
                ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
                    program_id=w.program_id, kind="redeem", lines=(
                        ledger.Line(wallet, w.unit_id, ledger.Side.DEBIT, 30),
                        ledger.Line(w.redeemed_id, w.unit_id, ledger.Side.CREDIT, 30))))
            outcome.append("ok")
        except Exception as error:
            outcome.append(error)

    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as probe:
        holder.execute("SELECT set_config('allegiance.tenant_id', %s, false)", (w.tenant_id,))
        holder.execute("SELECT 1 FROM ledger_account WHERE tenant_id = %s AND id = %s "
                       "FOR UPDATE", (w.tenant_id, w.redeemed_id))
        thread = threading.Thread(target=redeem)
        thread.start()
        waiting = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not waiting:
            waiting = bool(probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%ledger_post_one%'"
            ).fetchone()[0])  # type: ignore[index]
            time.sleep(0.02)
        assert waiting, "the posting never waited for the program account"
        probe.execute("SELECT set_config('allegiance.tenant_id', %s, false)", (w.tenant_id,))
        with pytest.raises(psycopg.errors.LockNotAvailable), probe.transaction():
            probe.execute("SELECT 1 FROM ledger_account WHERE tenant_id = %s AND id = %s "
                          "FOR UPDATE NOWAIT", (w.tenant_id, wallet))
        # its aging row is written
        with pytest.raises(psycopg.errors.LockNotAvailable), probe.transaction():
            probe.execute("SELECT 1 FROM ledger_aging WHERE tenant_id = %s AND "
                          "account_id = %s FOR UPDATE NOWAIT", (w.tenant_id, wallet))
        holder.rollback()
        thread.join(30)
    assert outcome == ["ok"]
    with pg_db.read() as s:
        assert ledger.stored_aging(s, w.tenant_id) == ledger.recompute_aging(s, w.tenant_id)
        balance = ledger.balance_of(ledger.get_account(s, w.tenant_id, wallet))
    assert balance.available == 70


def test_a_posting_inside_a_transaction_that_paused_aging_leaves_it_paused(
        pg_db: Database) -> None:
    """A job that keeps ``ledger_aging`` itself pauses the trigger for its transaction; a
    single posting inside it must neither keep the aging nor resume the trigger."""
    w = build_world(pg_db)
    wallet = w.wallet("acc_paused")
    with pg_db.transaction() as s:
        s.execute(text("SELECT set_config('allegiance.aging_paused', 'on', true)"))
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="earn", lines=(
                ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, 40),
                ledger.Line(wallet, w.unit_id, ledger.Side.CREDIT, 40))))
        paused = s.execute(text("SELECT current_setting('allegiance.aging_paused')")).scalar()
        rows = s.execute(text("SELECT count(*) FROM ledger_aging WHERE account_id = :a"),
                         {"a": wallet}).scalar()
    assert (paused, rows) == ("on", 0)
    w.earn(wallet, 5)  # a new transaction: the trigger's pause is gone, aging kept again
    with pg_db.read() as s:
        stored = ledger.stored_aging(s, w.tenant_id)
    assert [v for (account, _), v in stored.items() if account == wallet] == [(5, 0, 5)]
