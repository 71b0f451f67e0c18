"""The pure rules of members: the role table (checked exhaustively against a hand-written
matrix), enrolment transitions, member numbers, regions, cycles and invitation tokens."""

from __future__ import annotations

import itertools

import pytest

from allegiance.members import domain
from allegiance.members.domain import Relation as R

STATUSES = ("applied", "invited", "active", "suspended", "closed", "rejected")

# (owner_type, owner_is_self, same_account_or_descendant, parent_account) -> relation
CLASSIFY = {
    ("user", True, True, False): R.OWN_USER,
    ("user", True, False, False): R.OWN_USER,
    ("user", False, True, False): R.TEAM_USER,
    ("user", False, False, False): R.OTHER,
    ("account", True, True, False): R.OWN_ACCOUNT,
    ("account", True, False, False): R.OWN_ACCOUNT,
    ("account", False, True, False): R.DESCENDANT_ACCOUNT,
    ("account", False, False, False): R.OTHER,
    ("account", False, False, True): R.PARENT_ACCOUNT,
    ("program", False, False, False): R.OTHER,
    ("program", True, True, False): R.OTHER,
}

# Written out by hand from PRODUCT.md / the brief, one line per role.
VIEW = {
    "owner": {R.OWN_USER, R.TEAM_USER, R.OWN_ACCOUNT, R.DESCENDANT_ACCOUNT},
    "manager": {R.OWN_USER, R.TEAM_USER, R.OWN_ACCOUNT},
    "rep": {R.OWN_USER},
    "viewer": {R.OWN_USER, R.OWN_ACCOUNT},
}
SPEND = {
    "owner": {R.OWN_USER, R.OWN_ACCOUNT, R.DESCENDANT_ACCOUNT},
    "manager": {R.OWN_USER, R.OWN_ACCOUNT},
    "rep": {R.OWN_USER},
    "viewer": set(),
}
TRANSFER = {
    "owner": {
        (R.OWN_USER, R.OWN_ACCOUNT), (R.OWN_USER, R.DESCENDANT_ACCOUNT), (R.OWN_USER, R.TEAM_USER),
        (R.OWN_ACCOUNT, R.OWN_USER), (R.OWN_ACCOUNT, R.TEAM_USER),
        (R.OWN_ACCOUNT, R.DESCENDANT_ACCOUNT), (R.OWN_ACCOUNT, R.PARENT_ACCOUNT),
        (R.DESCENDANT_ACCOUNT, R.OWN_USER), (R.DESCENDANT_ACCOUNT, R.TEAM_USER),
        (R.DESCENDANT_ACCOUNT, R.OWN_ACCOUNT), (R.DESCENDANT_ACCOUNT, R.DESCENDANT_ACCOUNT),
        (R.DESCENDANT_ACCOUNT, R.PARENT_ACCOUNT),
    },
    "manager": {(R.OWN_USER, R.OWN_ACCOUNT), (R.TEAM_USER, R.OWN_ACCOUNT)},
    "rep": {(R.OWN_USER, R.OWN_ACCOUNT)},
    "viewer": set(),
}
# Wallet shapes reachable through may_view_wallet / may_spend (no parent flag there).
SHAPES = [(t, s, d) for t in ("user", "account") for s in (True, False) for d in (True, False)]


@pytest.mark.parametrize(("key", "expected"), CLASSIFY.items())
def test_relation_classification(key: tuple[str, bool, bool, bool], expected: R) -> None:
    owner_type, is_self, in_scope, parent = key
    assert domain.relation(owner_type, is_self, in_scope, parent_account=parent) is expected


@pytest.mark.parametrize("role", domain.ROLES)
def test_view_and_spend_match_the_table_exhaustively(role: str) -> None:
    for owner_type, is_self, in_scope in SHAPES:
        rel = CLASSIFY[(owner_type, is_self, in_scope, False)]
        assert domain.may_view_wallet(role, owner_type, is_self, in_scope) is (
            rel in VIEW[role]), (role, rel)
        assert domain.may_spend(role, owner_type, is_self, in_scope) is (
            rel in SPEND[role]), (role, rel)


