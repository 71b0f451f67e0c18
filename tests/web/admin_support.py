"""Queue content for the admin tests and screenshots, made through the features' services:
enrolment applications, and a co-marketing fund with pre-approval requests and a claim."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from allegiance import mdf, members, tenants
from allegiance.demo import DemoResult
from allegiance.kit import clock
from allegiance.kit.db import Database

ACTOR = "test:seed"


@dataclass
class Queues:
    applications: dict[str, str] = field(default_factory=dict)  # account name -> enrolment id
    fund_id: str = ""
    requests: dict[str, str] = field(default_factory=dict)  # account role -> claim id
    claim_id: str = ""


def seed_queues(db: Database, demo: DemoResult) -> Queues:
    """Partner Rewards takes applications (three wait), and gets a US$10,000 co-marketing fund
    (50% of the cost) with two pre-approval requests and one claim with proof."""
    out = Queues()
    now = clock.now()
    program_id = next(p.id for p in demo.programs if p.code == "partner-rewards")
    with db.transaction() as s:
        tenants.update_program(s, demo.tenant_id, program_id, {"enrolment_mode": "application"})
        for number, (name, region) in enumerate((("Current Electric", "US-WA"),
                                                 ("Delta Solar Installers", "US-AZ"),
                                                 ("Ohm Sweet Ohm", "US-OR")), start=1):
            account = members.create_account(s, demo.tenant_id, name=name, region=region,
                                              member_number=f"A-{number:03d}",
                                              email=f"apply{number}@example.com", actor=ACTOR)
            enrolment = members.enrol(s, demo.tenant_id, program_id, account.id, actor=ACTOR)
            out.applications[name] = enrolment.id
        unit = tenants.create_unit(s, demo.tenant_id, program_id, code="coop-usd",
                                   name="Co-op dollars", kind="money", currency="USD",
                                   value_in_base="1")
        fund = mdf.create_fund(s, demo.tenant_id, program_id, code="2026-h2",
                               name="H2 co-marketing", unit_id=unit.id, budget=1_000_000,
                               period_start=now - timedelta(days=30),
                               period_end=now + timedelta(days=150),
                               claim_deadline=now + timedelta(days=180),
                               formula={"percent": "50"}, actor=ACTOR)
        out.fund_id = fund.id
        for role in ("dealer_west", "dealer_south"):
            mdf.allocate(s, demo.tenant_id, fund.id, demo.accounts[role], 200_000, actor=ACTOR)
        for role, activity, cost in (("dealer_west", "Trade show booth", 120_000),
                                     ("dealer_south", "Radio spots", 50_000)):
            out.requests[role] = mdf.request(
                s, demo.tenant_id, fund.id, account_id=demo.accounts[role], activity=activity,
                media="event", estimated_cost=cost, actor=ACTOR).id
        out.claim_id = mdf.submit_claim(
            s, demo.tenant_id, fund.id, account_id=demo.accounts["dealer_south"],
            actual_cost=40_000, proof_ref="https://example.com/proof/ad.jpg",
            invoice_ref="INV-4411", activity="Newspaper ad", actor=ACTOR).id
    return out
