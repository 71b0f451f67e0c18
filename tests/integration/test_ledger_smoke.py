from allegiance import ledger
from tests.conftest import World


def test_earn_hold_post_reverse(world: World) -> None:
    w = world.wallet("acc_A")
    first = world.earn(w, 100, key="k1")
    again = world.earn(w, 100, key="k1")
    assert again.entry_id == first.entry_id and not again.created
    with world.db.transaction() as s:
        hold, _ = ledger.create_hold(s, world.tenant_id, ledger.HoldRequest(
            world.program_id, w, world.redeemed_id, world.unit_id, 60))
    assert world.balance(w).available == 40
    with world.db.transaction() as s:
        ledger.post_hold(s, world.tenant_id, hold.id, 50)
    assert world.balance(w).posted == 50
    with world.db.transaction() as s:
        ledger.reverse_entry(s, world.tenant_id, first.entry_id)
    assert world.balance(w).posted == 0


def test_reversal_of_two_lines_on_one_spent_wallet_books_the_shortfall_once(world: World) -> None:
    """Two credits to the same wallet in one entry, then most points spent: the reversal takes
    what the wallet has once, and books the rest as the member's debt."""
    w = world.wallet("acc_B")
    with world.db.transaction() as s:
        earned = ledger.post_entry(s, world.tenant_id, ledger.EntryRequest(
            program_id=world.program_id, kind="earn",
            lines=(ledger.Line(world.issued_id, world.unit_id, ledger.Side.DEBIT, 100),
                   ledger.Line(w, world.unit_id, ledger.Side.CREDIT, 60),
                   ledger.Line(w, world.unit_id, ledger.Side.CREDIT, 40))))
        ledger.post_entry(s, world.tenant_id, ledger.EntryRequest(
            program_id=world.program_id, kind="redeem",
            lines=(ledger.Line(w, world.unit_id, ledger.Side.DEBIT, 70),
                   ledger.Line(world.redeemed_id, world.unit_id, ledger.Side.CREDIT, 70))))
    with world.db.transaction() as s:
        ledger.reverse_entry(s, world.tenant_id, earned.entry_id)
        debt = ledger.receivable(s, world.tenant_id, world.program_id, world.unit_id,
                                 "account", "acc_B")
        owed = ledger.balance_of(ledger.get_account(s, world.tenant_id, debt.id)).posted
    assert world.balance(w).posted == 0
    assert owed == 70
