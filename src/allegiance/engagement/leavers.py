"""The leavers' survey: a survey with ``audience: leavers`` is sent to every account whose
enrolment in its program closes after the survey was created (an erased account never: its
erasure closes its enrolments, and nothing may contact it) — one invitation per survey and
account (the outbox message ``survey.invited`` carries it to the integrator's mailer). Only an
invited account may answer it, even with its enrolment closed; its NPS is reported apart from
the members' (``leavers`` in the NPS report)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from allegiance import members
from allegiance.engagement.errors import InvalidSurvey
from allegiance.engagement.models import Survey, SurveyInvitation
from allegiance.engagement.surveys import get_survey
from allegiance.kit import clock, outbox
from allegiance.kit.db import Database


def _pending(session: Session, survey: Survey, limit: int) -> list[tuple[str, str]]:
    """(account, enrolment) pairs of enrolments closed since the survey exists, not yet sent:
    members that left (closed from active or suspended; not a withdrawn application or
    invitation), never an erased account (its erasure closes its enrolments; nothing may
    contact it)."""
    change, enrolment, account = members.EnrolmentChange, members.Enrolment, members.Account
    rows = session.execute(
        select(enrolment.account_id, enrolment.id)
        .join(change, and_(change.tenant_id == enrolment.tenant_id,
                           change.enrolment_id == enrolment.id))
        .join(account, and_(account.tenant_id == enrolment.tenant_id,
                            account.id == enrolment.account_id))
        .outerjoin(SurveyInvitation, and_(
            SurveyInvitation.tenant_id == enrolment.tenant_id,
            SurveyInvitation.survey_id == survey.id,
            SurveyInvitation.account_id == enrolment.account_id))
        .where(enrolment.tenant_id == survey.tenant_id,
               enrolment.program_id == survey.program_id, change.to_status == "closed",
               change.from_status.in_(("active", "suspended")), account.status != "erased",
               change.at >= survey.created_at, SurveyInvitation.account_id.is_(None))
        .order_by(enrolment.account_id).limit(limit)).all()
    seen: dict[str, str] = {}
    for account_id, enrolment_id in rows:
        seen.setdefault(account_id, enrolment_id)
    return list(seen.items())


def send(session: Session, tenant_id: str, survey_id: str, *, limit: int = 1000) -> int:
    """Invite the leavers of one leavers' survey that have not been sent it; returns how many
    were invited (call again while it returns ``limit``)."""
    survey = get_survey(session, tenant_id, survey_id)
    if survey.audience != "leavers":
        raise InvalidSurvey("the survey is not a leavers' survey", field="survey_id")
    if survey.status != "open":
        return 0
    now = clock.now()
    pending = _pending(session, survey, limit)
    for account_id, enrolment_id in pending:
        session.add(SurveyInvitation(tenant_id=tenant_id, survey_id=survey.id,
                                     account_id=account_id, enrolment_id=enrolment_id,
                                     reason="leaver", sent_at=now))
        outbox.emit(session, tenant_id, "survey.invited", {
            "program_id": survey.program_id, "survey": survey.code, "survey_id": survey.id,
            "account_id": account_id, "enrolment_id": enrolment_id, "reason": "leaver"})
    session.flush()
    return len(pending)


def invited(session: Session, tenant_id: str, survey_id: str,
            account_id: str) -> SurveyInvitation | None:
    return session.get(SurveyInvitation, (tenant_id, survey_id, account_id))


def invitations(session: Session, tenant_id: str, survey_id: str) -> list[SurveyInvitation]:
    get_survey(session, tenant_id, survey_id)
    return list(session.scalars(select(SurveyInvitation).where(
        SurveyInvitation.tenant_id == tenant_id, SurveyInvitation.survey_id == survey_id
    ).order_by(SurveyInvitation.sent_at, SurveyInvitation.account_id)))


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 1000,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    """Job: send every open leavers' survey to the accounts that left since the last run."""
    with db.read() as session:
        surveys = session.execute(select(Survey.tenant_id, Survey.id).where(
            Survey.audience == "leavers", Survey.status == "open")).all()
    sent = 0
    for tenant_id, survey_id in surveys:
        while True:
            with db.transaction(tenant_id) as session:
                done = send(session, tenant_id, survey_id, limit=batch)
            sent += done
            progress("invitations", done)
            if done < batch:
                break
    return {"surveys": len(surveys), "invited": sent}
