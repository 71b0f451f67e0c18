"""Challenges and progress, badges, tallies, running totals, opt-outs, surveys, answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from allegiance.kit.db import ID, Base


class Challenge(Base):
    """Do something ``target`` times (or for ``target`` in amount / quantity) per ``period``,
    ``streak`` periods in a row; completion effects in ``effects``."""

    __tablename__ = "challenge"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("target > 0 AND streak > 0", name="positive"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
        Index("ix_challenge_program", "tenant_id", "program_id", "status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    trigger: Mapped[str] = mapped_column(String(80))
    metric: Mapped[str] = mapped_column(String(16))
    target: Mapped[int]
    period: Mapped[str] = mapped_column(String(10))
    streak: Mapped[int] = mapped_column(default=1)
    product_list: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(120))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    max_completions: Mapped[int | None]
    effects: Mapped[list[Any]]
    budget: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChallengeTotal(Base):
    """What an account did toward a challenge in one period (index in the program's zone)."""

    __tablename__ = "challenge_total"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "challenge_id"],
                             ["challenge.tenant_id", "challenge.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    challenge_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    period_index: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class ChallengeProgress(Base):
    """One account's standing in a challenge; the row is locked while an event updates it, so
    concurrent events never complete a challenge twice."""

    __tablename__ = "challenge_progress"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "challenge_id"],
                             ["challenge.tenant_id", "challenge.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    challenge_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    completions: Mapped[int] = mapped_column(default=0)
    last_event_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ChallengeCompletion(Base):
    """The ``number``-th completion of a challenge by an account and what it gave."""

    __tablename__ = "challenge_completion"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "challenge_id"],
                             ["challenge.tenant_id", "challenge.id"]),
        UniqueConstraint("tenant_id", "challenge_id", "account_id", "number"),
        Index("ix_challenge_completion_account", "tenant_id", "account_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    challenge_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    number: Mapped[int]
    period_index: Mapped[int]
    event_id: Mapped[str | None] = mapped_column(ID)
    entry_id: Mapped[str | None] = mapped_column(ID)
    effects: Mapped[list[Any]]
    completed_at: Mapped[datetime]
    # the local day whose leaderboard tally it counted on (null before returns could undo it)
    tally_day: Mapped[int | None]
    # undone by a return that took the progress below it: the ledger reversal of its points
    reversed_at: Mapped[datetime | None]
    reversal_entry_id: Mapped[str | None] = mapped_column(ID)
    reversed_by_event_id: Mapped[str | None] = mapped_column(ID)


class ChallengeContribution(Base):
    """What one event added to a challenge's period total (lowered by returns of it), so a
    return takes back exactly what its purchase counted, never more."""

    __tablename__ = "challenge_contribution"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "challenge_id"],
                             ["challenge.tenant_id", "challenge.id"]),
        Index("ix_challenge_contribution_event", "tenant_id", "event_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    challenge_id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID)
    period_index: Mapped[int]
    value: Mapped[int]


class Badge(Base):
    """A badge of a program with ``levels`` names (level 1 is the first)."""

    __tablename__ = "badge"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    levels: Mapped[list[Any]]
    created_at: Mapped[datetime]


class AccountBadge(Base):
    """The level of a badge an account holds (levels only go up)."""

    __tablename__ = "account_badge"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "badge_id"], ["badge.tenant_id", "badge.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint("level >= 1", name="level_positive"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    badge_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    level: Mapped[int]
    awarded_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(200))


class Tally(Base):
    """Per account and local day, what the leaderboards rank: points earned (at ingestion and
    by challenges, surveys and attendance), sales amount, purchases, activities, challenge
    completions and approved sales claims (a count) — one row, so an event adds in one go."""

    __tablename__ = "engagement_tally"
    # the key serves the boards' and RFM's day ranges (clustered on SQLite: WITHOUT ROWID);
    # the account index, one account's RFM score after each of its events
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        Index("ix_engagement_tally_account", "tenant_id", "program_id", "account_id", "day"),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    day: Mapped[int] = mapped_column(primary_key=True)  # local date ordinal
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    points: Mapped[int] = mapped_column(default=0)
    sales: Mapped[int] = mapped_column(default=0)
    purchases: Mapped[int] = mapped_column(default=0)
    activities: Mapped[int] = mapped_column(default=0)
    challenges: Mapped[int] = mapped_column(default=0)
    claims: Mapped[int] = mapped_column(default=0, server_default="0")


