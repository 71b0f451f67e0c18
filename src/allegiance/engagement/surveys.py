"""Surveys: questions, one response per account, a reward for answering paid through the
ledger, and the net promoter score per program and segment from the 0–10 question."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import campaigns, ledger, members, tenants
from allegiance.engagement import domain
from allegiance.engagement import repository as repo
from allegiance.engagement.errors import (
    AlreadyAnswered,
    DuplicateCode,
    InvalidAnswers,
    InvalidSurvey,
    NotInvited,
    SurveyClosed,
    SurveyNotFound,
)
from allegiance.engagement.models import Survey, SurveyInvitation, SurveyResponse
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique
from allegiance.kit.ids import new_id

KINDS = ("nps", "scale", "choice", "text")
AUDIENCES = ("all", "leavers")


def _check_questions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not 1 <= len(questions) <= 100:
        raise InvalidSurvey("a survey has 1 to 100 questions", field="questions")
    seen: set[str] = set()
    out = []
    for index, q in enumerate(questions):
        path = f"questions[{index}]"
        code = q.get("code")
        if not isinstance(code, str) or not 0 < len(code) <= 64 or code in seen:
            raise InvalidSurvey("each question has a unique code of 1 to 64 characters",
                                field=f"{path}.code")
        seen.add(code)
        if q.get("kind") not in KINDS:
            raise InvalidSurvey(f"kind must be one of {', '.join(KINDS)}", field=f"{path}.kind")
        if q["kind"] == "choice" and not q.get("options"):
            raise InvalidSurvey("a choice question lists its options", field=f"{path}.options")
        out.append({k: v for k, v in q.items() if v is not None})
    if sum(1 for q in out if q["kind"] == "nps") > 1:
        raise InvalidSurvey("at most one nps question", field="questions")
    return out


def create_survey(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                  questions: list[dict[str, Any]], reward_unit_id: str | None = None,
                  reward_points: int = 0, activity_type: str | None = None,
                  audience: str = "all") -> Survey:
    tenants.get_program(session, tenant_id, program_id)
    if audience not in AUDIENCES:
        raise InvalidSurvey(f"audience must be one of {', '.join(AUDIENCES)}", field="audience")
    if reward_points < 0:
        raise InvalidSurvey("reward_points must be >= 0", field="reward_points")
    if reward_points and reward_unit_id is None:
        raise InvalidSurvey("a reward names its unit", field="reward_unit_id")
    if reward_unit_id is not None and \
            tenants.get_unit(session, tenant_id, reward_unit_id).program_id != program_id:
        raise InvalidSurvey("the unit belongs to another program", field="reward_unit_id")
    survey = Survey(tenant_id=tenant_id, id=new_id("srv"), program_id=program_id, code=code,
                    name=name, questions=_check_questions(questions),
                    reward_unit_id=reward_unit_id, reward_points=reward_points,
                    activity_type=activity_type, status="open", audience=audience,
                    created_at=clock.now())
    add_unique(session, survey, DuplicateCode(f"survey {code} exists in this program", field="code"))
    return survey


def get_survey(session: Session, tenant_id: str, survey_id: str) -> Survey:
    row = session.get(Survey, (tenant_id, survey_id))
    if row is None:
        raise SurveyNotFound(f"survey {survey_id} not found", field="survey_id")
    return row


def list_surveys(session: Session, tenant_id: str, program_id: str) -> list[Survey]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Survey).where(
        Survey.tenant_id == tenant_id, Survey.program_id == program_id).order_by(Survey.code)))


def set_status(session: Session, tenant_id: str, survey_id: str, status: str) -> Survey:
    row = get_survey(session, tenant_id, survey_id)
    if status not in ("open", "closed"):
        raise InvalidSurvey("status must be open or closed", field="status")
    row.status = status
    session.flush()
    return row


def _segment(account: members.Account) -> str | None:
    value = (account.attributes or {}).get("segment")
    return value if isinstance(value, str) else None


def submit(session: Session, tenant_id: str, survey_id: str, account_id: str,
           answers: Mapping[str, Any], *, user_id: str | None = None,
           actor: str) -> SurveyResponse:
    """Record an account's answers (once) and pay the survey's reward through the ledger."""
    survey = get_survey(session, tenant_id, survey_id)
    if survey.status != "open":
        raise SurveyClosed("the survey is closed", field="survey_id")
    account = members.get_account(session, tenant_id, account_id)
    members.refuse_erased(account, "account_id")  # no answers, no reward
    if user_id is not None and members.get_user(session, tenant_id, user_id).account_id \
            != account_id:
        raise InvalidAnswers("the user belongs to another account", field="user_id")
    problem = domain.check_answers(survey.questions, answers)
    if problem is not None:
        raise InvalidAnswers(problem[1], field=problem[0])
    if survey.audience == "leavers":
        # Leavers answer with their enrolment closed, but only when the survey was sent.
        if session.get(SurveyInvitation, (tenant_id, survey.id, account_id)) is None:
            raise NotInvited("the leavers' survey was not sent to this account",
                             field="account_id")
    else:
        members.ensure_enrolled(session, tenant_id, survey.program_id, account_id, actor)
    nps_code = next((q["code"] for q in survey.questions if q["kind"] == "nps"), None)
    nps_answer = answers.get(nps_code) if nps_code else None
    now = clock.now()
    response = SurveyResponse(
        tenant_id=tenant_id, id=new_id("srr"), survey_id=survey.id, account_id=account_id,
        user_id=user_id, answers=dict(answers),
        nps=nps_answer if isinstance(nps_answer, int) else None, segment=_segment(account),
        entry_id=None, event_id=None, submitted_at=now)
    add_unique(session, response, AlreadyAnswered("this account has answered the survey", field="account_id"))
    if survey.reward_points and survey.reward_unit_id:
        issued = ledger.program_account(session, tenant_id, survey.program_id,
                                        survey.reward_unit_id, "issued")
        wallet = ledger.wallet(session, tenant_id, survey.program_id, survey.reward_unit_id,
                               "account", account_id)
        entry = ledger.post_entry(session, tenant_id, ledger.EntryRequest(
            program_id=survey.program_id, kind="earn", source_type="survey_response",
            source_id=response.id, entry_key=f"survey:{response.id}", actor=actor,
            memo=f"survey {survey.code} answered",
            lines=(ledger.Line(issued.id, survey.reward_unit_id, ledger.Side.DEBIT,
                               survey.reward_points),
                   ledger.Line(wallet.id, survey.reward_unit_id, ledger.Side.CREDIT,
                               survey.reward_points))))
        response.entry_id = entry.entry_id
        program = tenants.get_program(session, tenant_id, survey.program_id)
        if tenants.get_unit(session, tenant_id, survey.reward_unit_id).kind == "points":
            repo.add_tally(session, tenant_id, program.id, account_id, now,
                           program.time_zone, points=survey.reward_points)
    session.flush()
    outbox.emit(session, tenant_id, "survey.answered", {
        "program_id": survey.program_id, "survey": survey.code, "account_id": account_id,
        "response_id": response.id, "nps": response.nps})
    return response


def leaver_enrolment(session: Session, tenant_id: str, survey: Survey,
                     account_id: str) -> str | None:
    """The closed enrolment a leavers' survey was sent for (None for other surveys): a
    leaver's answers are recorded as an activity against it."""
    if survey.audience != "leavers":
        return None
    invitation = session.get(SurveyInvitation, (tenant_id, survey.id, account_id))
    return None if invitation is None else invitation.enrolment_id


