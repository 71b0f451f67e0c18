"""Accounts (member businesses, in a hierarchy), their users, external ids, enrolments,
enrolment history and invitations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base

ENROLMENT_STATUSES = ("applied", "invited", "active", "suspended", "closed", "rejected")
ROLES = ("owner", "manager", "rep", "viewer")


class Account(Base):
    __tablename__ = "account"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        ForeignKeyConstraint(["tenant_id", "parent_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "member_number"),
        Index("ix_account_parent", "tenant_id", "parent_id"),
        CheckConstraint("status IN ('active', 'closed', 'merged', 'erased')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(200))
    member_number: Mapped[str] = mapped_column(String(32))
    # ISO 3166 country or subdivision, e.g. "US-CA"; used for program eligibility.
    region: Mapped[str | None] = mapped_column(String(10))
    email: Mapped[str | None] = mapped_column(String(320))
    tax_id: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="active")
    merged_into_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AccountExternalId(Base):
    """An id the integrator's systems (CRM, ERP) use for an account, unique per source."""

    __tablename__ = "account_external_id"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        Index("ix_account_external_id_account", "tenant_id", "account_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)


class User(Base):
    """A person attached to an account with a role."""

    __tablename__ = "member_user"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "email"),
        UniqueConstraint("tenant_id", "external_id"),
        Index("ix_member_user_account", "tenant_id", "account_id"),
        # Portal sign-in looks a person up by e-mail across tenants.
        Index("ix_member_user_email", "email"),
        CheckConstraint("role IN ('owner', 'manager', 'rep', 'viewer')", name="role"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Enrolment(Base):
    __tablename__ = "enrolment"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "program_id", "account_id"),
        Index("ix_enrolment_account", "tenant_id", "account_id"),
        CheckConstraint(
            "status IN ('applied', 'invited', 'active', 'suspended', 'closed', 'rejected')",
            name="status",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(20))
    tier: Mapped[str | None] = mapped_column(String(64))
    # What the applicant sent with an application (company details, motivation…).
    application: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EnrolmentChange(Base):
    """Every status change of an enrolment: who, when, from, to and why."""

    __tablename__ = "enrolment_change"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "enrolment_id"], ["enrolment.tenant_id", "enrolment.id"]
        ),
        Index("ix_enrolment_change_enrolment", "tenant_id", "enrolment_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    enrolment_id: Mapped[str] = mapped_column(ID)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(1000))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]


class Invitation(Base):
    """An invitation to join a program (SkinCeuticals is invitation-only); the token is hashed."""

    __tablename__ = "invitation"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "token_hash"),
        CheckConstraint(
            "status IN ('pending', 'accepted', 'revoked', 'expired')", name="status"
        ),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str | None] = mapped_column(ID)
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    invited_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
