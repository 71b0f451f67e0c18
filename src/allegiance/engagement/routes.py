"""HTTP routes of challenges, badges, leaderboards and surveys (definitions: admin; member
actions: integration; reads: read). Another tenant's ids read as not found."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import audit, events
from allegiance.engagement import badges, leaderboards, member_events, menus, service, surveys
from allegiance.engagement.schemas import (
    AttendeeIn,
    AttendeeList,
    AttendeeRead,
    BadgeAward,
    BadgeCreate,
    BadgeList,
    BadgeRead,
    BoardRead,
    ChallengeCreate,
    ChallengeList,
    ChallengeRead,
    ChallengeUpdate,
    CompletionRead,
    HeldBadgeList,
    HeldBadgeRead,
    Invitations,
    Invited,
    MemberEventCreate,
    MemberEventList,
    MemberEventRead,
    MemberEventStatus,
    MemberEventSummary,
    MenuCreate,
    MenuList,
    MenuRead,
    MenuStateRead,
    NotInvitedRead,
    NpsRead,
    NpsReportRead,
    OptOut,
    OptOutRead,
    PickIn,
    PickRead,
    ProgressList,
    ProgressRead,
    ResponseCreate,
    ResponseRead,
    SegmentNpsRead,
    SponsorCreate,
    SponsorRead,
    StandingRead,
    SurveyCreate,
    SurveyList,
    SurveyRead,
    SurveyStatus,
)
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["engagement"])


# --- challenges ------------------------------------------------------------------------------


@router.post("/programs/{program_id}/challenges", status_code=201, response_model=ChallengeRead,
             summary="Define a challenge (count or sum events per period, streaks)")
def create_challenge(program_id: str, body: ChallengeCreate,
                     ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> ChallengeRead:
        options = body.model_dump(exclude_none=True, include={
            "description", "product_list", "category", "starts_at", "ends_at",
            "max_completions", "budget"})
        row = service.create_challenge(
            session, ctx.tenant_id, program_id, code=body.code, name=body.name,
            trigger=body.trigger, metric=body.metric, target=body.target, period=body.period,
            streak=body.streak, effects=[e.model_dump(exclude_none=True) for e in body.effects],
            actor=ctx.actor, **options)
        out = ChallengeRead.model_validate(row)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="challenge.create",
                     object_type="challenge", object_id=row.id,
                     after=out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/challenges", response_model=ChallengeList,
            summary="List a program's challenges")
def list_challenges(program_id: str, ctx: Ctx = Depends(need("read"))) -> ChallengeList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = service.list_challenges(session, ctx.tenant_id, program_id)
        return ChallengeList(items=[ChallengeRead.model_validate(r) for r in rows])


@router.get("/challenges/{challenge_id}", response_model=ChallengeRead,
            summary="Read a challenge")
def get_challenge(challenge_id: str, ctx: Ctx = Depends(need("read"))) -> ChallengeRead:
    with ctx.read() as session:
        row = service.get_challenge(session, ctx.tenant_id, challenge_id)
        ctx.check_program(row.program_id)
        return ChallengeRead.model_validate(row)


@router.patch("/challenges/{challenge_id}", response_model=ChallengeRead,
              summary="Rename, end, cap or retire a challenge")
def update_challenge(challenge_id: str, body: ChallengeUpdate,
                     ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ChallengeRead:
        ctx.check_program(service.get_challenge(session, ctx.tenant_id,
                                                challenge_id).program_id)
        row = service.update_challenge(session, ctx.tenant_id, challenge_id,
                                       body.model_dump(exclude_unset=True))
        out = ChallengeRead.model_validate(row)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="challenge.update",
                     object_type="challenge", object_id=row.id,
                     after=out.model_dump(mode="json"))
        return out

    return ctx.write(body, run)


@router.get("/programs/{program_id}/accounts/{account_id}/challenges",
            response_model=ProgressList,
            summary="An account's progress in the program's challenges (current period)")
def challenge_progress(program_id: str, account_id: str,
                       ctx: Ctx = Depends(need("read"))) -> ProgressList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        items = [
            ProgressRead(
                challenge=ChallengeRead.model_validate(p.challenge), period=p.period,
                period_value=p.period_value, period_starts_at=p.period_starts_at,
                period_ends_at=p.period_ends_at, streak=p.streak, completions=p.completions,
                remaining=p.remaining, last_event_at=p.last_event_at,
                history=[CompletionRead.model_validate(c) for c in p.history])
            for p in service.progress_of(session, ctx.tenant_id, program_id, account_id)]
        return ProgressList(items=items)


# --- badges ----------------------------------------------------------------------------------


@router.post("/programs/{program_id}/badges", status_code=201, response_model=BadgeRead,
             summary="Define a badge with levels")
def create_badge(program_id: str, body: BadgeCreate,
                 ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> BadgeRead:
        row = badges.create_badge(session, ctx.tenant_id, program_id, code=body.code,
                                  name=body.name, levels=body.levels)
        return BadgeRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/badges", response_model=BadgeList,
            summary="List a program's badges")
def list_badges(program_id: str, ctx: Ctx = Depends(need("read"))) -> BadgeList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = badges.list_badges(session, ctx.tenant_id, program_id)
        return BadgeList(items=[BadgeRead.model_validate(r) for r in rows])


@router.post("/programs/{program_id}/accounts/{account_id}/badges",
             response_model=HeldBadgeList, summary="Award a badge (or a higher level of it)")
def award_badge(program_id: str, account_id: str, body: BadgeAward,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> HeldBadgeList:
        badges.award_badge(session, ctx.tenant_id, program_id, account_id, body.badge,
                           level=body.level, source=f"operator:{ctx.actor}", actor=ctx.actor)
        held = badges.badges_of(session, ctx.tenant_id, program_id, account_id)
        return HeldBadgeList(items=[HeldBadgeRead.model_validate(h) for h in held])

    return ctx.write(body, run)


@router.get("/programs/{program_id}/accounts/{account_id}/badges",
            response_model=HeldBadgeList, summary="The badges an account holds")
def account_badges(program_id: str, account_id: str,
                   ctx: Ctx = Depends(need("read"))) -> HeldBadgeList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        held = badges.badges_of(session, ctx.tenant_id, program_id, account_id)
        return HeldBadgeList(items=[HeldBadgeRead.model_validate(h) for h in held])


# --- leaderboards ----------------------------------------------------------------------------


@router.get("/programs/{program_id}/leaderboards/{metric}", response_model=BoardRead,
            summary="Ranking of a period by a metric (ties share a rank; opt-outs left out)")
def leaderboard(program_id: str, metric: str,
                period: str = Query("month", max_length=10),
                at: datetime | None = Query(None, description="a moment in the period"),
                ranking: str = Query("competition", max_length=16),
                limit: int = Query(10, ge=1, le=1000),
                account_id: str | None = Query(None, max_length=40),
                ctx: Ctx = Depends(need("read"))) -> BoardRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        board = leaderboards.leaderboard(session, ctx.tenant_id, program_id, metric=metric,
                                         period=period, at=at, ranking=ranking, limit=limit,
                                         account_id=account_id)
        return BoardRead(
            metric=board.metric, period=board.period, label=board.label,
            ranking=board.ranking, total=board.total,
            entries=[StandingRead.model_validate(e) for e in board.entries],
            me=StandingRead.model_validate(board.me) if board.me else None)


@router.post("/programs/{program_id}/accounts/{account_id}/leaderboard-opt-out",
             response_model=OptOutRead, summary="Leave (or rejoin) the program's leaderboards")
def opt_out(program_id: str, account_id: str, body: OptOut,
            ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> OptOutRead:
        state = leaderboards.set_opt_out(session, ctx.tenant_id, program_id, account_id,
                                         body.opted_out)
        return OptOutRead(account_id=account_id, opted_out=state)

    return ctx.write(body, run)


# --- surveys ---------------------------------------------------------------------------------


@router.post("/programs/{program_id}/surveys", status_code=201, response_model=SurveyRead,
             summary="Define a survey (questions, reward, activity type)")
def create_survey(program_id: str, body: SurveyCreate,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> SurveyRead:
        row = surveys.create_survey(
            session, ctx.tenant_id, program_id, code=body.code, name=body.name,
            questions=[q.model_dump(exclude_none=True) for q in body.questions],
            reward_unit_id=body.reward_unit_id, reward_points=body.reward_points,
            activity_type=body.activity_type, audience=body.audience)
        return SurveyRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/surveys", response_model=SurveyList,
            summary="List a program's surveys")
def list_surveys(program_id: str, ctx: Ctx = Depends(need("read"))) -> SurveyList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = surveys.list_surveys(session, ctx.tenant_id, program_id)
        return SurveyList(items=[SurveyRead.model_validate(r) for r in rows])


@router.post("/surveys/{survey_id}/status", response_model=SurveyRead,
             summary="Open or close a survey")
def survey_status(survey_id: str, body: SurveyStatus,
                  ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> SurveyRead:
        ctx.check_program(surveys.get_survey(session, ctx.tenant_id, survey_id).program_id)
        return SurveyRead.model_validate(
            surveys.set_status(session, ctx.tenant_id, survey_id, body.status))

    return ctx.write(body, run)


@router.post("/surveys/{survey_id}/responses", status_code=201, response_model=ResponseRead,
             summary="Answer a survey for an account (rewarded once; recorded as an activity)")
def respond(survey_id: str, body: ResponseCreate,
            ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> ResponseRead:
        survey = surveys.get_survey(session, ctx.tenant_id, survey_id)
        ctx.check_program(survey.program_id)
        row = surveys.submit(session, ctx.tenant_id, survey_id, body.account_id, body.answers,
                             user_id=body.user_id, actor=ctx.actor)
        if survey.activity_type:  # a leaver's answer too, against the closed enrolment
            done = events.ingest(session, ctx.tenant_id, survey.program_id, events.EventData(
                external_id=f"survey:{row.id}", kind="activity", source="survey",
                activity_type=survey.activity_type, account_id=body.account_id,
                user_id=body.user_id, occurred_at=row.submitted_at, reported_by="member"),
                actor=ctx.actor, leaver_enrolment_id=surveys.leaver_enrolment(
                    session, ctx.tenant_id, survey, body.account_id))
            row.event_id = done.event.id
            session.flush()
        return ResponseRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/nps", response_model=NpsReportRead,
            summary="Net promoter score of the program (or one survey), per segment")
def nps(program_id: str, survey_id: str | None = Query(None, max_length=40),
        ctx: Ctx = Depends(need("read"))) -> NpsReportRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        report = surveys.nps_report(session, ctx.tenant_id, program_id, survey_id)

    def one(result: object) -> NpsRead:
        return NpsRead.model_validate(result)

    return NpsReportRead(
        overall=one(report.overall),
        by_segment={k: SegmentNpsRead(segment_id=report.segment_ids[k],
                                      **one(v).model_dump())
                    for k, v in report.by_segment.items()},
        by_segment_attribute={k: one(v) for k, v in report.by_segment_attribute.items()},
        leavers=one(report.leavers))


# --- member events ---------------------------------------------------------------------------


def _summary(session: Session, ctx: Ctx, member_event_id: str) -> MemberEventSummary:
    s = member_events.summary(session, ctx.tenant_id, member_event_id)
    return MemberEventSummary(
        event=MemberEventRead.model_validate(s.event), invited=s.invited,
        registered=s.registered, attended=s.attended, seats_left=s.seats_left,
        sponsors=[SponsorRead.model_validate(x) for x in s.sponsors])


def _owned(session: Session, ctx: Ctx, member_event_id: str) -> None:
    ctx.check_program(member_events.get_event(session, ctx.tenant_id,
                                              member_event_id).program_id)


@router.post("/programs/{program_id}/member-events", status_code=201,
             response_model=MemberEventRead, summary="Define a member event")
def create_member_event(program_id: str, body: MemberEventCreate,
                        ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> MemberEventRead:
        row = member_events.create_event(session, ctx.tenant_id, program_id,
                                         **body.model_dump())
        return MemberEventRead.model_validate(row)

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/member-events", response_model=MemberEventList,
            summary="List a program's member events")
def list_member_events(program_id: str, ctx: Ctx = Depends(need("read"))) -> MemberEventList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        rows = member_events.list_events(session, ctx.tenant_id, program_id)
        return MemberEventList(items=[MemberEventRead.model_validate(r) for r in rows])


@router.get("/member-events/{member_event_id}", response_model=MemberEventSummary,
            summary="A member event with its counts, seats left and sponsors")
def get_member_event(member_event_id: str,
                     ctx: Ctx = Depends(need("read"))) -> MemberEventSummary:
    with ctx.read() as session:
        _owned(session, ctx, member_event_id)
        return _summary(session, ctx, member_event_id)


@router.post("/member-events/{member_event_id}/status", response_model=MemberEventRead,
             summary="Open, close (registration) or cancel a member event")
def member_event_status(member_event_id: str, body: MemberEventStatus,
                        ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> MemberEventRead:
        _owned(session, ctx, member_event_id)
        return MemberEventRead.model_validate(member_events.set_status(
            session, ctx.tenant_id, member_event_id, body.status))

    return ctx.write(body, run)


@router.post("/member-events/{member_event_id}/invitations", response_model=Invited,
             summary="Invite accounts (erased ones are left out and listed)")
def invite(member_event_id: str, body: Invitations,
           ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> Invited:
        _owned(session, ctx, member_event_id)
        outcome = member_events.invite(session, ctx.tenant_id, member_event_id,
                                       body.account_ids)
        return Invited(invited=outcome.invited, not_invited=[
            NotInvitedRead(account_id=n.account_id, reason=n.reason)
            for n in outcome.not_invited])

    return ctx.write(body, run)


@router.post("/member-events/{member_event_id}/registrations", status_code=201,
             response_model=AttendeeRead,
             summary="Register an account (within capacity; invitation if required)")
def register(member_event_id: str, body: AttendeeIn,
             ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> AttendeeRead:
        _owned(session, ctx, member_event_id)
        return AttendeeRead.model_validate(member_events.register(
            session, ctx.tenant_id, member_event_id, body.account_id))

    return ctx.write(body, run, 201)


@router.post("/member-events/{member_event_id}/cancellations", response_model=AttendeeRead,
             summary="Cancel an account's registration (frees the seat)")
def cancel_registration(member_event_id: str, body: AttendeeIn,
                        ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> AttendeeRead:
        _owned(session, ctx, member_event_id)
        return AttendeeRead.model_validate(member_events.cancel_registration(
            session, ctx.tenant_id, member_event_id, body.account_id))

    return ctx.write(body, run)


@router.post("/member-events/{member_event_id}/check-ins", response_model=AttendeeRead,
             summary="Record attendance (points for attending; once)")
def check_in(member_event_id: str, body: AttendeeIn,
             ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> AttendeeRead:
        _owned(session, ctx, member_event_id)
        return AttendeeRead.model_validate(member_events.check_in(
            session, ctx.tenant_id, member_event_id, body.account_id, actor=ctx.actor))

    return ctx.write(body, run)


@router.get("/member-events/{member_event_id}/attendees", response_model=AttendeeList,
            summary="Invited, registered and attending accounts")
def list_attendees(member_event_id: str, ctx: Ctx = Depends(need("read"))) -> AttendeeList:
    with ctx.read() as session:
        _owned(session, ctx, member_event_id)
        rows = member_events.attendees(session, ctx.tenant_id, member_event_id)
        return AttendeeList(items=[AttendeeRead.model_validate(r) for r in rows])


@router.post("/member-events/{member_event_id}/sponsors", status_code=201,
             response_model=SponsorRead, summary="Record a sponsor and its contribution")
def add_sponsor(member_event_id: str, body: SponsorCreate,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> SponsorRead:
        _owned(session, ctx, member_event_id)
        return SponsorRead.model_validate(member_events.add_sponsor(
            session, ctx.tenant_id, member_event_id, **body.model_dump()))

    return ctx.write(body, run, 201)


# --- choose-your-reward menus ----------------------------------------------------------------


@router.post("/programs/{program_id}/reward-menus", status_code=201, response_model=MenuRead,
             summary="Define a choose-your-reward menu (picks per period)")
def create_menu(program_id: str, body: MenuCreate,
                ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> MenuRead:
        return MenuRead.model_validate(menus.create_menu(session, ctx.tenant_id, program_id,
                                                         **body.model_dump()))

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/reward-menus", response_model=MenuList,
            summary="List a program's reward menus")
def list_menus(program_id: str, ctx: Ctx = Depends(need("read"))) -> MenuList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return MenuList(items=[MenuRead.model_validate(m) for m in
                               menus.list_menus(session, ctx.tenant_id, program_id)])


@router.post("/reward-menus/{menu_id}/picks", status_code=201, response_model=PickRead,
             summary="Pick a reward of the menu for this period (redeems it)")
def pick(menu_id: str, body: PickIn, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> PickRead:
        ctx.check_program(menus.get_menu(session, ctx.tenant_id, menu_id).program_id)
        return PickRead.model_validate(menus.pick(session, ctx.tenant_id, menu_id,
                                                  body.account_id, body.reward_id,
                                                  user_id=body.user_id, actor=ctx.actor))

    return ctx.write(body, run, 201)


@router.get("/reward-menus/{menu_id}/accounts/{account_id}", response_model=MenuStateRead,
            summary="An account's picks this period and the picks it has left")
def menu_state(menu_id: str, account_id: str,
               ctx: Ctx = Depends(need("read"))) -> MenuStateRead:
    with ctx.read() as session:
        ctx.check_program(menus.get_menu(session, ctx.tenant_id, menu_id).program_id)
        state = menus.state_of(session, ctx.tenant_id, menu_id, account_id)
        return MenuStateRead(menu=MenuRead.model_validate(state.menu), period=state.period,
                             picks_left=state.picks_left,
                             picked=[PickRead.model_validate(p) for p in state.picked],
                             resets_at=state.resets_at)
