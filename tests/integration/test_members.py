"""Members on SQLite and PostgreSQL: accounts and hierarchy, users, enrolments, invitations,
merges (balances moved through the ledger) and role-checked transfers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from allegiance import audit, ledger, members, tenants
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.kit.models import OutboxMessage
from tests.conftest import World, build_world
from tests.support.invariants import assert_ledger_invariants


def _account(db: Database, tenant_id: str, name: str = "Acme", **kw: Any) -> members.Account:
    with db.transaction() as s:
        acc = members.create_account(s, tenant_id, name=name, **kw)
        s.expunge(acc)
        return acc


def _program(db: Database, tenant_id: str, code: str, mode: str,
             regions: list[str] | None = None) -> str:
    with db.transaction() as s:
        return tenants.create_program(s, tenant_id, code=code, name=code, base_currency="USD",
                                      enrolment_mode=mode, eligible_regions=regions).id


def _raises(db: Database, code: str, fn: Any) -> AllegianceError:
    with pytest.raises(AllegianceError) as info, db.transaction() as s:
        fn(s)
    assert info.value.code == code, info.value.to_dict()
    return info.value


def _events(db: Database, tenant_id: str, event_type: str) -> list[dict[str, Any]]:
    with db.read() as s:
        return [m.payload for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant_id, OutboxMessage.event_type == event_type))]


# ---------------------------------------------------------------------------------------------
# Accounts


def test_create_account_numbers_external_ids_and_audit(world: World) -> None:
    t = world.tenant_id
    a = _account(world.db, t, "Acme", external_ids=[("crm", "C-1"), ("erp", "E-1")],
                 region="us-ca", attributes={"segment": "gold"})
    b = _account(world.db, t, "Beta")
    c = _account(world.db, t, "Gamma", member_number="VIP-1")
    assert a.member_number == "M00000001" and b.member_number == "M00000002"
    assert c.member_number == "VIP-1" and a.region == "US-CA"
    _raises(world.db, "duplicate_member_number",
            lambda s: members.create_account(s, t, name="X", member_number="VIP-1"))
    err = _raises(world.db, "duplicate_external_id",
                  lambda s: members.create_account(s, t, name="X", external_ids=[("crm", "C-1")]))
    assert err.field == "external_ids[0]"
    err = _raises(world.db, "validation_error",
                  lambda s: members.create_account(s, t, name="X", region="Narnia"))
    assert err.field == "region"
    _raises(world.db, "validation_error", lambda s: members.create_account(s, t, name="  "))
    with world.db.read() as s:
        assert members.external_ids_of(s, t, [a.id])[a.id] == [("crm", "C-1"), ("erp", "E-1")]
        assert members.get_account(s, t, a.id).attributes == {"segment": "gold"}
        actions = [r.action for r in audit.history(s, t, object_type="account", object_id=a.id)]
    assert actions == ["account.created"]


def test_member_number_skips_numbers_given_by_hand(db: Database) -> None:
    w = build_world(db)
    _account(db, w.tenant_id, "Manual", member_number="M00000001")
    assert _account(db, w.tenant_id, "Auto").member_number == "M00000002"


def test_hierarchy_descendants_ancestors_and_cycles(world: World) -> None:
    t = world.tenant_id
    dist = _account(world.db, t, "Distributor")
    dealer = _account(world.db, t, "Dealer", parent_id=dist.id)
    branch = _account(world.db, t, "Branch", parent_id=dealer.id)
    shop = _account(world.db, t, "Shop", parent_id=branch.id)
    other = _account(world.db, t, "Other dealer", parent_id=dist.id)
    with world.db.read() as s:
        assert members.descendants(s, t, dist.id)[:2] == sorted([dealer.id, other.id])
        assert set(members.descendants(s, t, dist.id)) == {dealer.id, other.id, branch.id,
                                                           shop.id}
        assert members.descendants(s, t, shop.id) == []
        assert members.ancestors(s, t, shop.id) == [branch.id, dealer.id, dist.id]
        assert members.ancestors(s, t, dist.id) == []
    err = _raises(world.db, "hierarchy_cycle", lambda s: members.update_account(
        s, t, dist.id, {"parent_id": shop.id}, "tester"))
    assert err.field == "parent_id"
    _raises(world.db, "hierarchy_cycle", lambda s: members.update_account(
        s, t, dealer.id, {"parent_id": dealer.id}, "tester"))
    _raises(world.db, "account_not_found", lambda s: members.create_account(
        s, t, name="Orphan", parent_id="acc_missing"))
    with world.db.transaction() as s:  # moving a subtree elsewhere is fine
        members.update_account(s, t, branch.id, {"parent_id": other.id, "name": "Branch 2"},
                               "tester")
    with world.db.read() as s:
        assert members.ancestors(s, t, shop.id) == [branch.id, other.id, dist.id]
        assert members.get_account(s, t, branch.id).name == "Branch 2"
        page = members.list_accounts(s, t, parent_id=dist.id)
        assert [a.id for a in page.items] == sorted([dealer.id, other.id])


def test_update_account_refuses_protected_fields(world: World) -> None:
    a = _account(world.db, world.tenant_id)
    for field in ("status", "merged_into_id", "tenant_id"):
        err = _raises(world.db, "validation_error", lambda s, f=field: members.update_account(
            s, world.tenant_id, a.id, {f: "x"}, "tester"))
        assert err.field == field


def test_list_accounts_search_and_pages(world: World) -> None:
    t = world.tenant_id
    ids = [_account(world.db, t, f"Shop {i}", email=f"shop{i}@example.com").id for i in range(5)]
    _account(world.db, t, "Warehouse 100%")
    with world.db.read() as s:
        first = members.list_accounts(s, t, q="shop", limit=3)
        assert [a.id for a in first.items] == ids[:3] and first.next_cursor
        rest = members.list_accounts(s, t, q="shop", limit=3, cursor=first.next_cursor)
        assert [a.id for a in rest.items] == ids[3:] and rest.next_cursor is None
        assert len(members.list_accounts(s, t, q="SHOP3@example.com").items) == 1
        assert len(members.list_accounts(s, t, q="M00000002").items) == 1
        assert [a.name for a in members.list_accounts(s, t, q="100%").items] == [
            "Warehouse 100%"]


def test_find_account_by_id_external_id_member_number(world: World) -> None:
    t = world.tenant_id
    a = _account(world.db, t, "Acme", external_ids=[("crm", "C-9")])
    with world.db.read() as s:
        assert members.find_account(s, t, account_id=a.id).id == a.id
        assert members.find_account(s, t, external_id=("crm", "C-9")).id == a.id
        assert members.find_account(s, t, member_number=a.member_number).id == a.id
    err = _raises(world.db, "account_not_found",
                  lambda s: members.find_account(s, t, external_id=("crm", "nope")))
    assert err.field == "external_id"
    other = build_world(world.db)  # another tenant never sees it
    _raises(world.db, "account_not_found",
            lambda s: members.find_account(s, other.tenant_id, account_id=a.id))
    _raises(world.db, "account_not_found",
            lambda s: members.get_account(s, other.tenant_id, a.id))


# ---------------------------------------------------------------------------------------------
# Users


def test_users_roles_and_uniqueness(world: World) -> None:
    t = world.tenant_id
    a = _account(world.db, t)
    with world.db.transaction() as s:
        u = members.add_user(s, t, a.id, name="Ann", email="ann@acme.test", role="owner",
                             external_id="hr-1", actor="tester")
        members.add_user(s, t, a.id, name="Bob", role="rep", actor="tester")
        uid = u.id
    err = _raises(world.db, "validation_error", lambda s: members.add_user(
        s, t, a.id, name="Cy", role="king", actor="tester"))
    assert err.field == "role"
    err = _raises(world.db, "duplicate_email", lambda s: members.add_user(
        s, t, a.id, name="Ann 2", email="ann@acme.test", role="rep", actor="tester"))
    assert err.field == "email"
    err = _raises(world.db, "duplicate_external_id", lambda s: members.add_user(
        s, t, a.id, name="Ann 3", external_id="hr-1", role="rep", actor="tester"))
    assert err.field == "external_id"
    _raises(world.db, "account_not_found", lambda s: members.add_user(
        s, t, "acc_missing", name="Cy", role="rep", actor="tester"))
    with world.db.transaction() as s:
        members.update_user(s, t, uid, {"role": "manager", "email": "ann@acme.test",
                                        "status": "disabled"}, "tester")
    with world.db.read() as s:
        got = members.get_user(s, t, uid)
        assert (got.role, got.status) == ("manager", "disabled")
        assert [x.name for x in members.list_users(s, t, a.id)] == ["Ann", "Bob"]
    _raises(world.db, "validation_error",
            lambda s: members.update_user(s, t, uid, {"account_id": "x"}, "tester"))
    _raises(world.db, "user_not_found", lambda s: members.get_user(s, t, "usr_missing"))


# ---------------------------------------------------------------------------------------------
# Enrolments


def test_open_program_enrols_active_with_history_audit_and_outbox(world: World) -> None:
    t = world.tenant_id
    a = _account(world.db, t)
    with world.db.transaction() as s:
        e = members.enrol(s, t, world.program_id, a.id, actor="tester")
        eid = e.id
        assert e.status == "active"
    _raises(world.db, "already_enrolled",
            lambda s: members.enrol(s, t, world.program_id, a.id, actor="tester"))
    with world.db.transaction() as s:
        members.change_enrolment_status(s, t, eid, "suspended", actor="ops", reason="fraud check")
        members.change_enrolment_status(s, t, eid, "active", actor="ops")
    err = _raises(world.db, "invalid_status_transition", lambda s: members.change_enrolment_status(
        s, t, eid, "applied", actor="ops"))
    assert err.field == "to_status"
    with world.db.transaction() as s:
        members.change_enrolment_status(s, t, eid, "closed", actor="ops", reason="left")
    _raises(world.db, "invalid_status_transition", lambda s: members.change_enrolment_status(
        s, t, eid, "active", actor="ops"))
    with world.db.read() as s:
        history = [(c.from_status, c.to_status, c.reason, c.actor)
                   for c in members.enrolment_history(s, t, eid)]
        audited = [r.action for r in reversed(audit.history(s, t, object_type="enrolment",
                                                            object_id=eid))]
    assert history == [(None, "active", None, "tester"),
                       ("active", "suspended", "fraud check", "ops"),
                       ("suspended", "active", None, "ops"),
                       ("active", "closed", "left", "ops")]
    assert audited == ["enrolment.created"] + ["enrolment.status_changed"] * 3
    assert len(_events(world.db, t, "member.enrolled")) == 1
    changed = _events(world.db, t, "enrolment.status_changed")
    assert [(p["from_status"], p["status"]) for p in changed] == [
        ("active", "suspended"), ("suspended", "active"), ("active", "closed")]


def test_application_approve_and_reject(db: Database) -> None:
    w = build_world(db)
    t = w.tenant_id
    pid = _program(db, t, "nufarm", "application")
    a, b = _account(db, t, "A"), _account(db, t, "B")
    with db.transaction() as s:
        ea = members.enrol(s, t, pid, a.id, actor="a", application={"why": "we sell a lot"})
        eb = members.enrol(s, t, pid, b.id, actor="b")
        ids = (ea.id, eb.id)
        assert ea.status == eb.status == "applied"
        assert ea.application == {"why": "we sell a lot"}
    with db.read() as s:
        assert {e.id for e in members.list_enrolments(s, t, program_id=pid,
                                                      status="applied").items} == set(ids)
    with db.transaction() as s:
        assert members.approve_application(s, t, ids[0], actor="ops").status == "active"
    err = _raises(db, "validation_error",
                  lambda s: members.reject_application(s, t, ids[1], actor="ops", reason=" "))
    assert err.field == "reason"
    with db.transaction() as s:
        members.reject_application(s, t, ids[1], actor="ops", reason="not a reseller")
    _raises(db, "invalid_status_transition",
            lambda s: members.approve_application(s, t, ids[1], actor="ops"))
    with db.read() as s:
        assert members.get_enrolment(s, t, ids[1]).status == "rejected"
        assert members.enrolment_history(s, t, ids[1])[-1].reason == "not a reseller"
        assert [e.id for e in members.list_enrolments(s, t, account_id=a.id).items] == [ids[0]]
        with pytest.raises(AllegianceError):
            members.ensure_enrolled(s, t, pid, b.id, "events")


def test_region_eligibility(db: Database) -> None:
    w = build_world(db)
    t = w.tenant_id
    pid = _program(db, t, "usonly", "open", regions=["US", "CA-QC"])
    ca = _account(db, t, "Californian", region="US-CA")
    quebec = _account(db, t, "Quebec", region="CA-QC")
    ontario = _account(db, t, "Ontario", region="CA-ON")
    nowhere = _account(db, t, "Nowhere")
    with db.transaction() as s:
        members.enrol(s, t, pid, ca.id, actor="x")
        members.enrol(s, t, pid, quebec.id, actor="x")
    for acc in (ontario, nowhere):
        err = _raises(db, "region_not_eligible",
                      lambda s, a=acc: members.enrol(s, t, pid, a.id, actor="x"))
        assert err.field == "region"


def test_automatic_enrolment_on_first_event(db: Database) -> None:
    w = build_world(db)
    t = w.tenant_id
    auto = _program(db, t, "uber", "automatic")
    by_application = _program(db, t, "apply", "application")
    a = _account(db, t)
    with db.transaction() as s:
        first = members.ensure_enrolled(s, t, auto, a.id, "events")
        again = members.ensure_enrolled(s, t, auto, a.id, "events")
        assert first.id == again.id and first.status == "active"
        assert members.enrol(s, t, by_application, a.id, actor="x").status == "applied"
    _raises(db, "not_enrolled", lambda s: members.ensure_enrolled(s, t, by_application, a.id, "e"))
    with db.transaction() as s:
        members.change_enrolment_status(s, t, first.id, "suspended", actor="ops")
    _raises(db, "not_enrolled", lambda s: members.ensure_enrolled(s, t, auto, a.id, "events"))
    with db.read() as s:
        assert members.enrolment_history(s, t, first.id)[0].reason == "automatic enrolment"


def test_invitation_flows(db: Database) -> None:
    w = build_world(db)
    t = w.tenant_id
    pid = _program(db, t, "skinceuticals", "invitation")
    a, b, c = _account(db, t, "A"), _account(db, t, "B"), _account(db, t, "C")
    _raises(db, "invitation_required", lambda s: members.enrol(s, t, pid, a.id, actor="x"))
    with db.transaction() as s:
        inv, token = members.invite(s, t, pid, email="a@a.test", account_id=a.id,
                                    invited_by="ops")
        assert inv.token_hash != token and len(inv.token_hash) == 64
        [pending] = members.list_enrolments(s, t, program_id=pid).items
        assert pending.status == "invited"
    [sent] = _events(db, t, "member.invited")
    assert sent["token"] == token and sent["email"] == "a@a.test"
    _raises(db, "invitation_not_for_you",
            lambda s: members.accept_invitation(s, t, token, b.id, "b"))
    with db.transaction() as s:
        e = members.accept_invitation(s, t, token, a.id, "a")
        assert e.id == pending.id and e.status == "active"
    _raises(db, "invitation_already_used",
            lambda s: members.accept_invitation(s, t, token, a.id, "a"))
    _raises(db, "invitation_not_found",
            lambda s: members.accept_invitation(s, t, "inv_forged", a.id, "a"))
    # An open invitation (no account) used through enrol(); then revoked and expired ones.
    with db.transaction() as s:
        _, open_token = members.invite(s, t, pid, email="b@b.test", invited_by="ops")
        revoked, revoked_token = members.invite(s, t, pid, email="c@c.test", invited_by="ops")
        members.revoke_invitation(s, t, revoked.id, "ops")
        _, old_token = members.invite(s, t, pid, email="c@c.test", invited_by="ops",
                                      expires_in_days=1)
    with db.transaction() as s:
        assert members.enrol(s, t, pid, b.id, actor="b",
                             invitation_token=open_token).status == "active"
    _raises(db, "invitation_revoked",
            lambda s: members.accept_invitation(s, t, revoked_token, c.id, "c"))
    with clock.frozen(clock.now() + timedelta(days=2)):
        _raises(db, "invitation_expired",
                lambda s: members.accept_invitation(s, t, old_token, c.id, "c"))
    other = _program(db, t, "other", "invitation")
    with db.transaction() as s:
        _, wrong_program = members.invite(s, t, other, email="c@c.test", invited_by="ops")
    _raises(db, "invitation_not_for_you", lambda s: members.enrol(
        s, t, pid, c.id, actor="c", invitation_token=wrong_program))


# ---------------------------------------------------------------------------------------------
# Merge


def _earn(world: World, program_id: str, unit_id: str, issued_id: str, wallet_id: str,
          amount: int) -> None:
    with world.db.transaction() as s:
        ledger.post_entry(s, world.tenant_id, ledger.EntryRequest(
            program_id=program_id, kind="earn",
            lines=(ledger.Line(issued_id, unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(wallet_id, unit_id, ledger.Side.CREDIT, amount))))


def test_merge_moves_balances_users_ids_children_and_enrolments(world: World) -> None:
    t, db = world.tenant_id, world.db
    second = _program(db, t, "second", "open")
    with db.transaction() as s:
        unit2 = tenants.create_unit(s, t, second, code="miles", name="Miles", kind="points",
                                    value_in_base="0.01", expiry_policy={"kind": "never"}).id
        issued2 = ledger.program_account(s, t, second, unit2, "issued").id
    parent = _account(db, t, "Parent")
    source = _account(db, t, "Dup", parent_id=parent.id, external_ids=[("crm", "D-1")])
    target = _account(db, t, "Real", external_ids=[("crm", "R-1")])
    child = _account(db, t, "Child", parent_id=source.id)
    with db.transaction() as s:
        user = members.add_user(s, t, source.id, name="Ann", role="owner", actor="x")
        user_id = user.id
        src_enr = members.enrol(s, t, world.program_id, source.id, actor="x").id
        members.enrol(s, t, world.program_id, target.id, actor="x")
        moved_enr = members.enrol(s, t, second, source.id, actor="x").id
    src_wallet = world.wallet(source.id)
    tgt_wallet = world.wallet(target.id)
    user_wallet = world.wallet(user_id, "user")
    world.earn(src_wallet, 300)
    world.earn(tgt_wallet, 50)
    world.earn(user_wallet, 7)
    with db.transaction() as s:
        src_wallet2 = ledger.wallet(s, t, second, unit2, "account", source.id).id
    _earn(world, second, unit2, issued2, src_wallet2, 40)
    with db.transaction() as s:
        merged = members.merge_accounts(s, t, source_id=source.id, target_id=target.id,
                                        actor="ops", reason="duplicate in CRM")
        assert (merged.status, merged.merged_into_id) == ("merged", target.id)
    assert world.balance(src_wallet).posted == 0
    assert world.balance(tgt_wallet).posted == 350
    assert world.balance(user_wallet).posted == 7  # user wallets follow their user
    with db.read() as s:
        tgt_wallet2 = ledger.wallet(s, t, second, unit2, "account", target.id)
        assert ledger.balance_of(tgt_wallet2).posted == 40
        assert members.get_user(s, t, user_id).account_id == target.id
        assert members.find_account(s, t, external_id=("crm", "D-1")).id == target.id
        assert members.find_account(s, t, member_number=source.member_number).id == target.id
        assert members.get_account(s, t, child.id).parent_id == target.id
        assert members.get_enrolment(s, t, src_enr).status == "closed"
        assert members.enrolment_history(s, t, src_enr)[-1].reason == (
            f"account merged into {target.id}")
        assert members.get_enrolment(s, t, moved_enr).account_id == target.id
        kinds = {e.kind for e in s.scalars(select(ledger.JournalEntry).where(
            ledger.JournalEntry.tenant_id == t))}
        assert "merge" in kinds and "earn" in kinds  # history stays
        rec = audit.history(s, t, object_type="account", object_id=source.id)[0]
        assert rec.action == "account.merged"
        assert (rec.after or {})["reason"] == "duplicate in CRM"
    _raises(db, "account_not_active", lambda s: members.merge_accounts(
        s, t, source_id=source.id, target_id=target.id, actor="ops", reason="again"))
    _raises(db, "account_not_active", lambda s: members.update_account(
        s, t, source.id, {"name": "zombie"}, "ops"))
    assert_ledger_invariants(db)


def test_merge_refusals(world: World) -> None:
    t, db = world.tenant_id, world.db
    a = _account(db, t, "A")
    below = _account(db, t, "Below", parent_id=a.id)
    b = _account(db, t, "B")
    err = _raises(db, "invalid_merge", lambda s: members.merge_accounts(
        s, t, source_id=a.id, target_id=a.id, actor="ops", reason="x"))
    assert err.field == "into_account_id"
    _raises(db, "invalid_merge", lambda s: members.merge_accounts(
        s, t, source_id=a.id, target_id=below.id, actor="ops", reason="x"))
    _raises(db, "validation_error", lambda s: members.merge_accounts(
        s, t, source_id=a.id, target_id=b.id, actor="ops", reason=""))
    wallet = world.wallet(a.id)
    world.earn(wallet, 100)
    with db.transaction() as s:
        hold, _ = ledger.create_hold(s, t, ledger.HoldRequest(
            world.program_id, wallet, world.redeemed_id, world.unit_id, 30))
    _raises(db, "pending_holds", lambda s: members.merge_accounts(
        s, t, source_id=a.id, target_id=b.id, actor="ops", reason="dup"))
    with db.transaction() as s:
        ledger.void_hold(s, t, hold.id)
        members.merge_accounts(s, t, source_id=a.id, target_id=b.id, actor="ops", reason="dup")
    assert world.balance(world.wallet(b.id)).posted == 100
    with db.read() as s:  # the child of a moved to b
        assert members.get_account(s, t, below.id).parent_id == b.id


# ---------------------------------------------------------------------------------------------
# Role-checked transfers


def test_transfer_as_user_follows_the_role_table(world: World) -> None:
    t, db = world.tenant_id, world.db
    hq = _account(db, t, "HQ")
    shop = _account(db, t, "Shop", parent_id=hq.id)
    sub = _account(db, t, "Sub-shop", parent_id=shop.id)
    stranger = _account(db, t, "Stranger")
    with db.transaction() as s:
        owner = members.add_user(s, t, shop.id, name="O", role="owner", actor="x").id
        manager = members.add_user(s, t, shop.id, name="M", role="manager", actor="x").id
        rep = members.add_user(s, t, shop.id, name="R", role="rep", actor="x").id
        viewer = members.add_user(s, t, shop.id, name="V", role="viewer", actor="x").id
    w = {name: world.wallet(oid) for name, oid in
         (("hq", hq.id), ("shop", shop.id), ("sub", sub.id), ("stranger", stranger.id))}
    for name, uid in (("owner", owner), ("manager", manager), ("rep", rep), ("viewer", viewer)):
        w[name] = world.wallet(uid, "user")
    for wallet_id in w.values():
        world.earn(wallet_id, 100)

    def move(user: str, src: str, dst: str, amount: int = 10) -> ledger.EntryResult:
        with db.transaction() as s:
            return members.transfer_as_user(s, t, user_id=user, from_wallet_id=w[src],
                                            to_wallet_id=w[dst], amount=amount)

    move(rep, "rep", "shop")
    move(manager, "rep", "shop")  # team user wallet pooled into the account
    move(manager, "manager", "shop")
    move(owner, "shop", "sub")
    move(owner, "sub", "shop")
    move(owner, "shop", "hq")  # pooling into the parent account
    move(owner, "shop", "rep")  # paying the team
    for user, src, dst in ((rep, "shop", "rep"), (rep, "rep", "hq"), (manager, "shop", "hq"),
                           (manager, "shop", "rep"), (viewer, "viewer", "shop"),
                           (owner, "hq", "shop"), (owner, "shop", "stranger"),
                           (owner, "rep", "shop")):
        err = _raises(db, "role_forbidden", lambda s, u=user, a=src, b=dst:
                      members.transfer_as_user(s, t, user_id=u, from_wallet_id=w[a],
                                               to_wallet_id=w[b], amount=1))
        assert err.status == 403
    assert world.balance(w["shop"]).posted == 100 + 10 + 10 + 10 - 10 + 10 - 10 - 10
    assert world.balance(w["rep"]).posted == 100 - 10 - 10 + 10
    assert world.balance(w["hq"]).posted == 110
    with db.transaction() as s:
        first = members.transfer_as_user(s, t, user_id=rep, from_wallet_id=w["rep"],
                                         to_wallet_id=w["shop"], amount=5, entry_key="k1")
        again = members.transfer_as_user(s, t, user_id=rep, from_wallet_id=w["rep"],
                                         to_wallet_id=w["shop"], amount=5, entry_key="k1")
        assert first.entry_id == again.entry_id and not again.created
    with db.transaction() as s:
        members.update_user(s, t, rep, {"status": "disabled"}, "ops")
    _raises(db, "user_not_active", lambda s: members.transfer_as_user(
        s, t, user_id=rep, from_wallet_id=w["rep"], to_wallet_id=w["shop"], amount=1))
    err = _raises(db, "wallet_not_found", lambda s: members.transfer_as_user(
        s, t, user_id=owner, from_wallet_id=world.issued_id, to_wallet_id=w["shop"], amount=1))
    assert err.field == "from_wallet_id"
    _raises(db, "insufficient_funds", lambda s: members.transfer_as_user(
        s, t, user_id=owner, from_wallet_id=w["owner"], to_wallet_id=w["shop"], amount=1000))


def test_user_may_view_and_spend(world: World) -> None:
    t, db = world.tenant_id, world.db
    shop = _account(db, t, "Shop")
    sub = _account(db, t, "Sub", parent_id=shop.id)
    with db.transaction() as s:
        owner = members.add_user(s, t, shop.id, name="O", role="owner", actor="x").id
        rep = members.add_user(s, t, shop.id, name="R", role="rep", actor="x").id
        viewer = members.add_user(s, t, shop.id, name="V", role="viewer", actor="x").id
    shop_w, sub_w, rep_w = world.wallet(shop.id), world.wallet(sub.id), world.wallet(rep, "user")
    expected = {
        (owner, shop_w): (True, True), (owner, sub_w): (True, True),
        (owner, rep_w): (True, False), (rep, shop_w): (False, False),
        (rep, rep_w): (True, True), (viewer, shop_w): (True, False),
        (viewer, sub_w): (False, False), (viewer, rep_w): (False, False),
    }
    with db.read() as s:
        for (user, wallet), (view, spend) in expected.items():
            assert members.user_may(s, t, user, wallet, "view") is view, (user, wallet)
            assert members.user_may(s, t, user, wallet, "spend") is spend, (user, wallet)
    with db.transaction() as s:
        members.update_user(s, t, owner, {"status": "disabled"}, "ops")
    with db.read() as s:
        assert not members.user_may(s, t, owner, shop_w)


def test_history_in_order_when_changes_share_an_instant(db: Database,
                                                        frozen_clock: clock.FrozenClock) -> None:
    w = build_world(db)
    a = _account(db, w.tenant_id)
    steps = ["suspended", "active", "suspended", "active", "closed"]
    with db.transaction() as s:
        eid = members.enrol(s, w.tenant_id, w.program_id, a.id, actor="x").id
        for step in steps:
            members.change_enrolment_status(s, w.tenant_id, eid, step, actor="x")
    with db.read() as s:
        history = [(h.from_status, h.to_status)
                   for h in members.enrolment_history(s, w.tenant_id, eid)]
    assert history == list(zip([None, "active", *steps[:-1]], ["active", *steps], strict=True))
