"""Request and response bodies of GDPR operations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from allegiance.kit.schemas import Input


class ErasureRequest(Input):
    reason: str = Field(min_length=1, max_length=500,
                        description="Why (e.g. the data subject's request reference).")


class ErasureRead(BaseModel):
    account_id: str
    users: int
    external_ids: int
    invitations: int
    redemptions: int
    events: int
    outbox_messages: int
    message_id: str = Field(description="The outbox message of the member.erased event.")
    segments: int = Field(0, description="The segments the member left (at once, for good).")
    enrolments: int = Field(0, description="The enrolments closed (reason `erased`).")


class PersonalData(BaseModel):
    """Everything held about the member; sections as in docs/security.md."""

    format: str
    exported_at: str
    account: dict[str, Any]
    external_ids: list[dict[str, Any]]
    users: list[dict[str, Any]]
    enrolments: list[dict[str, Any]]
    enrolment_changes: list[dict[str, Any]]
    invitations: list[dict[str, Any]]
    wallets: list[dict[str, Any]]
    redemptions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    audit: list[dict[str, Any]]