class BoardTotal(Base):
    """Per account and period kind (week, month, quarter, year, all), the totals of the
    account's latest period of that kind — kept by the earning path beside the daily tally,
    so the board of the current period is a top-N over one row per account."""

    __tablename__ = "engagement_board_total"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    period_index: Mapped[int]
    points: Mapped[int] = mapped_column(default=0)
    sales: Mapped[int] = mapped_column(default=0)
    purchases: Mapped[int] = mapped_column(default=0)
    activities: Mapped[int] = mapped_column(default=0)
    challenges: Mapped[int] = mapped_column(default=0)
    claims: Mapped[int] = mapped_column(default=0, server_default="0")


class RfmWindow(Base):
    """The first local day the running RFM inputs of a program count from (moved forward by
    each RFM refresh; no row: the program keeps no running inputs)."""

    __tablename__ = "engagement_rfm_window"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    first_day: Mapped[int]


class RfmInput(Base):
    """Per buyer, over the daily tallies from the window's first day on with purchases > 0:
    the last such day, the purchases and the spend (kept by the earning path)."""

    __tablename__ = "engagement_rfm_input"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        {"sqlite_with_rowid": False},
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    last_day: Mapped[int]
    purchases: Mapped[int]
    spend: Mapped[int]


class LeaderboardOptOut(Base):
    """An account that does not want to appear on the program's leaderboards."""

    __tablename__ = "leaderboard_opt_out"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    created_at: Mapped[datetime]


class Survey(Base):
    """Questions (``nps`` 0–10, ``scale``, ``choice``, ``text``) and the reward for answering."""

    __tablename__ = "survey"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    questions: Mapped[list[Any]]
    reward_unit_id: Mapped[str | None] = mapped_column(ID)
    reward_points: Mapped[int] = mapped_column(default=0)
    activity_type: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))
    # "all", or "leavers": sent to the accounts whose enrolment in the program closes.
    audience: Mapped[str] = mapped_column(String(8), default="all", server_default="all")
    created_at: Mapped[datetime]


class SurveyInvitation(Base):
    """A survey sent to an account (the leavers' survey on closing an enrolment): one per
    survey and account, so a job run twice never sends it twice."""

    __tablename__ = "survey_invitation"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "survey_id"], ["survey.tenant_id", "survey.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    survey_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    enrolment_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime]


class SurveyResponse(Base):
    """One account's answers to a survey (one per account); ``nps`` holds the 0–10 answer."""

    __tablename__ = "survey_response"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "survey_id"], ["survey.tenant_id", "survey.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "survey_id", "account_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    survey_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    answers: Mapped[dict[str, Any]]
    nps: Mapped[int | None]
    segment: Mapped[str | None] = mapped_column(String(120))
    entry_id: Mapped[str | None] = mapped_column(ID)
    event_id: Mapped[str | None] = mapped_column(ID)
    submitted_at: Mapped[datetime]


class MemberEvent(Base):
    """A program's event for members (a conference, an awards night, a training day): open
    or by invitation, with a capacity and points for attending."""

    __tablename__ = "member_event"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity"),
        CheckConstraint("status IN ('open', 'closed', 'cancelled')", name="status"),
        CheckConstraint("starts_at < ends_at", name="window"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    capacity: Mapped[int | None]
    invitation_only: Mapped[bool]
    attendance_unit_id: Mapped[str | None] = mapped_column(ID)
    attendance_points: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime]


class Attendee(Base):
    """An account's place at a member event: invited → registered → attended (or
    cancelled)."""

    __tablename__ = "member_event_attendee"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_event_id"],
                             ["member_event.tenant_id", "member_event.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint("status IN ('invited', 'registered', 'attended', 'cancelled')",
                        name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(12))
    invited: Mapped[bool]
    invited_at: Mapped[datetime | None]
    registered_at: Mapped[datetime | None]
    checked_in_at: Mapped[datetime | None]
    entry_id: Mapped[str | None] = mapped_column(ID)


class Sponsor(Base):
    """A sponsor of a member event and what it contributed (recorded, not paid here)."""

    __tablename__ = "member_event_sponsor"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "member_event_id"],
                             ["member_event.tenant_id", "member_event.id"]),
        CheckConstraint("contribution >= 0", name="contribution"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_event_id: Mapped[str] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[str | None] = mapped_column(ID)
    contribution: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime]


