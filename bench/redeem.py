"""``python -m bench redeem``: redemptions through the HTTP API, open loop.

Per engine, one fresh migrated database: a tenant, a program with a points unit, a catalogue
of two rewards (an e-voucher with ample stock, and a gift whose stock is smaller than the
demand, so that stock runs out during the load), N member accounts with points, an
integration API key; then the real server (``allegiance serve``, uvicorn, one worker, bound to
127.0.0.1, killed by its PID) as in ``bench.api``.

``redeem.api``: ``POST /v1/programs/{id}/redemptions`` with an ``Idempotency-Key`` at R
requests/s offered, **open loop** (sent on schedule whatever the answers; latency measured
from the scheduled time) for D seconds, by ``bench.api_load`` in a process of its own (raw
keep-alive sockets: the client costs microseconds per request), after an untimed warm-up of
200 voucher redemptions. Goal (issue "Rewards, cashback…"): p99 ≤ 25 ms and zero errors
(R = 200, D = 20; ``--quick`` D = 5). An answer ``409`` for the scarce gift is the right
answer (out of stock), not an error; anything else ≥ 300 is an error. ``--redeem-workers``
sets the server's processes (1).

Correctness after the load: the redemptions stored equal the created answers; the gift never
oversold (stock ≥ 0 and redeemed = initial stock − stock), and every gift asked for was
either sold or refused once the stock was gone (so a 409 is only ever out of stock); every wallet's balance equals its
grant minus what its redemptions cost; ``ledger.reconcile`` finds no mismatch; resending 50
requests with their ``Idempotency-Key`` adds no redemption.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from allegiance import ledger, members, rewards, tenants
from allegiance.kit.db import Database
from bench.api import load, server
from bench.api_load import redeem_body
from bench.common import Check, databases, postgres_available, write_results

MEMBERS = 1_000
GRANT = 1_000_000
VOUCHER_COST = 100
GIFT_COST = 500
GIFT_STOCK = 300
GOAL_P99_MS = 25.0
WARM_UP = 200


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
        self.seed = seed

    def request(self) -> dict[str, Any]:
        """The load generator's request spec (``bench.api_load.redeem_body`` builds each body)."""
        return {"kind": "redeem", "program_id": self.program_id, "key": self.key,
                "prefix": "r", "seed": self.seed, "accounts": self.accounts,
                "gift_id": self.gift_id, "voucher_id": self.voucher_id}

    def gift_asks(self, total: int) -> int:
        spec = self.request()
        return sum(1 for i in range(total) if redeem_body(spec, i)["reward_id"] == self.gift_id)

    def settle(self, quiet: float = 2.0, limit: float = 120.0) -> float:
        """Wait until no redemption has been stored for ``quiet`` seconds (at most ``limit``
        seconds): a server the load overran is still committing requests whose clients gave
        up, and checks read while it does would count a moving target. The seconds waited."""
        db = Database(self.url)
        started = time.monotonic()
        try:
            last, since = -1, started
            while time.monotonic() - started < limit:
                with db.read() as s:
                    count = int(s.execute(select(func.count()).select_from(rewards.Redemption)
                                          .where(rewards.Redemption.tenant_id ==
                                                 self.tenant_id)).scalar_one())
                now = time.monotonic()
                if count != last:
                    last, since = count, now
                elif now - since >= quiet:
                    break
                time.sleep(0.25)
        finally:
            db.engine.dispose()
        return time.monotonic() - started

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
    group.add_argument("--redeem-workers", type=int, default=1,
                       help="server processes (uvicorn workers)")
    group.add_argument("--redeem-trace", metavar="FILE",
                       help="write each request's [scheduled second, latency] (JSON) to "
                            "FILE.ENGINE.json, to see whether slow answers come together")


def _engine(engine: str, args: argparse.Namespace, lines: list[str],
            checks: list[Check]) -> bool:
    seconds = args.redeem_seconds or (5.0 if args.quick else 20.0)
    rate = args.redeem_rate
    total = int(rate * seconds)
    with databases(engine) as dbs:
        catalogue = Catalogue(dbs.new(), args.seed)
        with server(catalogue.url, workers=args.redeem_workers) as base:
            job = {"mode": "open", "rate": rate, "seconds": seconds, "connections": 32,
                   "request": catalogue.request(), "ok": [201, 409],
                   "trace": bool(args.redeem_trace)}
            # Warm-up, untimed: 200 voucher redemptions (numbers past the load's, the gift
            # left out so the stock accounting below stays the load's) over 8 connections,
            # so every server process has run the path once before the clock starts.
            warm_spec = {**catalogue.request(), "prefix": "w",
                         "gift_id": catalogue.voucher_id}
            warm = load(base, {"mode": "closed", "connections": 8, "seconds": 10.0,
                               "max_requests": WARM_UP, "first": 10 * total + 1_000,
                               "request": warm_spec, "ok": [201]})
            result = load(base, job)
            if args.redeem_trace:
                Path(f"{args.redeem_trace}.{engine}.json").write_text(
                    json.dumps({"start_unix": result["trace_start_unix"],
                                "columns": ["scheduled_s", "latency_s", "sent_late_s"],
                                "requests": result["trace"]}))
            statuses = result["statuses"]
            out_of_stock = statuses.get("409", 0)
            created = statuses.get("201", 0) + warm["statuses"].get("201", 0)
            worst, median = result["p99_ms"] or float("inf"), result["p50_ms"] or 0.0
            passed = (worst <= GOAL_P99_MS and result["errors"] == 0
                      and result["answered"] == total)
            lines.append(
                f"redeem.api engine={engine} workers={args.redeem_workers} offered={rate}/s "
                f"for {seconds:g}s p50={median:.1f}ms p99={worst:.1f}ms "
                f"errors={result['errors']} out_of_stock={out_of_stock} "
                f"goal=p99<={GOAL_P99_MS:g}ms,0 errors {'PASS' if passed else 'FAIL'}")
            settled = catalogue.settle()
            state = catalogue.state()
            # A request its client gave up on (an error) may still have been stored.
            unknown = result["errors"] + warm["errors"]
            checks.append(Check("redeem.stored", engine,
                                created <= state["redemptions"] <= created + unknown,
                                f"{state['redemptions']} redemptions, {created} created, "
                                f"{unknown} given up by the client; settled after "
                                f"{settled:.1f}s"))
            sold = GIFT_STOCK - state["gift_stock"]
            # A 409 is right only as out_of_stock: every gift asked for was sold or refused,
            # and refusals only once the stock was gone.
            checks.append(Check(
                "redeem.no_oversell", engine,
                state["gift_stock"] >= 0 and state["gifts"] == sold
                and (result["answered"] < total
                     or sold + out_of_stock == catalogue.gift_asks(total))
                and (out_of_stock == 0 or state["gift_stock"] == 0),
                f"{state['gifts']} gifts of {GIFT_STOCK}, stock left {state['gift_stock']}, "
                f"{out_of_stock} refused"))
            checks.append(Check("redeem.balances", engine,
                                state["wrong_balances"] == 0 and state["mismatches"] == 0,
                                f"{state['wrong_balances']} wrong balances, "
                                f"{state['mismatches']} reconcile mismatches"))
            again = load(base, {**job, "rate": 50, "seconds": 1.0, "ok": [200, 201, 409]})
            after = catalogue.state()
            checks.append(Check("redeem.replay_adds_nothing", engine,
                                again["errors"] == 0 and again["answered"] == 50
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
