"""The statements of a redemption, built once: SQLAlchemy spends more time building a ``WHERE``
(and the ORM loading and flushing rows) than the database spends running them, and a
redemption is the busiest write of the API after events.

* :func:`lookup` reads the reward, the account's region and attributes, the ids of the
  paying wallet and of the program's ``redeemed`` account, and the expiry policy of the
  reward's unit in ONE statement (one round trip on PostgreSQL instead of five). Nothing is cached between requests.
* :func:`insert_redemption` writes the redemption row as one ``INSERT`` through the driver (no ORM
  unit of work, see :mod:`allegiance.kit.rows`); an ORM ``Redemption`` already loaded in the session is not touched (the row is new).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, literal, select
from sqlalchemy.orm import Session

from allegiance.kit.rows import DriverStatement, RowInsert
from allegiance.ledger import LedgerAccount
from allegiance.members import Account
from allegiance.rewards.models import Redemption, Reward
from allegiance.tenants import Unit

_reward = cast(Table, Reward.__table__)
_account = cast(Table, Account.__table__)
_redemption = cast(Table, Redemption.__table__)
_wallet = cast(Table, LedgerAccount.__table__).alias("wallet")
_redeemed = cast(Table, LedgerAccount.__table__).alias("redeemed")
_unit = cast(Table, Unit.__table__)

def _ledger_account(account: Any, owner_type: Any, owner_id: Any, purpose: str) -> Any:
    """The join condition of the reward's unit's ledger account ``account`` (an alias) of
    that owner and purpose."""
    return and_(account.c.tenant_id == _reward.c.tenant_id,
                account.c.program_id == _reward.c.program_id,
                account.c.unit_id == _reward.c.unit_id,
                account.c.owner_type == owner_type, account.c.owner_id == owner_id,
                account.c.purpose == literal(purpose))


_LOOKUP = (
    select(
        _reward,
        _account.c.id.label("account_found"),
        _account.c.region.label("account_region"),
        _account.c.attributes.label("account_attributes"),
        _wallet.c.id.label("wallet_id"),
        _redeemed.c.id.label("redeemed_id"),
        _unit.c.expiry_policy.label("unit_expiry_policy"),
    )
    .select_from(
        _reward
        .outerjoin(_account, and_(_account.c.tenant_id == _reward.c.tenant_id,
                                  _account.c.id == bindparam("account_id")))
        .outerjoin(_wallet, _ledger_account(_wallet, bindparam("owner_type"),
                                            bindparam("owner_id"), "wallet"))
        .outerjoin(_redeemed, _ledger_account(_redeemed, literal("program"),
                                              _reward.c.program_id, "redeemed"))
        .outerjoin(_unit, and_(_unit.c.tenant_id == _reward.c.tenant_id,
                               _unit.c.id == _reward.c.unit_id))
    )
    .where(_reward.c.tenant_id == bindparam("tenant_id"), _reward.c.id == bindparam("reward_id"))
)

_LOCK_LIMIT = (
    select(_reward.c.limit_per_member, _reward.c.limit_period)
    .where(_reward.c.tenant_id == bindparam("tenant_id"), _reward.c.id == bindparam("reward_id"))
    .with_for_update()
)

_INSERT = RowInsert(_redemption)


def lookup(session: Session, tenant_id: str, reward_id: str, account_id: str,
           owner_type: str, owner_id: str) -> Row[Any] | None:
    """The reward's columns (by their names) with ``account_found`` (None: no such account),
    ``account_region``, ``account_attributes``, ``wallet_id`` (the wallet of ``owner``, None
    if it has none yet), ``redeemed_id`` (None if the program has no redeemed account yet)
    and ``unit_expiry_policy`` (the reward's unit's); None when the tenant has no such
    reward."""
    return session.execute(_LOOKUP, {
        "tenant_id": tenant_id, "reward_id": reward_id, "account_id": account_id,
        "owner_type": owner_type, "owner_id": owner_id,
    }).first()


def lock_limit(session: Session, tenant_id: str, reward_id: str) -> tuple[int | None, str]:
    """Lock the reward row (PostgreSQL; SQLite's writer holds the database) and read its
    per-member limit again under that lock."""
    row = session.execute(_LOCK_LIMIT, {"tenant_id": tenant_id, "reward_id": reward_id}).one()
    return row.limit_per_member, row.limit_period


def insert_redemption(session: Session, values: dict[str, Any]) -> None:
    _INSERT(session, values)


OUT_OF_STOCK = "out_of_stock"


def _take_stock(mark: str) -> str:
    """The conditional stock update: takes ``quantity`` only while that many are left."""
    return (f"UPDATE reward SET stock = stock - {mark} WHERE tenant_id = {mark} AND id = {mark} "
            f"AND stock IS NOT NULL AND stock >= {mark} RETURNING stock")


_TAKE_STOCK = DriverStatement(lambda d: _take_stock(d.mark))
# The same update refused in the database when it takes nothing (PostgreSQL, migration
# 0032: ``allegiance_refuse`` raises :data:`OUT_OF_STOCK` with the reward's id).
_TAKE_STOCK_FINAL = DriverStatement(lambda d: (
    f"WITH t AS ({_take_stock(d.mark)}) "
    f"SELECT coalesce((SELECT stock FROM t), allegiance_refuse('{OUT_OF_STOCK}', {d.mark}))"))


def send_take_stock(session: Session, tenant_id: str, reward_id: str,
                    quantity: int, *, final: bool = False) -> Callable[[], bool]:
    """Send the conditional stock update (``service._take_stock``'s, through the driver)
    without waiting for it (``DriverStatement.send``); the function returned tells whether it
    took the stock (False: out of stock). ``final`` (PostgreSQL): out of stock is raised in
    the database instead (``kit.placement.REFUSED``, reason :data:`OUT_OF_STOCK`)."""
    if final and session.get_bind().dialect.name == "postgresql":
        answer = _TAKE_STOCK_FINAL.send(session, (quantity, tenant_id, reward_id, quantity,
                                                  reward_id))
    else:
        answer = _TAKE_STOCK.send(session, (quantity, tenant_id, reward_id, quantity))
    return lambda: answer() is not None