class RewardMenu(Base):
    """Choose-your-reward: each ``period`` an account picks ``picks`` of the menu's rewards
    (Verizon Up: one of six rewards each month); a pick is a redemption of the catalogue."""

    __tablename__ = "reward_menu"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("picks > 0", name="picks_positive"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(10))
    picks: Mapped[int] = mapped_column(default=1)
    reward_ids: Mapped[list[Any]]
    # Bonus rewards (Verizon Up's rewards without a bill): the program gives the reward's
    # cost (an earn entry) and the pick redeems it, so the member spends nothing.
    bonus: Mapped[bool] = mapped_column(default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime]


class MenuPick(Base):
    """The ``number``-th pick of an account from a menu in a period (the key makes a second
    pick past the allowance impossible, even concurrently)."""

    __tablename__ = "reward_menu_pick"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "menu_id"], ["reward_menu.tenant_id", "reward_menu.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    menu_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    period_index: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    reward_id: Mapped[str] = mapped_column(ID)
    redemption_id: Mapped[str] = mapped_column(ID)
    picked_at: Mapped[datetime]


class SuperTicket(Base):
    """A release of a limited reward (event tickets): ``first_come`` redeems each entry at once
    while stock lasts; ``lottery`` collects entries until ``closes_at`` and draws ``winners``
    (default: the reward's stock) in a random order whose ``seed`` is kept for audit."""

    __tablename__ = "super_ticket"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        ForeignKeyConstraint(["tenant_id", "reward_id"], ["reward.tenant_id", "reward.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("mode IN ('first_come', 'lottery')", name="mode"),
        CheckConstraint("status IN ('open', 'drawn', 'cancelled')", name="status"),
        CheckConstraint("winners IS NULL OR winners > 0", name="winners_positive"),
        CheckConstraint("opens_at < closes_at", name="window"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    reward_id: Mapped[str] = mapped_column(ID)
    mode: Mapped[str] = mapped_column(String(10))
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    winners: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(10))
    seed: Mapped[str | None] = mapped_column(String(64))
    drawn_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class TicketEntry(Base):
    """An account's entry for a super ticket (one per account): entered → won / lost, or
    skipped when a drawn winner could not redeem (no balance, not eligible)."""

    __tablename__ = "super_ticket_entry"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "super_ticket_id"],
                             ["super_ticket.tenant_id", "super_ticket.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint("status IN ('entered', 'won', 'lost', 'skipped')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    super_ticket_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(8))
    position: Mapped[int | None]  # place in the draw order
    redemption_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str | None] = mapped_column(String(300))
    entered_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]


class Course(Base):
    """A course of a program's academy; completing it is the activity ``activity_type`` with
    the attribute ``course`` = ``code`` (from the API or a learning platform's file)."""

    __tablename__ = "course"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    activity_type: Mapped[str] = mapped_column(String(64))
    hours: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime]


class CourseCompletion(Base):
    """One completion of a course by an account (the event that recorded it is the key, so a
    re-imported file never completes twice; a course may be retaken to renew)."""

    __tablename__ = "course_completion"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "course_id"], ["course.tenant_id", "course.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        UniqueConstraint("tenant_id", "course_id", "event_id"),
        Index("ix_course_completion_account", "tenant_id", "account_id", "course_id"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    course_id: Mapped[str] = mapped_column(ID)
    account_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    event_id: Mapped[str] = mapped_column(ID)
    completed_at: Mapped[datetime]


class Certification(Base):
    """Granted when an account has completed every course of ``courses`` (within
    ``valid_days`` when set) or by a direct grant (an exam); valid ``valid_days`` (None: for
    ever); holding it sets the tier metric ``certification:<code>`` and awards ``badge``."""

    __tablename__ = "certification"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "program_id"], ["program.tenant_id", "program.id"]),
        UniqueConstraint("tenant_id", "program_id", "code"),
        CheckConstraint("valid_days IS NULL OR valid_days > 0", name="valid_days_positive"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    program_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    courses: Mapped[list[Any]]
    valid_days: Mapped[int | None]
    badge: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class AccountCertification(Base):
    """An account's certification: active until ``expires_at`` (renewed by completing the
    courses again or a new grant), then expired; or revoked."""

    __tablename__ = "account_certification"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "certification_id"],
                             ["certification.tenant_id", "certification.id"]),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint("status IN ('active', 'expired', 'revoked')", name="status"),
        Index("ix_account_certification_due", "tenant_id", "status", "expires_at"),
    )

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    certification_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(8))
    granted_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
