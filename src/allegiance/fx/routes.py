"""HTTP routes of exchange rates: write rates (JSON or a CSV file's text) and list them.
Writing needs ``admin``; reading needs ``read``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.fx import service
from allegiance.fx.domain import RateRow
from allegiance.fx.schemas import RatePage, RateRead, RatesCsvIn, RatesIn, RatesWritten
from allegiance.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from allegiance.kit.web import Ctx, need

router = APIRouter(tags=["fx"])


def _audit(session: Session, ctx: Ctx, base: str, count: int, source: str) -> None:
    audit.record(session, ctx.tenant_id, actor=ctx.actor, action="fx_rates.set",
                 object_type="fx_rate", object_id=base, after={"rates": count, "source": source})


@router.post("/fx-rates", response_model=RatesWritten,
             summary="Create or replace exchange rates (per currency and date)")
def set_rates(body: RatesIn, ctx: Ctx = Depends(need("admin"))) -> Response:
    rows = [RateRow(r.currency, r.date, r.rate) for r in body.rates]

    def run(session: Session) -> RatesWritten:
        written = service.set_rates(session, ctx.tenant_id, body.base_currency, rows,
                                    source="api")
        _audit(session, ctx, body.base_currency, len(written), "api")
        return RatesWritten(written=len(written))

    return ctx.write(body, run, 200)


@router.post("/fx-rates/import", response_model=RatesWritten,
             summary="Import exchange rates from a CSV file's text")
def import_rates(body: RatesCsvIn, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> RatesWritten:
        written = service.import_csv(session, ctx.tenant_id, body.base_currency, body.csv)
        _audit(session, ctx, body.base_currency, len(written), "file")
        return RatesWritten(written=len(written))

    return ctx.write(body, run, 200)


@router.get("/fx-rates", response_model=RatePage, summary="List exchange rates")
def list_rates(
    currency: str | None = Query(None, pattern="^[A-Z]{3}$"),
    base_currency: str | None = Query(None, pattern="^[A-Z]{3}$"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=200),
    ctx: Ctx = Depends(need("read")),
) -> RatePage:
    with ctx.read() as session:
        rows = service.list_rates(session, ctx.tenant_id, currency=currency,
                                  base_currency=base_currency, limit=limit,
                                  after=decode_cursor(cursor))
        items = [RateRead.model_validate(r) for r in rows[:limit]]
    return RatePage(items=items,
                    next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)
