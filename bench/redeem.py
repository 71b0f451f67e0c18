"""``python -m bench redeem``: redemptions through the HTTP API, open loop.

Per engine, one fresh migrated database: a tenant, a program with a points unit, a catalogue
of two rewards (an e-voucher with ample stock, and a gift whose stock is smaller than the
demand, so that stock runs out during the load), N member accounts with points, an
integration API key; then the real server (``allegiance serve``, uvicorn, one worker, bound to
127.0.0.1, killed by its PID) as in ``bench.api``.

``redeem.api``: ``POST /v1/programs/{id}/redemptions`` with an ``Idempotency-Key`` at R
requests/s offered, **open loop** (sent on schedule whatever the answers; latency measured
from the scheduled time) for D seconds. Goal (issue "Rewards, cashback…"): p99 ≤ 25 ms and
zero errors (R = 200, D = 20; ``--quick`` D = 5). An answer ``409 out_of_stock`` for the
scarce gift is the right answer, not an error; anything else ≥ 300 is an error.

Correctness after the load: the redemptions stored equal the created answers; the gift never
oversold (stock ≥ 0 and redeemed = initial stock − stock); every wallet's balance equals its
grant minus what its redemptions cost; ``ledger.reconcile`` finds no mismatch; resending 50
requests with their ``Idempotency-Key`` adds no redemption.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from typing import Any

import httpx
from sqlalchemy import func, select

from allegiance import ledger, members, rewards, tenants
from allegiance.kit.db import Database
from bench.api import open_loop, p99, server
from bench.common import Check, databases, postgres_available, write_results

MEMBERS = 1_000
GRANT = 1_000_000
VOUCHER_COST = 100
GIFT_COST = 500
GIFT_STOCK = 300
GOAL_P99_MS = 25.0


class Catalogue:
    """One database's program, rewards, members and the requests of the load."""

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        db = Database(url)
        try:
            with db.transaction() as s:
                tenant = tenants.create_tenant(s, "Bench redeem")
                program = tenants.create_program(s, tenant.id, code="main", name="Main",
                                                 base_currency="USD")
                unit = tenants.create_unit(s, tenant.id, program.id, code="points",
                                           name="Points", kind="points", value_in_base="0.01",
                                           expiry_policy={"kind": "never"})
                self.key = tenants.create_api_key(s, tenant.id, name="bench",
                                                  scopes=["integration"]).secret
                voucher = rewards.create_reward(s, tenant.id, program.id, code="voucher",
                                                name="Voucher", kind="service",
                                                unit_id=unit.id, cost=VOUCHER_COST)
                gift = rewards.create_reward(s, tenant.id, program.id, code="gift",
                                             name="Gift", kind="physical", unit_id=unit.id,
                                             cost=GIFT_COST, stock=GIFT_STOCK)
                issued = ledger.program_account(s, tenant.id, program.id, unit.id, "issued")
                self.accounts: list[str] = []
                self.wallets: dict[str, str] = {}
                requests = []
                for n in range(MEMBERS):
                    account = members.create_account(s, tenant.id, name=f"Member {n}")
                    wallet = ledger.wallet(s, tenant.id, program.id, unit.id, "account",
                                           account.id)
                    self.accounts.append(account.id)
                    self.wallets[account.id] = wallet.id
                    requests.append(ledger.EntryRequest(
                        program_id=program.id, kind="issue", entry_key=f"grant:{n}",
                        lines=(ledger.Line(issued.id, unit.id, ledger.Side.DEBIT, GRANT),
                               ledger.Line(wallet.id, unit.id, ledger.Side.CREDIT, GRANT))))
                ledger.post_entries(s, tenant.id, requests)
                self.tenant_id, self.program_id = tenant.id, program.id
                self.voucher_id, self.gift_id = voucher.id, gift.id
        finally:
            db.engine.dispose()
        self.headers = {"Authorization": f"Bearer {self.key}"}
        self.seed = seed
        self.out_of_stock = 0

    def body(self, i: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + i)
        reward = self.gift_id if rng.random() < 0.25 else self.voucher_id
        return {"reward_id": reward, "account_id": rng.choice(self.accounts)}

    async def redeem(self, client: httpx.AsyncClient, i: int) -> httpx.Response:
        answer = await client.post(f"/v1/programs/{self.program_id}/redemptions",
                                   json=self.body(i),
                                   headers={**self.headers, "Idempotency-Key": f"r-{i}"})
        if answer.status_code == 409 and answer.json()["error"]["code"] == "out_of_stock":
            self.out_of_stock += 1
            return httpx.Response(200)  # the right answer when the gift ran out
        return answer

    def state(self) -> dict[str, Any]:
        db = Database(self.url)
        try:
            with db.read() as s:
                redemptions = rewards.Redemption
                rows = s.execute(
                    select(redemptions.reward_id, redemptions.account_id, func.count())
                    .where(redemptions.tenant_id == self.tenant_id)
                    .group_by(redemptions.reward_id, redemptions.account_id)).all()
                gift_stock = rewards.get_reward(s, self.tenant_id, self.gift_id).stock
                balances = {
                    account_id: ledger.balance_of(
                        ledger.get_account(s, self.tenant_id, wallet_id)).posted
                    for account_id, wallet_id in self.wallets.items()
                }
                _, mismatches = ledger.reconcile(s)
        finally:
            db.engine.dispose()
        count = sum(int(n) for _, _, n in rows)
        gifts = sum(int(n) for reward, _, n in rows if reward == self.gift_id)
        spent: dict[str, int] = {a: 0 for a in self.accounts}
        for reward, account, n in rows:
            spent[account] += int(n) * (GIFT_COST if reward == self.gift_id else VOUCHER_COST)
        wrong = sum(1 for a in self.accounts if balances[a] != GRANT - spent[a])
        return {"redemptions": count, "gifts": gifts, "gift_stock": gift_stock,
                "wrong_balances": wrong, "mismatches": len(mismatches)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("redeem")
    group.add_argument("--redeem-seconds", type=float, help="seconds of load (20; quick 5)")
    group.add_argument("--redeem-rate", type=int, default=200, help="requests/s offered")


def _engine(engine: str, args: argparse.Namespace, lines: list[str],
            checks: list[Check]) -> bool:
    seconds = args.redeem_seconds or (5.0 if args.quick else 20.0)
    rate = args.redeem_rate
    with databases(engine) as dbs:
        catalogue = Catalogue(dbs.new(), args.seed)
        with server(catalogue.url) as base:
            latencies, errors = asyncio.run(open_loop(base, catalogue.redeem, rate, seconds))
            worst = p99(latencies) * 1000
            median = sorted(latencies)[len(latencies) // 2] * 1000 if latencies else 0.0
            passed = worst <= GOAL_P99_MS and errors == 0
            created = len(latencies) - errors - catalogue.out_of_stock
            lines.append(
                f"redeem.api engine={engine} offered={rate}/s for {seconds:g}s "
                f"p50={median:.1f}ms p99={worst:.1f}ms errors={errors} "
                f"out_of_stock={catalogue.out_of_stock} goal=p99<={GOAL_P99_MS:g}ms,0 errors "
                f"{'PASS' if passed else 'FAIL'}")
            state = catalogue.state()
            checks.append(Check("redeem.stored", engine, state["redemptions"] == created,
                                f"{state['redemptions']} redemptions, {created} created"))
            checks.append(Check(
                "redeem.no_oversell", engine,
                state["gift_stock"] >= 0 and state["gifts"] == GIFT_STOCK - state["gift_stock"],
                f"{state['gifts']} gifts of {GIFT_STOCK}, stock left {state['gift_stock']}"))
            checks.append(Check("redeem.balances", engine,
                                state["wrong_balances"] == 0 and state["mismatches"] == 0,
                                f"{state['wrong_balances']} wrong balances, "
                                f"{state['mismatches']} reconcile mismatches"))
            _, again_errors = asyncio.run(open_loop(base, catalogue.redeem, 50, 1.0))
            after = catalogue.state()
            checks.append(Check("redeem.replay_adds_nothing", engine,
                                again_errors == 0
                                and after["redemptions"] == state["redemptions"],
                                f"50 resent, {after['redemptions'] - state['redemptions']} new"))
    return passed


def run(args: argparse.Namespace) -> bool:
    lines: list[str] = []
    checks: list[Check] = []
    ok = True
    for engine in args.engine:
        if engine == "postgres" and not postgres_available():
            print("redeem engine=postgres SKIPPED (no server)")
            continue
        ok = _engine(engine, args, lines, checks) and ok
    for line in lines:
        print(line)
    for check in checks:
        print(check.line())
    write_results("redeem", {"seed": args.seed, "quick": args.quick, "open_loop": lines},
                  [], checks)
    return ok and all(c.ok for c in checks)
