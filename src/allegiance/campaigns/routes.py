"""HTTP routes of segments (refresh, members, CSV export) and campaigns (create, preview,
start, stop). Definitions and state changes: admin; reads: read."""

from __future__ import annotations

import csv
import io
from datetime import date

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import audit, members, tenants
from allegiance.campaigns import rfm, segments, service
from allegiance.campaigns.schemas import (
    CampaignCreate,
    CampaignList,
    CampaignRead,
    PreviewRead,
    ProjectionRead,
    Refreshed,
    RfmRead,
    RfmScoreRead,
    RfmSettings,
    RuleShareRead,
    SegmentCreate,
    SegmentList,
    SegmentMemberPage,
    SegmentMemberRead,
    SegmentRead,
)
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["campaigns"])
EXPORT_PAGE = 5000


@router.post("/programs/{program_id}/segments", status_code=201, response_model=SegmentRead,
             summary="Define a rule-based segment")
def create_segment(program_id: str, body: SegmentCreate,
                   ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> SegmentRead:
        row = segments.create_segment(session, ctx.tenant_id, program_id, code=body.code,
                                      name=body.name, condition=body.condition)
        out = SegmentRead.model_validate(row)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="segment.create",
                     object_type="segment", object_id=row.id, after=out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/segments", response_model=SegmentList,
            summary="List a program's segments")
def list_segments(program_id: str, ctx: Ctx = Depends(need("read"))) -> SegmentList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return SegmentList(items=[SegmentRead.model_validate(s) for s in
                                  segments.list_segments(session, ctx.tenant_id, program_id)])


@router.post("/segments/{segment_id}/refresh", response_model=Refreshed,
             summary="Re-evaluate a segment now (set-based)")
def refresh(segment_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> Refreshed:
        ctx.check_program(segments.get_segment(session, ctx.tenant_id, segment_id).program_id)
        entered, left = segments.refresh_segment(session, ctx.tenant_id, segment_id)
        row = segments.get_segment(session, ctx.tenant_id, segment_id)
        return Refreshed(segment=SegmentRead.model_validate(row), entered=entered, left=left)

    return ctx.write(None, run)


@router.get("/segments/{segment_id}/members", response_model=SegmentMemberPage,
            summary="Members of a segment, by account id")
def segment_members(segment_id: str, limit: int = Query(100, ge=1, le=MAX_LIMIT),
                    cursor: str | None = Query(None, max_length=200),
                    ctx: Ctx = Depends(need("read"))) -> SegmentMemberPage:
    with ctx.read() as session:
        ctx.check_program(segments.get_segment(session, ctx.tenant_id, segment_id).program_id)
        rows = segments.members_of(session, ctx.tenant_id, segment_id, limit=limit,
                                   after=decode_cursor(cursor))
        items = [SegmentMemberRead.model_validate(r) for r in rows[:limit]]
    return SegmentMemberPage(items=items, next_cursor=encode_cursor(items[-1].account_id)
                             if len(rows) > limit else None)


@router.get("/segments/{segment_id}/export", response_class=Response,
            summary="Export a segment's members as CSV (account_id, since)")
def export(segment_id: str, ctx: Ctx = Depends(need("read"))) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["account_id", "since"])
    with ctx.read() as session:
        ctx.check_program(segments.get_segment(session, ctx.tenant_id, segment_id).program_id)
        after: str | None = None
        while True:
            rows = segments.members_of(session, ctx.tenant_id, segment_id, limit=EXPORT_PAGE,
                                       after=after)
            for row in rows[:EXPORT_PAGE]:
                writer.writerow([row.account_id, row.since.isoformat()])
            if len(rows) <= EXPORT_PAGE:
                break
            after = rows[EXPORT_PAGE - 1].account_id
    return Response(out.getvalue(), media_type="text/csv")


@router.post("/programs/{program_id}/campaigns", status_code=201, response_model=CampaignRead,
             summary="Define a campaign (a draft until started)")
def create_campaign(program_id: str, body: CampaignCreate,
                    ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> CampaignRead:
        row = service.create_campaign(session, ctx.tenant_id, program_id, code=body.code,
                                      name=body.name, rule=body.rule,
                                      starts_at=body.starts_at, ends_at=body.ends_at,
                                      segments=body.segments, budget=body.budget)
        out = CampaignRead.model_validate(row)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="campaign.create",
                     object_type="campaign", object_id=row.id,
                     after=out.model_dump(mode="json"))
        return out

    return ctx.write(body, run, 201)


@router.get("/programs/{program_id}/campaigns", response_model=CampaignList,
            summary="List a program's campaigns")
def list_campaigns(program_id: str, ctx: Ctx = Depends(need("read"))) -> CampaignList:
    ctx.check_program(program_id)
    with ctx.read() as session:
        return CampaignList(items=[CampaignRead.model_validate(c) for c in
                                   service.list_campaigns(session, ctx.tenant_id, program_id)])


