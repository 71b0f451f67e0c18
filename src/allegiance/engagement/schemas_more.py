"""HTTP shapes of courses and certifications, super tickets and the leavers' survey."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from allegiance.kit.schemas import Input, Output

# --- courses and certifications ---


class CourseCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    activity_type: str = Field("course_completed", min_length=1, max_length=64,
                               description="the activity that reports a completion (with "
                               "the attribute course = this code)")
    hours: int | None = Field(None, ge=0, le=100000)


class CourseRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    activity_type: str
    hours: int | None
    status: str


class CourseList(Output):
    items: list[CourseRead]


class CompletionIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    user_id: str | None = Field(None, max_length=40)
    completed_at: AwareDatetime | None = None
    external_id: str | None = Field(
        None, min_length=1, max_length=200,
        description="the learning platform's id of the completion (default: one completion "
        "of the course per account)")


class CompletionRead(Output):
    id: str
    course_id: str
    account_id: str
    user_id: str | None
    event_id: str
    completed_at: datetime


class CertificationCreate(Input):
    code: str = Field(min_length=1, max_length=60,
                      description="names the tier metric certification:<code>")
    name: str = Field(min_length=1, max_length=200)
    courses: list[str] = Field(default_factory=list, max_length=100,
                               description="course codes to complete (none: granted only)")
    valid_days: int | None = Field(None, ge=1, le=36500,
                                   description="the certification expires after this")
    badge: str | None = Field(None, max_length=64, description="badge awarded on grant")


class CertificationRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    courses: list[str]
    valid_days: int | None
    badge: str | None


class CertificationList(Output):
    items: list[CertificationRead]


class GrantIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    at: AwareDatetime | None = None
    source: str = Field("granted", min_length=1, max_length=200,
                        description="why (an exam passed, a migration)")


class RevokeIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    reason: str | None = Field(None, max_length=500)


class HeldRead(Output):
    certification_id: str
    account_id: str
    status: str
    granted_at: datetime
    expires_at: datetime | None
    source: str


class TranscriptCourse(Output):
    course: str
    name: str
    completed_at: datetime
    event_id: str


class TranscriptCertification(Output):
    certification: str
    name: str
    status: str
    granted_at: datetime
    expires_at: datetime | None


class TranscriptRead(Output):
    courses: list[TranscriptCourse]
    certifications: list[TranscriptCertification]


# --- super tickets ---


class SuperTicketCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    reward_id: str = Field(min_length=1, max_length=40)
    mode: Literal["first_come", "lottery"] = "first_come"
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    winners: int | None = Field(None, ge=1, le=10**6,
                                description="lottery places (default: the reward's stock)")


class SuperTicketRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    reward_id: str
    mode: str
    opens_at: datetime
    closes_at: datetime
    winners: int | None
    status: str
    seed: str | None
    drawn_at: datetime | None


class SuperTicketList(Output):
    items: list[SuperTicketRead]


class EntryIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    user_id: str | None = Field(None, max_length=40)


class EntryRead(Output):
    super_ticket_id: str
    account_id: str
    user_id: str | None
    status: str
    position: int | None
    redemption_id: str | None
    reason: str | None
    entered_at: datetime
    decided_at: datetime | None


class EntryList(Output):
    items: list[EntryRead]


# --- leavers' survey ---


class LeaversSent(Output):
    invited: int


class InvitationRead(Output):
    survey_id: str
    account_id: str
    enrolment_id: str | None
    reason: str
    sent_at: datetime


class InvitationList(Output):
    items: list[InvitationRead]
