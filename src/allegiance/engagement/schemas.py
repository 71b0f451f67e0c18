"""HTTP shapes of challenges, badges, leaderboards and surveys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from allegiance.kit.schemas import Input, Output

Period = Literal["day", "week", "month", "quarter", "year", "all"]
Metric = Literal["count", "amount", "quantity"]


class EffectIn(Input):
    type: Literal["points", "badge", "tier_credit", "coupon"]
    unit: str | None = Field(None, max_length=64, description="points: the unit code")
    amount: int | None = Field(None, ge=1, description="points or tier credit")
    badge: str | None = Field(None, max_length=64, description="badge: its code")
    level: int | None = Field(None, ge=1, description="badge: level (default: one up)")
    metric: Literal["points_earned", "spend", "count"] | None = Field(
        None, description="tier_credit: the tier metric")
    reward: str | None = Field(
        None, max_length=64,
        description="coupon: code of a coupon-kind reward of the catalogue; each completion "
                    "issues one single-use code of it")


class ChallengeCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    trigger: str = Field(min_length=1, max_length=80,
                         description="purchase, activity or activity:<type>")
    metric: Metric = "count"
    target: int = Field(ge=1, le=10**15, description="per period: events, amount or quantity")
    period: Period = "all"
    streak: int = Field(1, ge=1, le=1000, description="periods in a row")
    product_list: str | None = Field(None, max_length=64)
    category: str | None = Field(None, max_length=120)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    max_completions: int | None = Field(None, ge=1)
    budget: int | None = Field(None, ge=1, description="points the challenge may pay in all")
    effects: list[EffectIn] = Field(min_length=1, max_length=10)


class ChallengeUpdate(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    ends_at: datetime | None = None
    max_completions: int | None = Field(None, ge=1)
    status: Literal["active", "retired"] | None = None


class ChallengeRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    description: str
    trigger: str
    metric: str
    target: int
    period: str
    streak: int
    product_list: str | None
    category: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    max_completions: int | None
    budget: int | None
    effects: list[dict[str, Any]]
    status: str
    created_at: datetime


class ChallengeList(Output):
    items: list[ChallengeRead]


class CompletionRead(Output):
    id: str
    number: int
    period_index: int
    event_id: str | None
    entry_id: str | None
    effects: list[dict[str, Any]]
    completed_at: datetime
    reversed_at: datetime | None = Field(
        None, description="undone by a return that took the progress below it")
    reversal_entry_id: str | None = None
    reversed_by_event_id: str | None = None


class ProgressRead(Output):
    challenge: ChallengeRead
    period: str = Field(description="the current period (program time zone)")
    period_value: int = Field(description="done in the current period")
    period_starts_at: datetime | None
    period_ends_at: datetime | None
    streak: int = Field(description="periods met in a row toward the next completion")
    completions: int
    remaining: int | None = Field(description="completions still allowed (None: no cap)")
    last_event_at: datetime | None
    history: list[CompletionRead]


class ProgressList(Output):
    items: list[ProgressRead]


class BadgeCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    levels: list[str] | None = Field(None, min_length=1, max_length=20,
                                     description="level names, first is level 1")


class BadgeRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    levels: list[str]


class BadgeList(Output):
    items: list[BadgeRead]


class BadgeAward(Input):
    badge: str = Field(min_length=1, max_length=64)
    level: int | None = Field(None, ge=1)


class HeldBadgeRead(Output):
    code: str
    name: str
    level: int
    level_name: str
    levels: int
    awarded_at: datetime
    updated_at: datetime


class HeldBadgeList(Output):
    items: list[HeldBadgeRead]


class StandingRead(Output):
    account_id: str
    name: str
    score: int
    rank: int


class BoardRead(Output):
    metric: str
    period: str
    label: str
    ranking: str
    entries: list[StandingRead]
    total: int = Field(description="accounts ranked (score > 0, not opted out)")
    me: StandingRead | None


class OptOut(Input):
    opted_out: bool


class OptOutRead(Output):
    account_id: str
    opted_out: bool


class QuestionIn(Input):
    code: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=1000)
    kind: Literal["nps", "scale", "choice", "text"]
    options: list[str] | None = Field(None, max_length=50)
    min: int | None = None
    max: int | None = None
    required: bool = True


class SurveyCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    questions: list[QuestionIn] = Field(min_length=1, max_length=100)
    reward_unit_id: str | None = Field(None, max_length=40)
    reward_points: int = Field(0, ge=0, le=10**12)
    activity_type: str | None = Field(
        None, max_length=64, description="also record each response as this activity")
    audience: Literal["all", "leavers"] = Field(
        "all", description="leavers: sent to accounts whose enrolment closes")


class SurveyRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    questions: list[dict[str, Any]]
    reward_unit_id: str | None
    reward_points: int
    activity_type: str | None
    status: str
    audience: str


class SurveyList(Output):
    items: list[SurveyRead]


class SurveyStatus(Input):
    status: Literal["open", "closed"]


class ResponseCreate(Input):
    account_id: str = Field(min_length=1, max_length=40)
    user_id: str | None = Field(None, max_length=40)
    answers: dict[str, Any]


class ResponseRead(Output):
    id: str
    survey_id: str
    account_id: str
    user_id: str | None
    answers: dict[str, Any]
    nps: int | None
    segment: str | None
    entry_id: str | None
    event_id: str | None
    submitted_at: datetime


class NpsRead(Output):
    responses: int
    promoters: int
    passives: int
    detractors: int
    score: int | None


class SegmentNpsRead(NpsRead):
    segment_id: str


class NpsReportRead(Output):
    overall: NpsRead
    by_segment: dict[str, SegmentNpsRead] = Field(
        description="per segment of the program, by code: answers of its members now")
    by_segment_attribute: dict[str, NpsRead] = Field(
        description="per value of the account attribute segment when it answered (none: no value)")
    leavers: NpsRead


class MemberEventCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime
    capacity: int | None = Field(None, ge=0, le=10**9)
    invitation_only: bool = False
    attendance_unit_id: str | None = Field(None, max_length=40)
    attendance_points: int = Field(0, ge=0, le=10**12)


class MemberEventRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    starts_at: datetime
    ends_at: datetime
    capacity: int | None
    invitation_only: bool
    attendance_unit_id: str | None
    attendance_points: int
    status: str


class MemberEventList(Output):
    items: list[MemberEventRead]


class MemberEventStatus(Input):
    status: Literal["open", "closed", "cancelled"]


class Invitations(Input):
    account_ids: list[str] = Field(min_length=1, max_length=1000)


class NotInvitedRead(Output):
    account_id: str
    reason: Literal["account_erased"] = Field(
        description="why the account was left out: account_erased (nothing written for it)")


class Invited(Output):
    invited: int = Field(description="new invitations")
    not_invited: list[NotInvitedRead] = Field(
        description="accounts of the list left out (erased accounts), by account id; the "
                    "others were invited")


class AttendeeIn(Input):
    account_id: str = Field(min_length=1, max_length=40)


class AttendeeRead(Output):
    member_event_id: str
    account_id: str
    status: str
    invited: bool
    invited_at: datetime | None
    registered_at: datetime | None
    checked_in_at: datetime | None
    entry_id: str | None


class AttendeeList(Output):
    items: list[AttendeeRead]


class SponsorCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    account_id: str | None = Field(None, max_length=40)
    contribution: int = Field(ge=0, le=10**15, description="minor units")
    currency: str | None = Field(None, min_length=3, max_length=3)
    note: str = Field("", max_length=1000)


class SponsorRead(Output):
    id: str
    name: str
    account_id: str | None
    contribution: int
    currency: str
    note: str


class MemberEventSummary(Output):
    event: MemberEventRead
    invited: int
    registered: int
    attended: int
    seats_left: int | None
    sponsors: list[SponsorRead]


class MenuCreate(Input):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    reward_ids: list[str] = Field(min_length=1, max_length=100)
    period: Period = "month"
    picks: int = Field(1, ge=1, le=100, description="rewards an account picks per period")
    bonus: bool = Field(False, description="bonus rewards: the program gives the reward's "
                        "cost, so a pick needs no credit (no bill)")


class MenuRead(Output):
    id: str
    program_id: str
    code: str
    name: str
    period: str
    picks: int
    reward_ids: list[str]
    bonus: bool
    status: str


class MenuList(Output):
    items: list[MenuRead]


class PickIn(Input):
    account_id: str = Field(min_length=1, max_length=40)
    reward_id: str = Field(min_length=1, max_length=40)
    user_id: str | None = Field(None, max_length=40)


class PickRead(Output):
    menu_id: str
    account_id: str
    period_index: int
    number: int
    reward_id: str
    redemption_id: str
    picked_at: datetime


class MenuStateRead(Output):
    menu: MenuRead
    period: str
    picks_left: int
    picked: list[PickRead]
    resets_at: datetime | None