@dataclass(frozen=True)
class NpsReport:
    overall: domain.NpsResult
    by_segment_attribute: dict[str, domain.NpsResult]
    leavers: domain.NpsResult
    by_segment: dict[str, domain.NpsResult] = field(default_factory=dict)
    segment_ids: dict[str, str] = field(default_factory=dict)


def nps_report(session: Session, tenant_id: str, program_id: str,
               survey_id: str | None = None) -> NpsReport:
    """NPS of the program's responses (or one survey's): ``overall``; ``by_segment``, per
    segment of the program (campaigns' segments, by code: the answers of the accounts that are
    members of the segment now — an account in two segments counts in both, every segment is
    listed, one with no answers at 0 responses); ``by_segment_attribute``, per value of the
    account attribute ``segment`` when it answered (no value reads ``none``). Answers to
    leavers' surveys are reported apart (``leavers``), never mixed into the members'."""
    tenants.get_program(session, tenant_id, program_id)
    wanted = [Survey.tenant_id == tenant_id, Survey.program_id == program_id,
              SurveyResponse.nps.is_not(None)]
    if survey_id is not None:
        if get_survey(session, tenant_id, survey_id).program_id != program_id:
            raise SurveyNotFound(f"survey {survey_id} not found", field="survey_id")
        wanted.append(Survey.id == survey_id)
    joined = (Survey.tenant_id == SurveyResponse.tenant_id) & (
        Survey.id == SurveyResponse.survey_id)
    query = select(SurveyResponse.nps, SurveyResponse.segment, Survey.audience).join(
        Survey, joined).where(*wanted)
    everyone: list[int] = []
    leavers: list[int] = []
    grouped: dict[str, list[int]] = defaultdict(list)
    for score, segment, audience in session.execute(query):
        if score is None:
            continue
        if audience == "leavers":
            leavers.append(score)
            continue
        everyone.append(score)
        grouped[segment or "none"].append(score)
    segments = {code: seg_id for seg_id, code in session.execute(
        select(campaigns.Segment.id, campaigns.Segment.code).where(
            campaigns.Segment.tenant_id == tenant_id,
            campaigns.Segment.program_id == program_id))}
    per_segment: dict[str, list[int]] = {code: [] for code in segments}
    member = campaigns.SegmentMember
    in_segments = select(SurveyResponse.nps, campaigns.Segment.code).join(
        Survey, joined).join(member, (member.tenant_id == SurveyResponse.tenant_id) & (
            member.account_id == SurveyResponse.account_id)).join(campaigns.Segment, (
                campaigns.Segment.tenant_id == member.tenant_id) & (
                campaigns.Segment.id == member.segment_id)).where(
        *wanted, Survey.audience != "leavers", campaigns.Segment.program_id == program_id)
    for score, code in session.execute(in_segments):
        if score is not None:
            per_segment[code].append(score)
    return NpsReport(domain.nps(everyone),
                     {name: domain.nps(values) for name, values in sorted(grouped.items())},
                     domain.nps(leavers),
                     {code: domain.nps(values) for code, values in sorted(per_segment.items())},
                     segments)
