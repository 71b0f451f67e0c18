"""The group-commit writer: many threads, few transactions, every caller its own answer."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from allegiance import ledger
from allegiance.ledger.errors import InsufficientFunds
from tests.conftest import World


def test_concurrent_callers_share_transactions_and_get_their_own_results(world: World) -> None:
    wallets = [world.wallet(f"acc_{i}") for i in range(20)]
    writer = ledger.BatchWriter(world.db, max_wait=0.005)
    try:
        def earn(i: int) -> ledger.EntryResult:
            w = wallets[i % 20]
            return writer.post(world.tenant_id, ledger.EntryRequest(
                program_id=world.program_id, kind="earn", entry_key=f"gc-{i}",
                lines=(ledger.Line(world.issued_id, world.unit_id, ledger.Side.DEBIT, 10),
                       ledger.Line(w, world.unit_id, ledger.Side.CREDIT, 10))))

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(earn, range(400)))
        assert len({r.entry_id for r in results}) == 400
        assert writer.batches < 400  # callers really shared transactions
        # A replay through the writer adds nothing.
        assert not earn(7).created
        # One bad entry fails alone.
        overdraw = writer.submit(world.tenant_id, ledger.EntryRequest(
            program_id=world.program_id, kind="redeem",
            lines=(ledger.Line(wallets[0], world.unit_id, ledger.Side.DEBIT, 10_000),
                   ledger.Line(world.redeemed_id, world.unit_id, ledger.Side.CREDIT, 10_000))))
        good = writer.submit(world.tenant_id, ledger.EntryRequest(
            program_id=world.program_id, kind="redeem",
            lines=(ledger.Line(wallets[1], world.unit_id, ledger.Side.DEBIT, 5),
                   ledger.Line(world.redeemed_id, world.unit_id, ledger.Side.CREDIT, 5))))
        with pytest.raises(InsufficientFunds):
            overdraw.result(10)
        assert good.result(10).created
    finally:
        writer.close()
    assert sum(world.balance(w).posted for w in wallets) == 400 * 10 - 5
