"""Monthly choose-your-reward: a menu of catalogue rewards from which an account picks a
number of rewards per period (in the program's time zone). A pick is a redemption of the
catalogue — stock, eligibility, limits and the points go through the rewards feature and the
ledger — and the (account, period, number) key refuses a pick past the allowance even when two
arrive at once. A bonus menu (rewards without a bill) gives the reward's cost before the pick
redeems it, so the member spends nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance import ledger, members, rewards, tenants
from allegiance.engagement import domain
from allegiance.engagement.errors import AlreadyPicked, DuplicateCode, InvalidMenu, MenuNotFound
from allegiance.engagement.models import MenuPick, RewardMenu
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.ids import new_id


def create_menu(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                reward_ids: list[str], period: str = "month", picks: int = 1,
                bonus: bool = False) -> RewardMenu:
    tenants.get_program(session, tenant_id, program_id)
    if period not in domain.PERIODS:
        raise InvalidMenu(f"period must be one of {', '.join(domain.PERIODS)}", field="period")
    if picks < 1:
        raise InvalidMenu("picks must be at least 1", field="picks")
    if not reward_ids:
        raise InvalidMenu("a menu lists at least one reward", field="reward_ids")
    for reward_id in reward_ids:
        if rewards.get_reward(session, tenant_id, reward_id).program_id != program_id:
            raise InvalidMenu(f"reward {reward_id} belongs to another program",
                              field="reward_ids")
    menu = RewardMenu(tenant_id=tenant_id, id=new_id("mnu"), program_id=program_id, code=code,
                      name=name, period=period, picks=picks,
                      reward_ids=list(dict.fromkeys(reward_ids)), bonus=bonus, status="active",
                      created_at=clock.now())
    add_unique(session, menu, DuplicateCode(f"menu {code} exists in this program", field="code"))
    return menu


def get_menu(session: Session, tenant_id: str, menu_id: str) -> RewardMenu:
    row = session.get(RewardMenu, (tenant_id, menu_id))
    if row is None:
        raise MenuNotFound(f"menu {menu_id} not found", field="menu_id")
    return row


def list_menus(session: Session, tenant_id: str, program_id: str) -> list[RewardMenu]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(RewardMenu).where(
        RewardMenu.tenant_id == tenant_id, RewardMenu.program_id == program_id
    ).order_by(RewardMenu.code)))


def _picked(session: Session, tenant_id: str, menu_id: str, account_id: str,
            index: int) -> int:
    return int(session.scalar(select(func.count()).select_from(MenuPick).where(
        MenuPick.tenant_id == tenant_id, MenuPick.menu_id == menu_id,
        MenuPick.account_id == account_id, MenuPick.period_index == index)) or 0)


def pick(session: Session, tenant_id: str, menu_id: str, account_id: str, reward_id: str, *,
         user_id: str | None = None, actor: str) -> MenuPick:
    """Pick a reward of the menu for this period: redeems it through the catalogue."""
    menu = get_menu(session, tenant_id, menu_id)
    if menu.status != "active":
        raise InvalidMenu("the menu is retired", field="menu_id")
    if reward_id not in menu.reward_ids:
        raise InvalidMenu("the reward is not on this menu", field="reward_id")
    # a bonus pick is a gift of points: an erased member gets none
    members.refuse_erased(members.get_account(session, tenant_id, account_id), "account_id")
    program = tenants.get_program(session, tenant_id, menu.program_id)
    now = clock.now()
    index = domain.period_index(menu.period, now, program.time_zone)
    number = _picked(session, tenant_id, menu.id, account_id, index) + 1
    if number > menu.picks:
        raise AlreadyPicked(f"{menu.picks} pick(s) per {menu.period} already made",
                            field="account_id")
    if menu.bonus:
        _give_cost(session, tenant_id, menu, account_id, reward_id,
                   f"menu-bonus:{menu.id}:{account_id}:{index}:{number}", actor)
    redemption = rewards.redeem(session, tenant_id, menu.program_id, reward_id, account_id,
                                user_id=user_id, actor=actor)
    row = MenuPick(tenant_id=tenant_id, menu_id=menu.id, account_id=account_id,
                   period_index=index, number=number, reward_id=reward_id,
                   redemption_id=redemption.id, picked_at=now)
    add_unique(session, row, AlreadyPicked("a pick for this period was just made", field="account_id"))
    outbox.emit(session, tenant_id, "reward_menu.picked", {
        "program_id": menu.program_id, "menu": menu.code, "account_id": account_id,
        "reward_id": reward_id, "redemption_id": redemption.id,
        "period": domain.period_label(menu.period, index)})
    return row


def _give_cost(session: Session, tenant_id: str, menu: RewardMenu, account_id: str,
               reward_id: str, key: str, actor: str) -> None:
    """A bonus pick is the program's gift: the reward's cost is issued to the account (an earn
    entry from the unit's ``issued`` account) just before the pick redeems it."""
    reward = rewards.get_reward(session, tenant_id, reward_id)
    issued = ledger.program_account(session, tenant_id, menu.program_id, reward.unit_id,
                                    "issued")
    wallet = ledger.wallet(session, tenant_id, menu.program_id, reward.unit_id, "account",
                           account_id)
    ledger.post_entry(session, tenant_id, ledger.EntryRequest(
        program_id=menu.program_id, kind="earn", source_type="reward_menu", source_id=menu.id,
        entry_key=key, actor=actor, memo=f"bonus reward {reward.code} of menu {menu.code}",
        lines=(ledger.Line(issued.id, reward.unit_id, ledger.Side.DEBIT, reward.cost),
               ledger.Line(wallet.id, reward.unit_id, ledger.Side.CREDIT, reward.cost))))


@dataclass(frozen=True)
class MenuState:
    menu: RewardMenu
    period: str
    picks_left: int
    picked: list[MenuPick]
    resets_at: datetime | None


def state_of(session: Session, tenant_id: str, menu_id: str, account_id: str) -> MenuState:
    """What the account picked this period and how many picks it has left."""
    menu = get_menu(session, tenant_id, menu_id)
    members.get_account(session, tenant_id, account_id)
    program = tenants.get_program(session, tenant_id, menu.program_id)
    index = domain.period_index(menu.period, clock.now(), program.time_zone)
    rows = list(session.scalars(select(MenuPick).where(
        MenuPick.tenant_id == tenant_id, MenuPick.menu_id == menu.id,
        MenuPick.account_id == account_id, MenuPick.period_index == index
    ).order_by(MenuPick.number)))
    bounds = domain.period_bounds(menu.period, index, program.time_zone)
    return MenuState(menu, domain.period_label(menu.period, index),
                     max(menu.picks - len(rows), 0), rows, bounds[1] if bounds else None)
