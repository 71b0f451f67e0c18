"""Portal: engagement. Member events (register, cancel, see the account's registrations)
and the courses the account completed; challenges with the progress of the current period,
streaks and completions; badges; leaderboards with where the account stands, and the
account's opt-out (an opted-out account is left out of every board of the program)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance import engagement, events
from allegiance.engagement import leaderboards, member_events
from allegiance.kit.errors import Forbidden, NotFound, ValidationFailed
from allegiance.web.forms import act, url
from allegiance.web.portal_base import account_of, may_act, need_act
from allegiance.web.security import Member, member, member_form, reading
from allegiance.web.templating import render

router = APIRouter()
COURSES_SHOWN = 50
METRIC_NAMES = {"points_earned": "Points earned", "sales": "Sales", "purchases": "Purchases",
                "activities": "Activities", "challenges": "Challenges completed"}
PERIOD_NAMES = {"week": "This week", "month": "This month", "quarter": "This quarter",
                "year": "This year", "all": "All time"}


@dataclass
class EventRow:
    event: engagement.MemberEvent
    taken: int
    mine: engagement.Attendee | None


@router.get("/events")
def event_page(request: Request, account: str | None = Query(None, max_length=40),
               ctx: Member = Depends(member)) -> Response:
    account_id = account_of(ctx, account)
    rows: list[EventRow] = []
    courses: list[events.Event] = []
    if ctx.program is not None:
        with reading(ctx.db) as s:
            listed = member_events.list_events(s, ctx.tenant_id, ctx.program.id)
            ids = [e.id for e in listed]
            taken = {str(event_id): int(count) for event_id, count in s.execute(select(
                engagement.Attendee.member_event_id, func.count()).where(
                engagement.Attendee.tenant_id == ctx.tenant_id,
                engagement.Attendee.member_event_id.in_(ids or [""]),
                engagement.Attendee.status.in_(member_events.TAKING_SEATS))
                .group_by(engagement.Attendee.member_event_id))}
            mine = {a.member_event_id: a for a in s.scalars(select(engagement.Attendee).where(
                engagement.Attendee.tenant_id == ctx.tenant_id,
                engagement.Attendee.member_event_id.in_(ids or [""]),
                engagement.Attendee.account_id == account_id))}
            for e in listed:
                if e.invitation_only and e.id not in mine:
                    continue  # by invitation: only the invited see it
                rows.append(EventRow(e, int(taken.get(e.id, 0)), mine.get(e.id)))
            courses = list(s.scalars(select(events.Event).where(
                events.Event.tenant_id == ctx.tenant_id,
                events.Event.program_id == ctx.program.id,
                events.Event.account_id == account_id, events.Event.kind == "activity",
                events.Event.activity_type.like("%course%"))
                .order_by(events.Event.occurred_at.desc()).limit(COURSES_SHOWN)))
    return render(request, "portal/events.html", {
        "ctx": ctx, "account_id": account_id, "rows": rows, "courses": courses,
        "may_act": may_act(ctx, account_id)})


def _event(s: Session, ctx: Member, member_event_id: str) -> engagement.MemberEvent:
    row = member_events.get_event(s, ctx.tenant_id, member_event_id)
    if all(p.id != row.program_id for p in ctx.programs):
        raise NotFound(f"member event {member_event_id} not found", field="member_event_id")
    return row


@router.post("/events/{member_event_id}/{action}")
def event_action(member_event_id: str, action: str, account: str = Form("", max_length=40),
                 ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = account_of(ctx, account or None)
    with reading(ctx.db) as s:
        event = _event(s, ctx, member_event_id)
        invited = s.get(engagement.Attendee, (ctx.tenant_id, event.id, account_id)) is not None
    if event.invitation_only and not invited:  # by invitation: the others never see it
        raise NotFound(f"member event {member_event_id} not found", field="member_event_id")

    def run(s: Session) -> engagement.Attendee:
        need_act(ctx, account_id)
        if action == "register":
            return member_events.register(s, ctx.tenant_id, event.id, account_id)
        if action == "cancel":
            return member_events.cancel_registration(s, ctx.tenant_id, event.id, account_id)
        raise ValidationFailed("unknown action", field="action")

    def said(row: engagement.Attendee) -> str:
        return "You are registered." if row.status == "registered" \
            else "Your registration is cancelled."

    return act(ctx, run, said, url("/portal/events", account=account_id))


@router.get("/challenges")
def challenge_page(request: Request, account: str | None = Query(None, max_length=40),
                   metric: str = Query("points_earned", max_length=20),
                   period: str = Query("month", max_length=10),
                   ctx: Member = Depends(member)) -> Response:
    account_id = account_of(ctx, account)
    metric = metric if metric in METRIC_NAMES else "points_earned"
    period = period if period in PERIOD_NAMES else "month"
    progress: list[engagement.Progress] = []
    badges: list[engagement.HeldBadge] = []
    all_badges: list[engagement.Badge] = []
    board: engagement.Board | None = None
    opted_out = False
    if ctx.program is not None:
        with reading(ctx.db) as s:
            progress = engagement.progress_of(s, ctx.tenant_id, ctx.program.id, account_id)
            badges = engagement.badges_of(s, ctx.tenant_id, ctx.program.id, account_id)
            all_badges = engagement.list_badges(s, ctx.tenant_id, ctx.program.id)
            board = engagement.leaderboard(s, ctx.tenant_id, ctx.program.id, metric=metric,
                                           period=period, account_id=account_id)
            opted_out = leaderboards.is_opted_out(s, ctx.tenant_id, ctx.program.id,
                                                  account_id)
    held = {b.code for b in badges}
    return render(request, "portal/challenges.html", {
        "ctx": ctx, "account_id": account_id, "progress": progress, "badges": badges,
        "unearned": [b for b in all_badges if b.code not in held], "board": board,
        "metric": metric, "period": period, "metrics": METRIC_NAMES, "periods": PERIOD_NAMES,
        "opted_out": opted_out, "may_opt": _may_opt(ctx, account_id)})


def _may_opt(ctx: Member, account_id: str) -> bool:
    return ctx.user.role in ("owner", "manager") and ctx.sees(account_id)


@router.post("/leaderboards/opt-out")
def opt_out(account: str = Form("", max_length=40), opted_out: str = Form("", max_length=5),
            ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = account_of(ctx, account or None)
    program = ctx.program
    hide = opted_out == "1"

    def run(s: Session) -> bool:
        if program is None:
            raise ValidationFailed("you are in no program", field="program_id")
        if not _may_opt(ctx, account_id):
            raise Forbidden("only an owner or a manager may change this", field="account")
        return engagement.set_opt_out(s, ctx.tenant_id, program.id, account_id, hide)

    return act(ctx, run, lambda hidden: "Your account is hidden from the leaderboards."
               if hidden else "Your account shows on the leaderboards.",
               url("/portal/challenges", account=account_id))
