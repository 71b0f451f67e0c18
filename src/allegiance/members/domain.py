"""Pure rules of members: who may see, spend and move which wallet; enrolment status
transitions; member numbers; invitation tokens; hierarchy cycles. No I/O."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from enum import StrEnum

ROLES: tuple[str, ...] = ("owner", "manager", "rep", "viewer")
ENROLMENT_MODES: tuple[str, ...] = ("open", "application", "invitation", "automatic")
USER_STATUSES: tuple[str, ...] = ("active", "disabled")

_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


class Relation(StrEnum):
    """How a wallet's owner relates to the user who wants to act on it."""

    OWN_USER = "own_user"  # the user's own wallet
    TEAM_USER = "team_user"  # another user of the user's account or of one of its descendants
    OWN_ACCOUNT = "own_account"  # the wallet of the user's account
    DESCENDANT_ACCOUNT = "descendant_account"  # a wallet of an account below the user's
    PARENT_ACCOUNT = "parent_account"  # the wallet of the user's account's parent (pooling)
    OTHER = "other"  # anything else


def relation(
    wallet_owner_type: str,
    wallet_owner_is_self: bool,
    same_account_or_descendant: bool,
    *,
    parent_account: bool = False,
) -> Relation:
    """Classify a wallet for a user.

    ``wallet_owner_is_self``: the wallet is the user's own (user wallet) or its account's
    (account wallet). ``same_account_or_descendant``: the owning account (or the owning user's
    account) is the user's account or below it. ``parent_account``: an account wallet of the
    parent of the user's account.
    """
    if wallet_owner_type == "user":
        if wallet_owner_is_self:
            return Relation.OWN_USER
        return Relation.TEAM_USER if same_account_or_descendant else Relation.OTHER
    if wallet_owner_type == "account":
        if wallet_owner_is_self:
            return Relation.OWN_ACCOUNT
        if same_account_or_descendant:
            return Relation.DESCENDANT_ACCOUNT
        return Relation.PARENT_ACCOUNT if parent_account else Relation.OTHER
    return Relation.OTHER


R = Relation

# What each role may see and spend.
VIEW: dict[str, frozenset[Relation]] = {
    "owner": frozenset({R.OWN_USER, R.TEAM_USER, R.OWN_ACCOUNT, R.DESCENDANT_ACCOUNT}),
    "manager": frozenset({R.OWN_USER, R.TEAM_USER, R.OWN_ACCOUNT}),
    "rep": frozenset({R.OWN_USER}),
    "viewer": frozenset({R.OWN_USER, R.OWN_ACCOUNT}),
}
SPEND: dict[str, frozenset[Relation]] = {
    "owner": frozenset({R.OWN_USER, R.OWN_ACCOUNT, R.DESCENDANT_ACCOUNT}),
    "manager": frozenset({R.OWN_USER, R.OWN_ACCOUNT}),
    "rep": frozenset({R.OWN_USER}),
    "viewer": frozenset(),
}
# Transfers (from, to) each role may make. Owners move freely inside their subtree, pay their
# team and pool into the parent account; managers and reps pool user wallets into the account.
_OWNER_FROM = (R.OWN_USER, R.OWN_ACCOUNT, R.DESCENDANT_ACCOUNT)
_OWNER_TO = (R.OWN_USER, R.TEAM_USER, R.OWN_ACCOUNT, R.DESCENDANT_ACCOUNT)
TRANSFER: dict[str, frozenset[tuple[Relation, Relation]]] = {
    "owner": frozenset(
        {(f, t) for f in _OWNER_FROM for t in _OWNER_TO}
        | {(R.OWN_ACCOUNT, R.PARENT_ACCOUNT), (R.DESCENDANT_ACCOUNT, R.PARENT_ACCOUNT)}
    ),
    "manager": frozenset({(R.OWN_USER, R.OWN_ACCOUNT), (R.TEAM_USER, R.OWN_ACCOUNT)}),
    "rep": frozenset({(R.OWN_USER, R.OWN_ACCOUNT)}),
    "viewer": frozenset(),
}


def may_view_wallet(
    role: str, wallet_owner_type: str, wallet_owner_is_self: bool, same_account_or_descendant: bool
) -> bool:
    rel = relation(wallet_owner_type, wallet_owner_is_self, same_account_or_descendant)
    return rel in VIEW.get(role, frozenset())


def may_spend(
    role: str, wallet_owner_type: str, wallet_owner_is_self: bool, same_account_or_descendant: bool
) -> bool:
    rel = relation(wallet_owner_type, wallet_owner_is_self, same_account_or_descendant)
    return rel in SPEND.get(role, frozenset())


def may_transfer(role: str, from_relation: Relation, to_relation: Relation) -> bool:
    if from_relation == to_relation and from_relation in (R.OWN_USER, R.OWN_ACCOUNT):
        return False  # a wallet never transfers to itself
    return (from_relation, to_relation) in TRANSFER.get(role, frozenset())


# ---------------------------------------------------------------------------------------------
# Enrolments

# An application or an invitation not taken up may be withdrawn (closed), as an erasure does.
TRANSITIONS: dict[str, frozenset[str]] = {
    "applied": frozenset({"active", "rejected", "closed"}),
    "invited": frozenset({"active", "closed"}),
    "active": frozenset({"suspended", "closed"}),
    "suspended": frozenset({"active", "closed"}),
    "closed": frozenset(),
    "rejected": frozenset(),
}


def may_change_status(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def initial_status(enrolment_mode: str, *, invited: bool) -> str | None:
    """The status a new enrolment starts in, or None when it needs an invitation."""
    if invited or enrolment_mode in ("open", "automatic"):
        return "active"
    if enrolment_mode == "application":
        return "applied"
    return None


def chain_order(changes: list[tuple[str, str | None, str]]) -> list[int]:
    """Order status changes ``(time key, from, to)`` (sorted by time) so that changes made at
    the same instant follow one another: each starts where the previous one ended."""
    order: list[int] = []
    previous: str | None = None
    index = 0
    while index < len(changes):
        end = index
        while end < len(changes) and changes[end][0] == changes[index][0]:
            end += 1
        group = list(range(index, end))
        while group:
            pick = next((i for i in group if changes[i][1] == previous), group[0])
            group.remove(pick)
            order.append(pick)
            previous = changes[pick][2]
        index = end
    return order


def joins_automatically(enrolment_mode: str) -> bool:
    """Whether a first event may enrol an account without asking."""
    return enrolment_mode in ("open", "automatic")


# ---------------------------------------------------------------------------------------------
# Accounts


def member_number(counter: int) -> str:
    """``M`` and an eight-digit zero-padded counter: M00000042."""
    if counter < 1:
        raise ValueError("member number counters start at 1")
    return f"M{counter:08d}"


def valid_region(region: str) -> bool:
    """ISO 3166-1 alpha-2 country, optionally with a subdivision: ``US``, ``US-CA``."""
    return bool(_REGION.match(region))


def creates_cycle(account_id: str, new_parent_id: str | None, parent_ancestors: Iterable[str]) -> bool:
    """Whether making ``new_parent_id`` (whose ancestors are ``parent_ancestors``) the parent of
    ``account_id`` would make the account its own ancestor."""
    if new_parent_id is None:
        return False
    return new_parent_id == account_id or account_id in set(parent_ancestors)


# ---------------------------------------------------------------------------------------------
# Invitations


def new_token() -> str:
    """An unguessable invitation token (shown once, stored only as its hash)."""
    return "inv_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
