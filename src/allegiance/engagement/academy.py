"""Courses and certifications (HubSpot Academy, Philips CVAP).

A course is completed by the activity of its ``activity_type`` (default ``course_completed``)
whose attribute ``course`` is the course's code — from the API (``POST
/v1/courses/{id}/completions``) or a learning platform's file imported as activities — so the
rules earn on it like on any activity, and :func:`on_activity` (called by the earning path in
the event's transaction) records the completion once per event.

A certification is granted when an account has completed all its courses (each within
``valid_days`` of the last one when the certification expires) or directly (an exam passed).
Holding it sets the tier metric ``certification:<code>`` to 1 (a tier ladder on that metric is
the tier condition) and awards its badge; it expires ``valid_days`` after the grant (the
``certifications`` job), which sets the metric back to 0; completing the courses again or a new
grant renews it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance import audit, members, tenants, tiers
from allegiance.engagement import badges
from allegiance.engagement.domain import Occurrence
from allegiance.engagement.errors import (
    CertificationNotFound,
    CourseNotFound,
    DuplicateCode,
    InvalidCertification,
    InvalidCourse,
)
from allegiance.engagement.models import (
    AccountCertification,
    Certification,
    Course,
    CourseCompletion,
)
from allegiance.kit import clock, outbox
from allegiance.kit.db import Database, add_unique
from allegiance.kit.ids import new_id

CODE = re.compile(r"^[a-z0-9_-]{1,60}$")
COURSE_ATTRIBUTE = "course"


# --- definitions -----------------------------------------------------------------------------


def create_course(session: Session, tenant_id: str, program_id: str, *, code: str, name: str,
                  activity_type: str = "course_completed",
                  hours: int | None = None) -> Course:
    tenants.get_program(session, tenant_id, program_id)
    if hours is not None and hours < 0:
        raise InvalidCourse("hours must be >= 0", field="hours")
    row = Course(tenant_id=tenant_id, id=new_id("crs"), program_id=program_id, code=code,
                 name=name, activity_type=activity_type, hours=hours, status="active",
                 created_at=clock.now())
    add_unique(session, row, DuplicateCode(f"course {code} exists in this program",
                                           field="code"))
    return row


def get_course(session: Session, tenant_id: str, course_id: str) -> Course:
    row = session.get(Course, (tenant_id, course_id))
    if row is None:
        raise CourseNotFound(f"course {course_id} not found", field="course_id")
    return row


def list_courses(session: Session, tenant_id: str, program_id: str) -> list[Course]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Course).where(
        Course.tenant_id == tenant_id, Course.program_id == program_id).order_by(Course.code)))


def create_certification(session: Session, tenant_id: str, program_id: str, *, code: str,
                         name: str, courses: list[str], valid_days: int | None = None,
                         badge: str | None = None) -> Certification:
    tenants.get_program(session, tenant_id, program_id)
    if not CODE.match(code):
        raise InvalidCertification("code: 1 to 60 lower-case letters, digits, '-' and '_' "
                                   "(it names the tier metric certification:<code>)",
                                   field="code")
    if valid_days is not None and valid_days <= 0:
        raise InvalidCertification("valid_days must be positive", field="valid_days")
    known = {c.code for c in list_courses(session, tenant_id, program_id)}
    for index, course in enumerate(courses):
        if course not in known:
            raise InvalidCertification(f"no course {course} in this program",
                                       field=f"courses[{index}]")
    if badge is not None and badges.find_badge(session, tenant_id, program_id, badge) is None:
        raise InvalidCertification(f"no badge {badge} in this program", field="badge")
    row = Certification(tenant_id=tenant_id, id=new_id("crt"), program_id=program_id,
                        code=code, name=name, courses=list(dict.fromkeys(courses)),
                        valid_days=valid_days, badge=badge, created_at=clock.now())
    add_unique(session, row, DuplicateCode(f"certification {code} exists in this program",
                                           field="code"))
    return row


def get_certification(session: Session, tenant_id: str, certification_id: str) -> Certification:
    row = session.get(Certification, (tenant_id, certification_id))
    if row is None:
        raise CertificationNotFound(f"certification {certification_id} not found",
                                    field="certification_id")
    return row


def list_certifications(session: Session, tenant_id: str,
                        program_id: str) -> list[Certification]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Certification).where(
        Certification.tenant_id == tenant_id, Certification.program_id == program_id
    ).order_by(Certification.code)))


# --- completions -----------------------------------------------------------------------------


def on_activity(session: Session, tenant_id: str, program: tenants.Program,
                event: Occurrence, *, actor: str) -> CourseCompletion | None:
    """Record the course completion an activity reports (if it names an active course of its
    type); grant the certifications it completes. Once per event."""
    code = event.attributes.get(COURSE_ATTRIBUTE)
    if event.kind != "activity" or not isinstance(code, str):
        return None
    course = session.scalars(select(Course).where(
        Course.tenant_id == tenant_id, Course.program_id == program.id, Course.code == code,
        Course.activity_type == event.activity_type, Course.status == "active")).first()
    if course is None:
        return None
    if completion_of_event(session, tenant_id, course.id, event.event_id) is not None:
        return None
    row = CourseCompletion(tenant_id=tenant_id, id=new_id("ccm"), course_id=course.id,
                           account_id=event.account_id, user_id=event.user_id,
                           event_id=event.event_id, completed_at=event.occurred_at)
    session.add(row)
    session.flush()
    outbox.emit(session, tenant_id, "course.completed", {
        "program_id": program.id, "course": course.code, "account_id": event.account_id,
        "user_id": event.user_id, "event_id": event.event_id,
        "completed_at": event.occurred_at.isoformat()})
    for cert in list_certifications(session, tenant_id, program.id):
        if course.code not in cert.courses:
            continue
        earned = _earned_at(session, tenant_id, cert, event.account_id)
        held = session.get(AccountCertification, (tenant_id, cert.id, event.account_id))
        if earned is None or (held is not None and held.status == "active"
                              and held.granted_at >= earned):
            continue
        grant(session, tenant_id, cert.id, event.account_id, at=earned,
              source=f"courses (event {event.event_id})", actor=actor)
    return row


def completion_of_event(session: Session, tenant_id: str, course_id: str,
                        event_id: str) -> CourseCompletion | None:
    return session.scalars(select(CourseCompletion).where(
        CourseCompletion.tenant_id == tenant_id, CourseCompletion.course_id == course_id,
        CourseCompletion.event_id == event_id)).first()


def _earned_at(session: Session, tenant_id: str, cert: Certification,
               account_id: str) -> datetime | None:
    """When the account earned the certification from its courses: the latest completion of
    the last course it needed (each course's latest completion counts, so completions that
    arrive late or out of order are fine) — None while a course is missing, or when the
    certification expires and the courses were not all completed within ``valid_days``."""
    if not cert.courses:
        return None
    latest = {code: at for code, at in session.execute(
        select(Course.code, func.max(CourseCompletion.completed_at))
        .join(CourseCompletion, (CourseCompletion.tenant_id == Course.tenant_id)
              & (CourseCompletion.course_id == Course.id))
        .where(Course.tenant_id == tenant_id, Course.program_id == cert.program_id,
               Course.code.in_(cert.courses), CourseCompletion.account_id == account_id)
        .group_by(Course.code))}
    if len(latest) < len(cert.courses):
        return None
    first, last = min(latest.values()), max(latest.values())
    if cert.valid_days is not None and first <= last - timedelta(days=cert.valid_days):
        return None
    return last


# --- certifications held ---------------------------------------------------------------------


def grant(session: Session, tenant_id: str, certification_id: str, account_id: str, *,
          at: datetime | None = None, source: str, actor: str) -> AccountCertification:
    """Grant (or renew) a certification: the tier metric becomes 1, the badge is awarded."""
    cert = get_certification(session, tenant_id, certification_id)
    members.get_account(session, tenant_id, account_id)
    when = at or clock.now()
    expires = None if cert.valid_days is None else when + timedelta(days=cert.valid_days)
    row = session.get(AccountCertification, (tenant_id, cert.id, account_id),
                      with_for_update=True)
    now = clock.now()
    if row is None:
        row = AccountCertification(tenant_id=tenant_id, certification_id=cert.id,
                                   account_id=account_id, status="active", granted_at=when,
                                   expires_at=expires, source=source[:200], updated_at=now)
        session.add(row)
        kind = "granted"
    else:
        kind = "renewed" if row.status == "active" else "granted"
        row.status, row.granted_at, row.expires_at = "active", when, expires
        row.source, row.updated_at = source[:200], now
    session.flush()
    tiers.certify(session, tenant_id, cert.program_id, account_id, cert.code, True, when,
                  actor=actor)
    if cert.badge is not None:
        badges.award_badge(session, tenant_id, cert.program_id, account_id, cert.badge,
                           level=1, source=f"certification:{cert.code}", actor=actor, at=when)
    audit.record(session, tenant_id, actor=actor, action=f"certification.{kind}",
                 object_type="certification", object_id=cert.id,
                 after={"account_id": account_id, "expires_at": str(expires), "source": source})
    outbox.emit(session, tenant_id, f"certification.{kind}", {
        "program_id": cert.program_id, "certification": cert.code, "account_id": account_id,
        "expires_at": None if expires is None else expires.isoformat()})
    return row


def _end(session: Session, tenant_id: str, cert: Certification, row: AccountCertification,
         status: str, at: datetime, actor: str, reason: str | None) -> None:
    row.status, row.updated_at = status, clock.now()
    session.flush()
    tiers.certify(session, tenant_id, cert.program_id, row.account_id, cert.code, False, at,
                  actor=actor)
    audit.record(session, tenant_id, actor=actor, action=f"certification.{status}",
                 object_type="certification", object_id=cert.id,
                 before={"status": "active"},
                 after={"account_id": row.account_id, "status": status, "reason": reason})
    outbox.emit(session, tenant_id, f"certification.{status}", {
        "program_id": cert.program_id, "certification": cert.code,
        "account_id": row.account_id, "reason": reason})


def revoke(session: Session, tenant_id: str, certification_id: str, account_id: str, *,
           reason: str | None = None, actor: str) -> AccountCertification:
    cert = get_certification(session, tenant_id, certification_id)
    row = session.get(AccountCertification, (tenant_id, cert.id, account_id),
                      with_for_update=True)
    if row is None or row.status != "active":
        raise InvalidCertification("the account does not hold this certification",
                                   field="account_id")
    _end(session, tenant_id, cert, row, "revoked", clock.now(), actor, reason)
    return row


def expire_due(session: Session, tenant_id: str, *, now: datetime | None = None,
               limit: int = 1000, actor: str = "system") -> int:
    """Expire the certifications whose validity ended; returns how many."""
    when = now or clock.now()
    rows = list(session.scalars(select(AccountCertification).where(
        AccountCertification.tenant_id == tenant_id, AccountCertification.status == "active",
        AccountCertification.expires_at.is_not(None), AccountCertification.expires_at <= when
    ).order_by(AccountCertification.expires_at).limit(limit).with_for_update()))
    for row in rows:
        cert = get_certification(session, tenant_id, row.certification_id)
        assert row.expires_at is not None
        _end(session, tenant_id, cert, row, "expired", row.expires_at, actor, None)
    return len(rows)


@dataclass(frozen=True)
class Transcript:
    completions: list[tuple[Course, CourseCompletion]]
    certifications: list[tuple[Certification, AccountCertification]]


def transcript(session: Session, tenant_id: str, program_id: str,
               account_id: str) -> Transcript:
    """An account's completed courses and its certifications (with their state)."""
    tenants.get_program(session, tenant_id, program_id)
    members.get_account(session, tenant_id, account_id)
    done = [(c, d) for c, d in session.execute(select(Course, CourseCompletion).join(
        CourseCompletion, (CourseCompletion.tenant_id == Course.tenant_id)
        & (CourseCompletion.course_id == Course.id)).where(
        Course.tenant_id == tenant_id, Course.program_id == program_id,
        CourseCompletion.account_id == account_id
    ).order_by(CourseCompletion.completed_at, Course.code))]
    held = [(c, h) for c, h in session.execute(select(Certification, AccountCertification).join(
        AccountCertification, (AccountCertification.tenant_id == Certification.tenant_id)
        & (AccountCertification.certification_id == Certification.id)).where(
        Certification.tenant_id == tenant_id, Certification.program_id == program_id,
        AccountCertification.account_id == account_id).order_by(Certification.code))]
    return Transcript(done, held)


def _no_progress(_step: str, _count: int) -> None:
    return None


def run(db: Database, batch: int = 1000,
        progress: Callable[[str, int], None] = _no_progress) -> dict[str, int]:
    """Job: expire the certifications whose validity ended (their tier metric drops to 0)."""
    now = clock.now()
    with db.read() as session:
        tenant_ids = list(session.scalars(select(AccountCertification.tenant_id).where(
            AccountCertification.status == "active",
            AccountCertification.expires_at <= now).distinct()))
    expired = 0
    for tenant_id in tenant_ids:
        while True:
            with db.transaction(tenant_id) as session:
                done = expire_due(session, tenant_id, now=now, limit=batch)
            expired += done
            progress("certifications", done)
            if done < batch:
                break
    return {"expired": expired}
