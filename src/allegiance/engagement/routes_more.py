"""HTTP routes of courses and certifications, super tickets and the leavers' survey
(definitions and draws: admin; completions, entries: integration; reads: read). Another
tenant's ids read as not found."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from allegiance import events
from allegiance.engagement import academy, leavers, surveys, tickets
from allegiance.engagement.errors import InvalidCourse
from allegiance.engagement.schemas_more import (
    CertificationCreate,
    CertificationList,
    CertificationRead,
    CompletionIn,
    CompletionRead,
    CourseCreate,
    CourseList,
    CourseRead,
    EntryIn,
    EntryList,
    EntryRead,
    GrantIn,
    HeldRead,
    InvitationList,
    InvitationRead,
    LeaversSent,
    RevokeIn,
    SuperTicketCreate,
    SuperTicketList,
    SuperTicketRead,
    TranscriptCertification,
    TranscriptCourse,
    TranscriptRead,
)
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["engagement"])


# --- courses and certifications --------------------------------------------------------------


@router.post("/programs/{program_id}/courses", status_code=201, response_model=CourseRead,
             summary="Define a course (completed by an activity naming it)")
def create_course(program_id: str, body: CourseCreate,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> CourseRead:
        return CourseRead.model_validate(academy.create_course(
            session, ctx.tenant_id, program_id, **body.model_dump()))

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/courses", response_model=CourseList,
            summary="List a program's courses")
def list_courses(program_id: str, ctx: Ctx = Depends(need("read"))) -> CourseList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return CourseList(items=[CourseRead.model_validate(c) for c in
                                 academy.list_courses(session, ctx.tenant_id, program_id)])


@router.post("/courses/{course_id}/completions", status_code=201, response_model=CompletionRead,
             summary="Record that an account completed a course (an activity: rules earn on it)")
def complete(course_id: str, body: CompletionIn,
             ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> CompletionRead:
        course = academy.get_course(session, ctx.tenant_id, course_id)
        ctx.check_program(course.program_id)
        external = body.external_id or f"{course.code}:{body.account_id}"
        done = events.ingest(session, ctx.tenant_id, course.program_id, events.EventData(
            external_id=f"course:{external}", kind="activity", source="academy",
            activity_type=course.activity_type, account_id=body.account_id,
            user_id=body.user_id, occurred_at=body.completed_at,
            attributes={academy.COURSE_ATTRIBUTE: course.code}), actor=ctx.actor)
        row = academy.completion_of_event(session, ctx.tenant_id, course.id, done.event.id)
        if row is None:
            raise InvalidCourse("the activity did not complete the course (is it retired, or "
                                "was the id used for another course?)", field="external_id")
        return CompletionRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.post("/programs/{program_id}/certifications", status_code=201,
             response_model=CertificationRead,
             summary="Define a certification (courses, validity, badge; a tier metric)")
def create_certification(program_id: str, body: CertificationCreate,
                         ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> CertificationRead:
        return CertificationRead.model_validate(academy.create_certification(
            session, ctx.tenant_id, program_id, **body.model_dump()))

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/certifications", response_model=CertificationList,
            summary="List a program's certifications")
def list_certifications(program_id: str,
                        ctx: Ctx = Depends(need("read"))) -> CertificationList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = academy.list_certifications(session, ctx.tenant_id, program_id)
        return CertificationList(items=[CertificationRead.model_validate(c) for c in rows])


@router.post("/certifications/{certification_id}/grants", response_model=HeldRead,
             summary="Grant (or renew) a certification directly (an exam passed)")
def grant(certification_id: str, body: GrantIn,
          ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> HeldRead:
        cert = academy.get_certification(session, ctx.tenant_id, certification_id)
        ctx.check_program(cert.program_id)
        return HeldRead.model_validate(academy.grant(
            session, ctx.tenant_id, certification_id, body.account_id, at=body.at,
            source=body.source, actor=ctx.actor))

    return ctx.write(body, run)


@router.post("/certifications/{certification_id}/revocations", response_model=HeldRead,
             summary="Revoke an account's certification (its tier metric drops to 0)")
def revoke(certification_id: str, body: RevokeIn,
           ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> HeldRead:
        cert = academy.get_certification(session, ctx.tenant_id, certification_id)
        ctx.check_program(cert.program_id)
        return HeldRead.model_validate(academy.revoke(
            session, ctx.tenant_id, certification_id, body.account_id, reason=body.reason,
            actor=ctx.actor))

    return ctx.write(body, run)


@router.get("/programs/{program_id}/accounts/{account_id}/academy", response_model=TranscriptRead,
            summary="An account's completed courses and certifications")
def transcript(program_id: str, account_id: str,
               ctx: Ctx = Depends(need("read"))) -> TranscriptRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        t = academy.transcript(session, ctx.tenant_id, program_id, account_id)
        return TranscriptRead(
            courses=[TranscriptCourse(course=c.code, name=c.name, completed_at=d.completed_at,
                                      event_id=d.event_id) for c, d in t.completions],
            certifications=[TranscriptCertification(
                certification=c.code, name=c.name, status=h.status, granted_at=h.granted_at,
                expires_at=h.expires_at) for c, h in t.certifications])


# --- super tickets ---------------------------------------------------------------------------


@router.post("/programs/{program_id}/super-tickets", status_code=201,
             response_model=SuperTicketRead,
             summary="Release a limited reward (first come, or a lottery drawn after closing)")
def create_super_ticket(program_id: str, body: SuperTicketCreate,
                        ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> SuperTicketRead:
        return SuperTicketRead.model_validate(tickets.create_super_ticket(
            session, ctx.tenant_id, program_id, **body.model_dump()))

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/super-tickets", response_model=SuperTicketList,
            summary="List a program's super tickets")
def list_super_tickets(program_id: str, ctx: Ctx = Depends(need("read"))) -> SuperTicketList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = tickets.list_super_tickets(session, ctx.tenant_id, program_id)
        return SuperTicketList(items=[SuperTicketRead.model_validate(r) for r in rows])


@router.post("/super-tickets/{super_ticket_id}/entries", status_code=201,
             response_model=EntryRead,
             summary="Enter an account (first come: redeems at once; lottery: waits)")
def enter(super_ticket_id: str, body: EntryIn,
          ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> EntryRead:
        ctx.check_program(tickets.get_super_ticket(session, ctx.tenant_id,
                                                   super_ticket_id).program_id)
        return EntryRead.model_validate(tickets.enter(
            session, ctx.tenant_id, super_ticket_id, body.account_id, user_id=body.user_id,
            actor=ctx.actor))

    return ctx.write(body, run, 201)


@router.get("/super-tickets/{super_ticket_id}/entries", response_model=EntryList,
            summary="The entries (in draw order once drawn)")
def list_entries(super_ticket_id: str, ctx: Ctx = Depends(need("read"))) -> EntryList:
    with ctx.read() as session:
        ctx.check_program(tickets.get_super_ticket(session, ctx.tenant_id,
                                                   super_ticket_id).program_id)
        return EntryList(items=[EntryRead.model_validate(e) for e in
                                tickets.entries(session, ctx.tenant_id, super_ticket_id)])


@router.post("/super-tickets/{super_ticket_id}/draw", response_model=EntryList,
             summary="Draw a lottery after its entries closed (winners redeem the reward)")
def draw(super_ticket_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> EntryList:
        ctx.check_program(tickets.get_super_ticket(session, ctx.tenant_id,
                                                   super_ticket_id).program_id)
        return EntryList(items=[EntryRead.model_validate(e) for e in tickets.draw(
            session, ctx.tenant_id, super_ticket_id, actor=ctx.actor)])

    return ctx.write(None, run)


# --- leavers' survey -------------------------------------------------------------------------


@router.post("/surveys/{survey_id}/leavers", response_model=LeaversSent,
             summary="Send a leavers' survey now to the accounts that left (the job does it "
             "on schedule)")
def send_leavers(survey_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> LeaversSent:
        ctx.check_program(surveys.get_survey(session, ctx.tenant_id, survey_id).program_id)
        total = 0
        while (done := leavers.send(session, ctx.tenant_id, survey_id)) > 0:
            total += done
        return LeaversSent(invited=total)

    return ctx.write(None, run)


@router.get("/surveys/{survey_id}/invitations", response_model=InvitationList,
            summary="The accounts a survey was sent to")
def invitations(survey_id: str, ctx: Ctx = Depends(need("read"))) -> InvitationList:
    with ctx.read() as session:
        ctx.check_program(surveys.get_survey(session, ctx.tenant_id, survey_id).program_id)
        return InvitationList(items=[InvitationRead.model_validate(i) for i in
                                     leavers.invitations(session, ctx.tenant_id, survey_id)])
