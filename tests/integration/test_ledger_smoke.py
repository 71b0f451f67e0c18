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
