"""Portal content on top of the demo data (the demo has none): a co-marketing fund with an
allocation and requests, a referral plan with a sign-up, member events, a course completed,
a challenge, badges and leaderboard scores. Used by tests/web and tests/ui."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from allegiance import engagement, events, ledger, mdf, members, referrals, tenants
from allegiance.demo import DemoResult
from allegiance.kit import clock
from allegiance.kit.db import Database

ACTOR = "test:seed"


@dataclass(frozen=True)
class Seeded:
    fund_id: str
    preapproved_id: str
    plan_id: str
    code: str
    summit_id: str
    dinner_id: str  # by invitation, dealer_west not invited
    referred_account_id: str


def seed_portal(db: Database, demo: DemoResult) -> Seeded:
    acc = demo.accounts
    rewards_id = next(p.id for p in demo.programs if p.code == "partner-rewards")
    cashback = next(p for p in demo.programs if p.code == "dealer-cashback")
    usd = next(u.id for u in cashback.units if u.kind == "money")
    now = clock.now()
    with db.transaction() as s:
        tokens = next(u.id for u in tenants.list_units(s, demo.tenant_id, rewards_id))
        fund = mdf.create_fund(
            s, demo.tenant_id, cashback.id, code="q-mdf", name="Co-marketing fund",
            unit_id=usd, budget=1_000_000, period_start=now - timedelta(days=10),
            period_end=now + timedelta(days=80), claim_deadline=now + timedelta(days=110),
            formula={"percent": "50", "split_by_brands": True}, actor=ACTOR)
        mdf.allocate(s, demo.tenant_id, fund.id, acc["dealer_west"], 200_000, actor=ACTOR)
        mdf.allocate(s, demo.tenant_id, fund.id, acc["dealer_south"], 100_000, actor=ACTOR)
        asked = mdf.request(s, demo.tenant_id, fund.id, account_id=acc["dealer_west"],
                            activity="Trade show booth", estimated_cost=80_000, actor=ACTOR)
        mdf.preapprove(s, demo.tenant_id, asked.id, actor="operator:seed")

        plan = referrals.create_plan(
            s, demo.tenant_id, rewards_id, code="refer", name="Refer a partner",
            bounty_unit_id=tokens, bounty=1_000, lock_days=30,
            link_base="https://partners.example/join")
        code = referrals.issue_code(s, demo.tenant_id, plan.id, acc["dealer_west"], actor=ACTOR)
        newcomer = members.create_account(s, demo.tenant_id, name="Volt Supply",
                                          actor=ACTOR)
        referrals.signup(s, demo.tenant_id, rewards_id, code=code.code,
                         account_id=newcomer.id, actor=ACTOR)

        summit = engagement.create_event(
            s, demo.tenant_id, rewards_id, code="summit", name="Partner summit",
            starts_at=now + timedelta(days=20), ends_at=now + timedelta(days=21), capacity=50,
            attendance_unit_id=tokens, attendance_points=500)
        dinner = engagement.create_event(
            s, demo.tenant_id, rewards_id, code="vip", name="VIP dinner",
            starts_at=now + timedelta(days=30), ends_at=now + timedelta(days=30, hours=4),
            invitation_only=True)
        engagement.invite(s, demo.tenant_id, dinner.id, [acc["dealer_south"]])

        engagement.create_challenge(
            s, demo.tenant_id, rewards_id, code="courses", name="Three courses",
            description="Complete three courses.", trigger="activity:course_completed",
            target=3, effects=[{"type": "points", "unit": "tokens", "amount": 300}],
            actor=ACTOR)
        engagement.create_badge(s, demo.tenant_id, rewards_id, code="certified",
                                name="Certified", levels=["Bronze", "Silver", "Gold"])
        engagement.create_badge(s, demo.tenant_id, rewards_id, code="top", name="Top seller")
        engagement.award_badge(s, demo.tenant_id, rewards_id, acc["dealer_west"], "certified",
                               source="seed", actor=ACTOR)
    with db.transaction() as s:
        events.ingest(s, demo.tenant_id, rewards_id, events.EventData(
            external_id="course-1", kind="activity", source="lms",
            activity_type="course_completed", account_id=acc["dealer_west"],
            occurred_at=now - timedelta(hours=2),
            attributes={"course_id": "safety-101", "mandatory": True}),
            actor=ACTOR)
        events.ingest(s, demo.tenant_id, rewards_id, events.EventData(
            external_id="sale-1", kind="purchase", source="erp", account_id=acc["dealer_south"],
            occurred_at=now - timedelta(hours=1), currency="USD",
            lines=(events.LineIn(sku="CAB-1", name=None, category=None, brand=None, labels=(),
                                  quantity=2, unit_price=15_000, amount=None),)), actor=ACTOR)
    for email, amount, days_ago in (("tom@acme.example", 700, 3),
                                    ("luis@acme.example", 150, 40)):
        user_earning(db, demo, email, amount, days_ago)
    return Seeded(fund.id, asked.id, plan.id, code.code, summit.id, dinner.id, newcomer.id)


def user_earning(db: Database, demo: DemoResult, email: str, amount: int,
                 days_ago: int) -> None:
    """Tokens earned by a member user's own wallet (a SPIFF), ``days_ago``."""
    program = next(p.id for p in demo.programs if p.code == "partner-rewards")
    with db.transaction() as s:
        user = next(u for u in s.query(members.User).filter(members.User.email == email))
        unit = tenants.unit_by_code(s, demo.tenant_id, program, "tokens").id
        wallet = ledger.wallet(s, demo.tenant_id, program, unit, "user", user.id).id
        issued = ledger.program_account(s, demo.tenant_id, program, unit, "issued").id
        ledger.post_entry(s, demo.tenant_id, ledger.EntryRequest(
            program_id=program, kind="earn", source_type="test", source_id=email,
            entry_key=f"spiff:{email}:{days_ago}", memo=f"SPIFF {days_ago}", actor=ACTOR,
            effective_at=clock.now() - timedelta(days=days_ago),
            lines=(ledger.Line(issued, unit, ledger.Side.DEBIT, amount),
                   ledger.Line(wallet, unit, ledger.Side.CREDIT, amount))))
