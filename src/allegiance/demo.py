"""The demo tenant: two programs, a small dealer network and some ledger history.

Built once per database through the same services the API uses (``allegiance demo`` and
``make run``); every later run finds it (a marker in the tenant's settings) and only issues a
fresh admin API key, since keys are stored hashed and cannot be shown again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import (
    definitions,
    ledger,
    members,
    memberships,
    operators,
    rewards,
    tenants,
    tiers,
)
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import NotFound
from allegiance.kit.models import Tenant

DEMO_TENANT = "Demo Co"
MARKER = "demo"
VERSION = 1
ACTOR = "system:demo"


@dataclass(frozen=True)
class DemoUnit:
    id: str
    code: str
    kind: str


@dataclass(frozen=True)
class DemoProgram:
    id: str
    code: str
    name: str
    units: list[DemoUnit]


@dataclass(frozen=True)
class DemoResult:
    tenant_id: str
    created: bool
    api_key: str
    programs: list[DemoProgram]
    # Role in the demo network (distributor, dealer_west…) → account id.
    accounts: dict[str, str] = field(default_factory=dict)
    # Account role → wallet id in the points program.
    wallets: dict[str, str] = field(default_factory=dict)
    # The web apps' demo sign-ins: [(app, e-mail, password, who)].
    sign_ins: list[tuple[str, str, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "created": self.created,
            "api_key": self.api_key,
            "programs": [
                {"id": p.id, "code": p.code, "name": p.name,
                 "units": [{"id": u.id, "code": u.code, "kind": u.kind} for u in p.units]}
                for p in self.programs
            ],
            "accounts": self.accounts,
            "wallets": self.wallets,
            "sign_ins": [{"app": a, "email": e, "password": p, "who": w}
                         for a, e, p, w in self.sign_ins],
        }


def find_demo_tenant(session: Session) -> Tenant | None:
    for tenant in session.scalars(
        select(Tenant).where(Tenant.name == DEMO_TENANT).order_by(Tenant.created_at, Tenant.id)
    ):
        if isinstance(tenant.settings, dict) and MARKER in tenant.settings:
            return tenant
    return None


def build_demo(db: Database) -> DemoResult:
    """Create the demo tenant unless it exists; always issue a new admin API key."""
    with db.transaction() as session:
        tenant = find_demo_tenant(session)
        created = tenant is None
        if tenant is None:
            tenant = tenants.create_tenant(session, DEMO_TENANT)
            marker = _populate(session, tenant.id)
            tenant.settings = {**(tenant.settings or {}), MARKER: marker}
            session.flush()
        marker = dict(tenant.settings[MARKER])
        sign_ins = _web_demo(session, tenant.id, marker)
        issued = tenants.create_api_key(session, tenant.id, name="demo admin", scopes=["admin"])
        programs = [
            DemoProgram(
                p.id, p.code, p.name,
                [DemoUnit(u.id, u.code, u.kind) for u in tenants.list_units(session, tenant.id, p.id)],
            )
            for p in tenants.list_programs(session, tenant.id)
        ]
        return DemoResult(
            tenant_id=tenant.id, created=created, api_key=issued.secret, programs=programs,
            accounts=dict(marker.get("accounts", {})), wallets=dict(marker.get("wallets", {})),
            sign_ins=sign_ins,
        )


# ---------------------------------------------------------------------------------------------
# The content


PARTNER_REWARDS: dict[str, Any] = {
    "program": {"code": "partner-rewards", "name": "Partner Rewards", "base_currency": "USD",
                "time_zone": "America/Los_Angeles", "enrolment_mode": "open"},
    "units": [{"code": "tokens", "name": "Tokens", "kind": "points", "value_in_base": "0.01",
               "expiry": {"kind": "after_months", "months": 24}}],
    "product_lists": {"own-brand": ["NW-PANEL-400", "NW-INVERTER-5K", "NW-BATTERY-10"]},
    "activity_types": {"course_completed": {"attributes": {"course_id": "str",
                                                            "mandatory": "bool"}}},
    "counters": {"mandatory_courses": {"trigger": "activity:course_completed",
                                       "condition": "event.attributes.mandatory",
                                       "distinct": "event.attributes.course_id"}},
    "rules": [
        {"code": "base", "name": "1 token per US$1 of purchases",
         "effects": [{"type": "points_per_amount", "unit": "tokens", "rate": "0.01"},
                     {"type": "tier_credit", "metric": "spend"}]},
        {"code": "own-brand", "name": "25 tokens per own-brand item",
         "condition": 'in_list(line.sku, "own-brand")',
         "effects": [{"type": "points_per_item", "unit": "tokens", "points": 25}],
         "limits": [{"period": "month", "max": 5000}]},
        {"code": "course", "name": "200 tokens per course", "trigger": "activity:course_completed",
         "effects": [{"type": "fixed", "unit": "tokens", "points": 200}]},
        {"code": "onboarding-bonus", "name": "First two mandatory courses: 100 tokens, once",
         "trigger": "activity:course_completed",
         "condition": "member.counters.mandatory_courses >= 2",
         "effects": [{"type": "fixed", "unit": "tokens", "points": 100}],
         "limits": [{"period": "lifetime", "times": 1}]},
    ],
    "tiers": [{"code": "partner", "name": "Partner level", "metric": "spend", "primary": True,
               "period": {"kind": "calendar_year"}, "downgrade": {"grace": "one_step"},
               "levels": [
                   {"code": "silver", "name": "Silver", "threshold": 0},
                   {"code": "gold", "name": "Gold", "threshold": 2_500_000,
                    "benefits": {"earn_multiplier": "1.25"}},
                   {"code": "platinum", "name": "Platinum", "threshold": 10_000_000,
                    "benefits": {"earn_multiplier": "1.5"}},
               ]}],
}

DEALER_CASHBACK: dict[str, Any] = {
    "program": {"code": "dealer-cashback", "name": "Dealer Cashback", "base_currency": "USD",
                "enrolment_mode": "open"},
    "units": [{"code": "usd", "name": "USD cashback", "kind": "money", "currency": "USD",
               "value_in_base": "1"}],
    "rules": [{"code": "cashback", "name": "2% back, at most $100 a month",
               "effects": [{"type": "percent", "unit": "usd", "percent": "2"}],
               "limits": [{"period": "month", "max": 10_000}]}],
}


def _populate(session: Session, tenant_id: str) -> dict[str, Any]:
    now = clock.now()
    rewards = tenants.create_program(
        session, tenant_id, code="partner-rewards", name="Partner Rewards",
        base_currency="USD", enrolment_mode="open",
    )
    tokens = tenants.create_unit(
        session, tenant_id, rewards.id, code="tokens", name="Tokens", kind="points",
        value_in_base="0.01", expiry_policy={"kind": "after_months", "months": 24},
    )
    cashback = tenants.create_program(
        session, tenant_id, code="dealer-cashback", name="Dealer Cashback",
        base_currency="USD", enrolment_mode="open",
    )
    usd = tenants.create_unit(
        session, tenant_id, cashback.id, code="usd", name="USD cashback", kind="money",
        currency="USD", value_in_base="1",
    )

    # Earning rules and tiers, as programs as code (a definition document, version 1), in
    # force from before the demo's history, so that events and sales claims dated in the past
    # (an invoice of this morning, say) earn by them.
    since = now - timedelta(days=800)
    definitions.apply(session, tenant_id, PARTNER_REWARDS, actor=ACTOR, effective_from=since)
    definitions.apply(session, tenant_id, DEALER_CASHBACK, actor=ACTOR, effective_from=since)

    # A distributor with two dealers; the western dealer has a branch.
    acc: dict[str, str] = {}

    def account(role: str, name: str, region: str, parent: str | None, number: str) -> None:
        created = members.create_account(
            session, tenant_id, name=name, parent_id=acc[parent] if parent else None,
            member_number=number, region=region, email=f"{role.replace('_', '-')}@example.com",
            actor=ACTOR,
        )
        acc[role] = created.id

    account("distributor", "Northwind Distribution", "US", None, "D-1000")
    account("dealer_west", "Acme Electrical Supply", "US-CA", "distributor", "R-2001")
    account("dealer_south", "Bolt & Wire Co", "US-TX", "distributor", "R-2002")
    account("branch_sd", "Acme Electrical — San Diego", "US-CA", "dealer_west", "R-2001-SD")

    people = [
        ("distributor", "Dana Whitfield", "dana@northwind.example", "owner"),
        ("distributor", "Omar Haddad", "omar@northwind.example", "manager"),
        ("dealer_west", "Grace Liu", "grace@acme.example", "owner"),
        ("dealer_west", "Tom Reyes", "tom@acme.example", "rep"),
        ("dealer_south", "Priya Natarajan", "priya@boltwire.example", "owner"),
        ("branch_sd", "Luis Ortega", "luis@acme.example", "rep"),
        ("branch_sd", "Kim Baker", "kim@acme.example", "viewer"),
    ]
    for role, name, email, user_role in people:
        members.add_user(session, tenant_id, acc[role], name=name, email=email, role=user_role,
                         actor=ACTOR)

    # The members joined four months ago, before the history below (the 26-month-old
    # earning aside, which is there to expire): the KPIs' days from enrolment to a first
    # redemption and the retention cohorts read these dates.
    joined = now - timedelta(days=120)
    for role in ("distributor", "dealer_west", "dealer_south", "branch_sd"):
        members.enrol(session, tenant_id, rewards.id, acc[role], actor=ACTOR).created_at = joined
    for role in ("dealer_west", "dealer_south"):
        members.enrol(session, tenant_id, cashback.id, acc[role], actor=ACTOR).created_at = joined

    points = _Book(session, tenant_id, rewards.id, tokens.id, now)
    wallets = {role: points.wallet(acc[role]) for role in acc}
    points.earn(wallets["dealer_west"], 12_000, days_ago=90, key="q3-sales")
    points.earn(wallets["dealer_west"], 4_500, days_ago=20, key="training")
    points.redeem(wallets["dealer_west"], 2_500, days_ago=10, key="gift-card")
    points.earn(wallets["dealer_south"], 8_000, days_ago=60, key="q3-sales")
    # The sales behind "q3-sales" (1 token per US$1) count as tier spend, as the base rule's
    # tier_credit effect does for real purchases: the tier pages show the same spend.
    for role, spend, days_ago in (("dealer_west", 1_200_000, 90), ("dealer_south", 800_000, 60)):
        tiers.add_credit(session, tenant_id, rewards.id, acc[role], "spend", spend,
                         now - timedelta(days=days_ago), actor=ACTOR)
    points.earn(wallets["branch_sd"], 1_500, days_ago=15, key="training")
    # 26 months ago: past the 24-month expiry; `allegiance jobs run expire` posts the 5,000
    # tokens to the program's expired account (breakage).
    points.earn(wallets["branch_sd"], 5_000, days_ago=790, key="welcome-bonus")
    points.earn(wallets["distributor"], 20_000, days_ago=45, key="volume-bonus")
    points.redeem(wallets["distributor"], 6_000, days_ago=5, key="trip")
    # A redemption awaiting fulfilment: reserved now, posted or voided later.
    ledger.create_hold(session, tenant_id, ledger.HoldRequest(
        rewards.id, wallets["dealer_south"], points.redeemed, tokens.id, 3_000,
        kind="redeem", source_type="demo", hold_key="demo:hold:dealer_south:headset",
        memo="Headset (awaiting shipment)", expires_at=now + timedelta(days=14),
    ))

    money = _Book(session, tenant_id, cashback.id, usd.id, now)
    cash = {role: money.wallet(acc[role]) for role in ("dealer_west", "dealer_south")}
    money.earn(cash["dealer_west"], 12_500, days_ago=40, key="rebate-q3")  # $125.00
    money.earn(cash["dealer_south"], 8_040, days_ago=40, key="rebate-q3")  # $80.40
    money.redeem(cash["dealer_west"], 5_000, days_ago=3, key="payout")  # $50.00 paid out

    return {"version": VERSION, "accounts": acc, "wallets": wallets}


class _Book:
    """Earn and redeem entries of one program and unit (issued → wallet → redeemed)."""

    def __init__(
        self, session: Session, tenant_id: str, program_id: str, unit_id: str, now: datetime
    ) -> None:
        self.session, self.tenant_id = session, tenant_id
        self.program_id, self.unit_id, self.now = program_id, unit_id, now
        self.issued = ledger.program_account(session, tenant_id, program_id, unit_id, "issued").id
        self.redeemed = ledger.program_account(
            session, tenant_id, program_id, unit_id, "redeemed", normal="credit"
        ).id
        self._owners: dict[str, str] = {}

    def wallet(self, account_id: str) -> str:
        wallet = ledger.wallet(
            self.session, self.tenant_id, self.program_id, self.unit_id, "account", account_id
        )
        self._owners[wallet.id] = account_id
        return wallet.id

    def _post(self, kind: str, debit: str, credit: str, amount: int, days_ago: int,
              key: str, wallet: str) -> None:
        ledger.post_entry(self.session, self.tenant_id, ledger.EntryRequest(
            program_id=self.program_id, kind=kind, source_type="demo", source_id=key,
            entry_key=f"demo:{self.program_id}:{self._owners[wallet]}:{kind}:{key}",
            memo=f"demo {kind}: {key}", actor=ACTOR,
            effective_at=self.now - timedelta(days=days_ago),
            lines=(ledger.Line(debit, self.unit_id, ledger.Side.DEBIT, amount),
                   ledger.Line(credit, self.unit_id, ledger.Side.CREDIT, amount)),
        ))

    def earn(self, wallet: str, amount: int, *, days_ago: int, key: str) -> None:
        self._post("earn", self.issued, wallet, amount, days_ago, key, wallet)

    def redeem(self, wallet: str, amount: int, *, days_ago: int, key: str) -> None:
        self._post("redeem", wallet, self.redeemed, amount, days_ago, key, wallet)


# ---------------------------------------------------------------------------------------------
# The web apps: sign-ins, a catalogue and the portal's branding (added to older demos too)

DEMO_OPERATOR = ("owner@demo.example", "allegiance-demo-admin", "Olivia Owner")
DEMO_MEMBERS = (("grace@acme.example", "allegiance-demo-member"),
                ("priya@boltwire.example", "allegiance-demo-member"))
DEMO_REWARDS = (
    ("gift-card-50", "US$50 gift card", "egift", 5_000, None, False),
    ("headset", "Wireless headset", "physical", 3_000, 25, True),
    ("trip", "Training trip to HQ", "experience", 40_000, 4, True),
)


def _web_demo(session: Session, tenant_id: str, marker: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """An owner operator, portal passwords for two member users, rewards and branding;
    each made once (later runs find them)."""
    email, password, name = DEMO_OPERATOR
    if operators.operator_by_email(session, tenant_id, email) is None:
        operators.create_operator(session, tenant_id, email=email, name=name, role="owner",
                                  password=password, actor=ACTOR)
    out = [("admin", email, password, f"{name}, owner of Demo Co")]
    for member_email, member_password in DEMO_MEMBERS:
        user = session.scalars(select(members.User).where(
            members.User.tenant_id == tenant_id, members.User.email == member_email)).first()
        if user is None:
            continue
        if not user.password_hash:
            operators.portal.set_password(session, tenant_id, user.id, member_password,
                                          actor=ACTOR)
        account = members.get_account(session, tenant_id, user.account_id)
        out.append(("portal", member_email, member_password, f"{user.name}, {account.name}"))
    try:
        program = tenants.program_by_code(session, tenant_id, "partner-rewards")
    except NotFound:  # a demo without the program: nothing more to add
        return out
    settings = dict(program.settings or {})
    if "branding" not in settings:
        settings["branding"] = {"name": "Northwind Partner Rewards", "primary_color": "#0b5d4b",
                                "accent_color": "#9c4a00"}
        tenants.update_program(session, tenant_id, program.id, {"settings": settings})
    unit = tenants.unit_by_code(session, tenant_id, program.id, "tokens")
    existing = {r.code for r in rewards.list_rewards(session, tenant_id, program.id, limit=200)}
    for code, title, kind, cost, stock, approval in DEMO_REWARDS:
        if code not in existing:
            reward = rewards.create_reward(
                session, tenant_id, program.id, code=code, name=title, kind=kind,
                unit_id=unit.id, cost=cost, stock=stock, requires_approval=approval)
            if kind == "egift":
                rewards.add_codes(session, tenant_id, reward.id,
                                  [f"DEMO-GIFT-{n:04d}" for n in range(1, 51)])
    _membership_demo(session, tenant_id, program.id, marker)
    return out


def _membership_demo(session: Session, tenant_id: str, program_id: str,
                     marker: dict[str, Any]) -> None:
    """A paid plan with a trial, a perk unlocked by the plan or a high tier and one by the top
    tier only, and Bolt & Wire (Priya's account) on the plan's trial, so the portal's
    Membership page has something to show; made once."""
    if any(p.code == "partner-plus" for p in memberships.list_plans(session, tenant_id,
                                                                    program_id)):
        return
    memberships.create_plan(session, tenant_id, program_id, code="partner-plus",
                            name="Partner Plus", fee=4_900, billing="monthly", trial_days=14,
                            grace_days=7)
    memberships.create_perk(session, tenant_id, program_id, code="support-line",
                            name="Named support line", plans=["partner-plus"],
                            tiers=["gold", "platinum"],
                            description="Answered within the hour, on working days.")
    memberships.create_perk(session, tenant_id, program_id, code="early-access",
                            name="Early access to new products", plans=[], tiers=["platinum"])
    bolt = marker.get("accounts", {}).get("dealer_south")
    if bolt is not None:
        memberships.subscribe(session, tenant_id, program_id, bolt, "partner-plus",
                              actor=ACTOR)