@pytest.mark.parametrize("role", domain.ROLES)
def test_transfer_matches_the_table_exhaustively(role: str) -> None:
    for src, dst in itertools.product(R, R):
        assert domain.may_transfer(role, src, dst) is ((src, dst) in TRANSFER[role]), (
            role, src, dst)


def test_role_table_is_coherent() -> None:
    for role in domain.ROLES:
        assert SPEND[role] <= VIEW[role], role  # nobody spends what they cannot see
        assert R.OTHER not in VIEW[role] | SPEND[role]
        for src, dst in TRANSFER[role]:
            assert R.OTHER not in (src, dst)
            assert src != dst or src is R.DESCENDANT_ACCOUNT  # sibling accounts below
    assert not domain.may_transfer("owner", R.OWN_ACCOUNT, R.OWN_ACCOUNT)


def test_unknown_roles_may_do_nothing() -> None:
    assert not domain.may_view_wallet("admin", "user", True, True)
    assert not domain.may_spend("admin", "account", True, True)
    assert not any(domain.may_transfer("", a, b) for a, b in itertools.product(R, R))


def test_enrolment_transitions_exhaustively() -> None:
    allowed = {("applied", "active"), ("applied", "rejected"), ("applied", "closed"),
               ("invited", "active"), ("invited", "closed"),
               ("active", "suspended"), ("active", "closed"), ("suspended", "active"),
               ("suspended", "closed")}
    for a, b in itertools.product(STATUSES, STATUSES):
        assert domain.may_change_status(a, b) is ((a, b) in allowed), (a, b)
    assert not domain.may_change_status("unknown", "active")


def test_initial_status_by_mode() -> None:
    assert domain.initial_status("open", invited=False) == "active"
    assert domain.initial_status("automatic", invited=False) == "active"
    assert domain.initial_status("application", invited=False) == "applied"
    assert domain.initial_status("invitation", invited=False) is None
    for mode in domain.ENROLMENT_MODES:
        assert domain.initial_status(mode, invited=True) == "active"
    assert [m for m in domain.ENROLMENT_MODES if domain.joins_automatically(m)] == [
        "open", "automatic"]


def test_member_numbers() -> None:
    assert domain.member_number(1) == "M00000001"
    assert domain.member_number(123456789) == "M123456789"
    with pytest.raises(ValueError):
        domain.member_number(0)


@pytest.mark.parametrize(("region", "ok"), [
    ("US", True), ("US-CA", True), ("GB-ENG", True), ("IN-23", True), ("us", False),
    ("USA", False), ("US-", False), ("US-CALI", False), ("", False), ("U", False),
])
def test_regions(region: str, ok: bool) -> None:
    assert domain.valid_region(region) is ok


def test_cycles() -> None:
    # a <- b <- c (c's ancestors are b, a)
    assert domain.creates_cycle("a", "c", ["b", "a"])  # a below its own grandchild
    assert domain.creates_cycle("a", "a", [])
    assert not domain.creates_cycle("c", "a", [])
    assert not domain.creates_cycle("a", None, ["x"])
    assert not domain.creates_cycle("d", "c", ["b", "a"])


def test_invitation_tokens() -> None:
    tokens = {domain.new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(t.startswith("inv_") and len(t) > 40 for t in tokens)
    token = next(iter(tokens))
    digest = domain.hash_token(token)
    assert digest == domain.hash_token(token) and len(digest) == 64 and token not in digest
    assert domain.hash_token(token + "x") != digest


def test_chain_order_untangles_changes_made_at_the_same_instant() -> None:
    changes = [("t1", None, "applied"), ("t2", "active", "suspended"), ("t2", "applied", "active"),
               ("t3", "suspended", "closed")]
    assert domain.chain_order(changes) == [0, 2, 1, 3]
    assert domain.chain_order([]) == []
    # Already in order, or with a gap in the chain: kept as sorted.
    assert domain.chain_order([("a", None, "x"), ("b", "y", "z")]) == [0, 1]
