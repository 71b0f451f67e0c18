"""Referral and affiliate plans, members' codes, referrals and the rewards they earned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class ReferralPlan(Base):
    """How a program rewards referrals: commission % by category (money unit) within an
    attribution window, a fixed bounty per sign-up and a reward for the new member
    (two-sided), all pending until a lock date."""

    __tablename__ = "referral_plan"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("window_days > 0 AND lock_days >= 0", name="days"),
        CheckConstraint("bounty >= 0 AND referee_reward >= 0", name="rewards_not_negative"),
        CheckConstraint("attribution IN ('signup', 'click')", name="attribution"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    requires_application: Mapped[bool]
    window_days: Mapped[int]
    lock_days: Mapped[int]
    commission_unit_id: Mapped[str | None] = mapped_column(ID)
    commission_rates: Mapped[dict[str, Any]]
    bounty_unit_id: Mapped[str | None] = mapped_column(ID)
    bounty: Mapped[int] = mapped_column(default=0)
    referee_reward: Mapped[int] = mapped_column(default=0)
    link_base: Mapped[str | None] = mapped_column(String(500))
    # "signup": a purchase is attributed inside the window after the member's sign-up
    # (Coursera, 30 days); "click": to the latest click on a link whose window covers it
    # (Amazon Associates, 24 hours; a new click opens a new window).
    attribution: Mapped[str] = mapped_column(String(8), default="signup",
                                             server_default="signup")
    created_at: Mapped[datetime]


class ReferralCode(Base):
    """A member's code (and link) in a plan; affiliates apply and are reviewed first."""

    __tablename__ = "referral_code"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["referral_plan.tenant_id",
                                                        "referral_plan.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "plan_id", "account_id"),
        CheckConstraint("status IN ('applied', 'active', 'rejected', 'suspended')",
                        name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    plan_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(10))
    application: Mapped[dict[str, Any]]
    reason: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]


class Referral(Base):
    """A sign-up through a code (``kind`` signup, one per member and plan), or a click on a
    code's link (``kind`` click, any number; the visitor may be anonymous, ``visitor_id``,
    until matched to an account). Either opens an attribution window. ``rejected`` when
    fraud checks fail (it earns nothing), ``void`` when the new member's purchases were
    refunded before anything became payable."""

    __tablename__ = "referral"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["referral_plan.tenant_id",
                                                        "referral_plan.id"]),
        ForeignKeyConstraint(["tenant_id", "referred_account_id"],
                             ["account.tenant_id", "account.id"]),
        Index("uq_referral_signup", "tenant_id", "plan_id", "referred_account_id",
              unique=True, sqlite_where=text("kind = 'signup'"),
              postgresql_where=text("kind = 'signup'")),
        Index("ix_referral_referrer", "tenant_id", "referrer_account_id"),
        Index("ix_referral_referred", "tenant_id", "referred_account_id"),
        Index("ix_referral_visitor", "tenant_id", "plan_id", "visitor_id"),
        CheckConstraint("status IN ('qualified', 'rejected', 'void')", name="status"),
        CheckConstraint("kind IN ('signup', 'click')", name="kind"),
        CheckConstraint("referred_account_id IS NOT NULL OR visitor_id IS NOT NULL",
                        name="who"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    plan_id: Mapped[str] = mapped_column(ID)
    code_id: Mapped[str] = mapped_column(ID)
    referrer_account_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(8), default="signup", server_default="signup")
    referred_account_id: Mapped[str | None] = mapped_column(ID)
    visitor_id: Mapped[str | None] = mapped_column(String(128))
    email_key: Mapped[str | None] = mapped_column(String(320))
    tax_key: Mapped[str | None] = mapped_column(String(64))
    device_hash: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(500))
    signed_up_at: Mapped[datetime]  # the sign-up or the click: the window opens here
    window_ends_at: Mapped[datetime]
    created_at: Mapped[datetime]


class ReferralReward(Base):
    """One reward of a referral: the bounty, the new member's reward, or the commission of
    one purchase line. Held until ``lock_at`` (pending), then posted (payable); a refund
    gives back exactly the commission of the refunded part."""

    __tablename__ = "referral_reward"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "referral_id"], ["referral.tenant_id",
                                                            "referral.id"]),
        UniqueConstraint("tenant_id", "referral_id", "kind", "event_id", "line_no"),
        Index("ix_referral_reward_event", "tenant_id", "event_id"),
        CheckConstraint("kind IN ('bounty', 'referee', 'commission')", name="kind"),
        CheckConstraint("amount >= 0 AND reversed_amount >= 0", name="amounts"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    referral_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(12))
    # "" for rewards that belong to no event (bounty, referee); 0 for an event without lines.
    event_id: Mapped[str] = mapped_column(String(40), default="")
    line_no: Mapped[int] = mapped_column(default=0)
    owner_account_id: Mapped[str] = mapped_column(ID)
    unit_id: Mapped[str] = mapped_column(ID)
    base_amount: Mapped[int] = mapped_column(default=0)
    amount: Mapped[int]
    reversed_amount: Mapped[int] = mapped_column(default=0)
    hold_id: Mapped[str | None] = mapped_column(ID)
    lock_at: Mapped[datetime]
    created_at: Mapped[datetime]


class ReferralAttributed(Base):
    """Where ``sync`` stands: each purchase it attributed for a plan, with the refunded
    amount it reconciled. A purchase is looked at again only when it has no row yet or was
    refunded since (its ``returned_amount`` moved), so a run reads only what is new and a
    killed run resumes where its last committed batch ended."""

    __tablename__ = "referral_attributed"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["referral_plan.tenant_id",
                                                        "referral_plan.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    plan_id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    returned_amount: Mapped[int]
    at: Mapped[datetime]


class ReferralIdentity(Base):
    """Every identity key a sign-up was made with (the new member's account e-mail and tax id
    and those the caller supplied, its device hashes), so a later sign-up of the plan that
    shares any one of them is a duplicate."""

    __tablename__ = "referral_identity"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "referral_id"], ["referral.tenant_id",
                                                            "referral.id"]),
        CheckConstraint("kind IN ('email', 'tax', 'device')", name="kind"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    plan_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ID, primary_key=True)
