"""Redemptions whose last writes are final (COMMIT in the pipeline on PostgreSQL, refusals
raised by the database): nothing written after the early COMMIT, Idempotency-Key twins,
reward limits and wallets, the audit chain from an empty tenant, group commit, and a final
write run at once. (Written as a review of session 10's change.)"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from allegiance import audit, ledger, members, rewards, tenants
from allegiance.api.app import create_app
from allegiance.audit.service import DEFER
from allegiance.kit import web as context
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.kit.placement import collect_last_writes, finish_last_writes
from allegiance.rewards.models import Redemption
from allegiance.rewards.service import redeem_values
from tests.conftest import World, build_world
from tests.reliability.harness import run_threads
from tests.support.invariants import assert_ledger_invariants


def _fund(w: World, owner: str, amount: int, owner_type: str = "account") -> str:
    with w.db.transaction() as s:
        wallet = ledger.wallet(s, w.tenant_id, w.program_id, w.unit_id, owner_type, owner)
        ledger.post_entry(s, w.tenant_id, ledger.EntryRequest(
            program_id=w.program_id, kind="issue",
            lines=(ledger.Line(w.issued_id, w.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(wallet.id, w.unit_id, ledger.Side.CREDIT, amount))))
        return wallet.id


def _setup(db: Database, **reward_kw: Any) -> tuple[World, str, str]:
    w = build_world(db)
    with db.transaction() as s:
        acc = members.create_account(s, w.tenant_id, name="Acme", region="US").id
        rid = rewards.create_reward(s, w.tenant_id, w.program_id, code="mug", name="Mug",
                                    kind="physical", unit_id=w.unit_id,
                                    **({"cost": 100} | reward_kw)).id
    return w, acc, rid


# 1. A final write run at once (no collector, or inside a savepoint) --------------------------

def test_post_last_without_a_collector_refuses_with_the_features_error(db: Database) -> None:
    """``last_write`` runs the write at once when nothing collects; the final posting's
    refusal is then raised by PostgreSQL as AL001 and nobody maps it back."""
    w, acc, rid = _setup(db)
    _fund(w, acc, 50)
    with pytest.raises(AllegianceError) as caught, w.db.transaction() as s:
        redeem_values(s, w.tenant_id, w.program_id, rid, acc, post_last=True)
    assert caught.value.code == "insufficient_funds"


def test_post_last_in_a_savepoint_refuses_with_the_features_error(db: Database) -> None:
    w, acc, rid = _setup(db, stock=5)
    _fund(w, acc, 50)
    with w.db.transaction() as s:
        collect_last_writes(s)
        with pytest.raises(AllegianceError) as caught, s.begin_nested():
            redeem_values(s, w.tenant_id, w.program_id, rid, acc, post_last=True)
        finish_last_writes(s)
    assert caught.value.code == "insufficient_funds"


# 2. Idempotency-Key twins of a final redemption (as if in two processes) ---------------------

class _NeverInFlight(set[tuple[str, str]]):
    def __contains__(self, item: object) -> bool:
        return False


def _redeem_at_once(db: Database, w: World, key: str, reward_id: str, account_id: str,
                    n: int, idempotency_key: Any) -> list[Any]:
    """``n`` threads post the same redemption through the API together (after a barrier),
    thread ``i`` with ``Idempotency-Key: idempotency_key(i)``; their answers (or errors)."""
    with TestClient(create_app(db, rate_limit_per_minute=0),
                    raise_server_exceptions=False) as client:
        def send(i: int, barrier: threading.Barrier) -> Any:
            barrier.wait()
            return client.post(f"/v1/programs/{w.program_id}/redemptions",
                               json={"reward_id": reward_id, "account_id": account_id},
                               headers={"Authorization": f"Bearer {key}",
                                        "Idempotency-Key": idempotency_key(i)})
        return list(run_threads(n, send, timeout=120))


def test_redemption_twins_across_processes_replay(pg_db: Database,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    w, acc, rid = _setup(pg_db, stock=50)
    _fund(w, acc, 10_000)
    with pg_db.transaction() as s:
        key = tenants.create_api_key(s, w.tenant_id, name="k", scopes=["integration"]).secret
    monkeypatch.setattr(context, "_in_flight", _NeverInFlight())
    replays: list[int] = []
    original = context.Ctx._replay

    def counted(self: Any, key: str, fingerprint: str) -> Any:
        replays.append(1)  # reached only through the twin's unique violation
        return original(self, key, fingerprint)

    monkeypatch.setattr(context.Ctx, "_replay", counted)
    # Whether a twin meets the violation is up to the scheduler (on a loaded machine the
    # first twin may commit before the others send): up to five rounds, one key each.
    rounds = 0
    while rounds < 5 and not replays:
        rounds += 1
        twin = f"twin-{rounds}"
        results = _redeem_at_once(pg_db, w, key, rid, acc, 16, lambda _, k=twin: k)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors[:2]
        statuses = Counter(r.status_code for r in results)
        assert set(statuses) <= {201, 409}, [(r.status_code, r.text) for r in results][:4]
        bodies = {r.text for r in results if r.status_code == 201}
        assert len(bodies) == 1
    assert replays, "no twin met the unique violation at the pipelined COMMIT"
    with pg_db.read(w.tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Redemption)) == rounds
        assert audit.verify(s, w.tenant_id).first_bad_seq is None
    assert_ledger_invariants(pg_db)


# 3. The four redemption features through the API ----------------------------------------------

def test_redemption_features_through_the_api(db: Database) -> None:
    w = build_world(db)
    with db.transaction() as s:
        acc = members.create_account(s, w.tenant_id, name="Acme", region="US").id
        rep = members.add_user(s, w.tenant_id, acc, name="Rep", role="rep", email=None).id
        limited = rewards.create_reward(s, w.tenant_id, w.program_id, code="lim", name="L",
                                        kind="physical", unit_id=w.unit_id, cost=10,
                                        limit_per_member=1, stock=5).id
        minimum = rewards.create_reward(s, w.tenant_id, w.program_id, code="min", name="M",
                                        kind="physical", unit_id=w.unit_id, cost=10,
                                        min_balance=900).id
        approval = rewards.create_reward(s, w.tenant_id, w.program_id, code="app", name="A",
                                         kind="physical", unit_id=w.unit_id, cost=100,
                                         requires_approval=True).id
        plain = rewards.create_reward(s, w.tenant_id, w.program_id, code="pl", name="P",
                                      kind="physical", unit_id=w.unit_id, cost=100).id
        key = tenants.create_api_key(s, w.tenant_id, name="k",
                                     scopes=["integration", "admin"]).secret
    _fund(w, acc, 1_000)
    user_wallet = _fund(w, rep, 150, "user")
    with TestClient(create_app(db, rate_limit_per_minute=0),
                    raise_server_exceptions=False) as client:
        def post(body: dict[str, Any], n: int) -> Any:
            return client.post(f"/v1/programs/{w.program_id}/redemptions", json=body,
                               headers={"Authorization": f"Bearer {key}",
                                        "Idempotency-Key": f"f-{n}"})
        got = []
        got.append(post({"reward_id": limited, "account_id": acc}, 1))
        got.append(post({"reward_id": limited, "account_id": acc}, 2))   # limit reached
        got.append(post({"reward_id": minimum, "account_id": acc}, 3))   # 990 >= 900
        got.append(post({"reward_id": minimum, "account_id": acc}, 4))   # 980 >= 900
        got.append(post({"reward_id": approval, "account_id": acc}, 5))  # held
        got.append(post({"reward_id": minimum, "account_id": acc}, 6))   # 870 < 900
        got.append(post({"reward_id": plain, "account_id": acc, "user_id": rep,
                         "pay_from": "user"}, 7))
        got.append(post({"reward_id": plain, "account_id": acc, "user_id": rep,
                         "pay_from": "user"}, 8))                         # user overdrawn
        verified = client.get("/v1/audit-log/verify",
                              headers={"Authorization": f"Bearer {key}"}).json()
    summary = [(r.status_code, r.json().get("status") or r.json()["error"]["code"])
               for r in got]
    assert summary == [(201, "approved"), (409, "limit_reached"), (201, "approved"),
                       (201, "approved"), (201, "requested"), (422, "below_minimum"),
                       (201, "approved"), (422, "insufficient_funds")], summary
    with db.read(w.tenant_id) as s:
        assert ledger.balance_of(ledger.get_account(s, w.tenant_id, user_wallet)).available == 50
    assert verified["ok"] is True
    assert_ledger_invariants(db)


# 4. audit.verify after single-row upserts and multi-row writes from an empty tenant ----------

def test_audit_chain_mixes_single_and_multi_row_writes_from_empty(db: Database) -> None:
    with db.transaction() as s:
        tenant_id = tenants.create_tenant(s, "Audit mix").id
    with db.read(tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(audit.AuditRecord).where(
            audit.AuditRecord.tenant_id == tenant_id)) == 0

    def unit(n: int, nested: bool = False) -> None:
        with db.transaction(tenant_id) as s:
            s.info[DEFER] = []
            for i in range(n):
                audit.record(s, tenant_id, actor="t", action="a", object_type="x",
                             object_id=f"{n}-{i}", after={"i": i, "ü": "ß"})
            if nested:
                with s.begin_nested():
                    audit.record(s, tenant_id, actor="t", action="n", object_type="x",
                                 object_id="nested", before={"k": [1, None]})
            audit.send_pending(s)()

    for n, nested in ((1, False), (1, False), (3, False), (1, True), (2, True), (1, False)):
        unit(n, nested)
    with db.read(tenant_id) as s:
        check = audit.verify(s, tenant_id)
    assert check.first_bad_seq is None and check.rows == 11


# 5. Final redemptions under PostgreSQL group commit (refusals inside the group's savepoints) --

@pytest.fixture
def grouped_pg(pg_db: Database) -> Any:
    url = pg_db.url
    db = Database(url, group_commit=True)
    try:
        yield db
    finally:
        db.dispose()


def test_final_redemptions_and_refusals_in_postgres_commit_groups(grouped_pg: Database) -> None:
    db = grouped_pg
    w, _, rid = _setup(db, stock=6)
    accounts = []
    with db.transaction() as s:
        for i in range(8):
            accounts.append(members.create_account(s, w.tenant_id, name=f"M{i}").id)
        key = tenants.create_api_key(s, w.tenant_id, name="k", scopes=["integration"]).secret
    for i, acc in enumerate(accounts):
        _fund(w, acc, 250 if i % 2 else 50)   # the even ones cannot pay 100
    with TestClient(create_app(db, rate_limit_per_minute=0),
                    raise_server_exceptions=False) as client:
        def send(i: int, barrier: threading.Barrier) -> Any:
            barrier.wait()
            return client.post(f"/v1/programs/{w.program_id}/redemptions",
                               json={"reward_id": rid, "account_id": accounts[i % 8]},
                               headers={"Authorization": f"Bearer {key}",
                                        "Idempotency-Key": f"g-{i}"})
        results = run_threads(24, send, timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:2]
    summary = Counter((r.status_code, r.json().get("status") or r.json()["error"]["code"])
                      for r in results)
    created = summary[(201, "approved")]
    assert set(summary) <= {(201, "approved"), (422, "insufficient_funds"),
                            (409, "out_of_stock")}, summary
    with db.read(w.tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Redemption)) == created
        assert audit.verify(s, w.tenant_id).first_bad_seq is None
    assert created == 6, summary  # 4 payers × 2 each = 8 wanted, stock 6
    assert_ledger_invariants(db)


# 6. Nothing is sent between the early COMMIT and the unit of work's end ----------------------

def test_no_statement_after_the_early_commit(pg_db: Database,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from allegiance.kit import placement

    early: set[int] = set()
    fired: list[int] = []
    after: list[str] = []
    original_commit_early = placement.SentWrites.commit_early

    def commit_early(self: Any, session: Any) -> bool:
        done = original_commit_early(self, session)
        if done:
            with placement.driver_connection(session) as conn:
                early.add(id(conn))
                fired.append(1)
        return done

    def watch(name: str) -> None:
        original = getattr(psycopg.Cursor, name)

        def wrapped(self: Any, query: Any, *a: Any, **k: Any) -> Any:
            if id(self.connection) in early:
                after.append(str(query)[:80])
            return original(self, query, *a, **k)
        monkeypatch.setattr(psycopg.Cursor, name, wrapped)

    for name in ("execute", "executemany"):
        watch(name)
    for name in ("commit", "rollback"):
        original_end = getattr(psycopg.Connection, name)

        def ended(self: Any, _original: Any = original_end) -> Any:
            early.discard(id(self))
            return _original(self)
        monkeypatch.setattr(psycopg.Connection, name, ended)
    monkeypatch.setattr(placement.SentWrites, "commit_early", commit_early)

    w, acc, rid = _setup(pg_db, stock=5)
    _fund(w, acc, 1_000)
    with pg_db.transaction() as s:
        key = tenants.create_api_key(s, w.tenant_id, name="k", scopes=["integration"]).secret
    with TestClient(create_app(pg_db, rate_limit_per_minute=0),
                    raise_server_exceptions=False) as client:
        for n, headers in enumerate(({"Idempotency-Key": "a"}, {}, {"Idempotency-Key": "a"})):
            r = client.post(f"/v1/programs/{w.program_id}/redemptions",
                            json={"reward_id": rid, "account_id": acc},
                            headers={"Authorization": f"Bearer {key}", **headers})
            assert r.status_code == 201, (n, r.text)
    assert len(fired) == 2  # the two new redemptions committed early; the replay wrote nothing
    assert after == []


def test_limit_per_member_holds_under_concurrent_final_redemptions(pg_db: Database) -> None:
    w, acc, rid = _setup(pg_db, limit_per_member=2, stock=100)
    _fund(w, acc, 10_000)
    with pg_db.transaction() as s:
        key = tenants.create_api_key(s, w.tenant_id, name="k", scopes=["integration"]).secret
    results = _redeem_at_once(pg_db, w, key, rid, acc, 12, lambda i: f"l-{i}")
    summary = Counter((r.status_code, r.json().get("status") or r.json()["error"]["code"])
                      for r in results)
    assert summary == Counter({(201, "approved"): 2, (409, "limit_reached"): 10}), summary
    with pg_db.read(w.tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Redemption)) == 2