@router.get("/campaigns/{campaign_id}/preview", response_model=PreviewRead,
            summary="Dry run: the rule a campaign adds, the members it targets now and what "
                    "it would have awarded them over their recent events")
def preview(campaign_id: str, days: int = Query(
        service.LOOKBACK_DAYS, ge=1, le=service.MAX_LOOKBACK_DAYS,
        description="look-back window of the projection, in days up to now"),
        ctx: Ctx = Depends(need("read"))) -> PreviewRead:
    with ctx.read() as session:
        ctx.check_program(service.get_campaign(session, ctx.tenant_id, campaign_id).program_id)
        result = service.preview(session, ctx.tenant_id, campaign_id, days=days)
        p = result.projection
        return PreviewRead(campaign=CampaignRead.model_validate(result.campaign),
                           rule=result.rule, members=result.members,
                           by_segment=result.by_segment,
                           projection=ProjectionRead(
                               days=p.days, start=p.start, end=p.end, events=p.events,
                               members=p.members, points=p.points, cost=p.cost,
                               base_currency=p.base_currency, budget=p.budget,
                               budget_unit=p.budget_unit, over_budget=p.over_budget,
                               by_rule=[RuleShareRead(rule=r.rule, unit=r.unit,
                                                      points=r.points, cost=r.cost,
                                                      events=r.events) for r in p.by_rule]))


def _transition(ctx: Ctx, campaign_id: str, action: str) -> Response:
    def run(session: Session) -> CampaignRead:
        ctx.check_program(service.get_campaign(session, ctx.tenant_id, campaign_id).program_id)
        fn = service.start if action == "start" else service.stop
        return CampaignRead.model_validate(fn(session, ctx.tenant_id, campaign_id,
                                              actor=ctx.actor))

    return ctx.write(None, run)


@router.post("/campaigns/{campaign_id}/start", response_model=CampaignRead,
             summary="Start a draft campaign (funds its budget)")
def start(campaign_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    return _transition(ctx, campaign_id, "start")


@router.post("/campaigns/{campaign_id}/stop", response_model=CampaignRead,
             summary="Stop a campaign (unspent budget goes back to issued)")
def stop(campaign_id: str, ctx: Ctx = Depends(need("admin"))) -> Response:
    return _transition(ctx, campaign_id, "stop")


def _rfm_read(session: Session, tenant_id: str, program_id: str) -> RfmRead:
    model = rfm.ensure_model(session, tenant_id, program_id)
    return RfmRead(program_id=program_id, window_days=model.window_days,
                   computed_at=model.computed_at, scored=model.scored,
                   breakpoints=model.breakpoints,
                   distribution=rfm.distribution(session, tenant_id, program_id))


@router.put("/programs/{program_id}/rfm", response_model=RfmRead,
            summary="Set the RFM window and score every buyer now (set-based)")
def set_rfm(program_id: str, body: RfmSettings,
            ctx: Ctx = Depends(need("admin"))) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> RfmRead:
        rfm.set_model(session, ctx.tenant_id, program_id, body.window_days)
        rfm.refresh(session, ctx.tenant_id, program_id)
        out = _rfm_read(session, ctx.tenant_id, program_id)
        audit.record(session, ctx.tenant_id, actor=ctx.actor, action="rfm.set",
                     object_type="program", object_id=program_id,
                     after={"window_days": body.window_days})
        return out

    return ctx.write(body, run)


@router.get("/programs/{program_id}/rfm", response_model=RfmRead,
            summary="The program's RFM window, breakpoints and score distribution")
def get_rfm(program_id: str, ctx: Ctx = Depends(need("read"))) -> RfmRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        tenants.get_program(session, ctx.tenant_id, program_id)
        model = rfm.get_model(session, ctx.tenant_id, program_id)
        if model is None:
            return RfmRead(program_id=program_id, window_days=rfm.DEFAULT_WINDOW_DAYS,
                           computed_at=None, scored=0, breakpoints={}, distribution={})
        return _rfm_read(session, ctx.tenant_id, program_id)


@router.get("/programs/{program_id}/accounts/{account_id}/rfm", response_model=RfmScoreRead,
            summary="An account's RFM scores (0: no purchase in the window)")
def account_rfm(program_id: str, account_id: str,
                ctx: Ctx = Depends(need("read"))) -> RfmScoreRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        tenants.get_program(session, ctx.tenant_id, program_id)
        members.get_account(session, ctx.tenant_id, account_id)
        row = rfm.score_of(session, ctx.tenant_id, program_id, account_id)
        if row is None:
            return RfmScoreRead(account_id=account_id, recency=0, frequency=0, monetary=0,
                                cell="000", last_purchase_day=None, purchases=0, spend=0)
        return RfmScoreRead(
            account_id=account_id, recency=row.recency, frequency=row.frequency,
            monetary=row.monetary, cell=f"{row.recency}{row.frequency}{row.monetary}",
            last_purchase_day=date.fromordinal(row.last_day).isoformat(),
            purchases=row.purchases, spend=row.spend)
