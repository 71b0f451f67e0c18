"""Operator users (staff of a tenant who use the admin app), the web sessions of operators
and of member users (portal), and portal invitations (a link to set a password)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class OperatorUser(Base):
    __tablename__ = "operator_user"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        UniqueConstraint("tenant_id", "email"),
        # Sign-in looks a person up by e-mail across tenants (one may work for several).
        Index("ix_operator_user_email", "email"),
        CheckConstraint(
            "role IN ('owner', 'program_manager', 'finance', 'support', 'read_only')",
            name="role",
        ),
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # Argon2id (argon2-cffi's encoded form, parameters included).
    password_hash: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(10), default="active")
    last_sign_in_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "web_session"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        Index("ix_web_session_token", "token_hash"),
        Index("ix_web_session_user", "tenant_id", "kind", "user_id"),
        CheckConstraint("kind IN ('operator', 'member')", name="kind"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    # operator_user.id or member_user.id
    user_id: Mapped[str] = mapped_column(ID)
    csrf_token: Mapped[str] = mapped_column(String(64))
    # The other (tenant, user) pairs the same password opened at sign-in: the tenant switcher.
    grants: Mapped[list[Any]] = mapped_column(default=list)
    program_id: Mapped[str | None] = mapped_column(ID)
    # A one-shot message for the next page ({"kind": "ok"|"error", "text": ...}).
    flash: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PortalInvitation(Base):
    """A link for a member user to set a portal password; the token is stored hashed."""

    __tablename__ = "portal_invitation"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "user_id"], ["member_user.tenant_id", "member_user.id"]),
        Index("ix_portal_invitation_token", "token_hash"),
        Index("ix_portal_invitation_user", "tenant_id", "user_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
