"""Net Promoter Score by program and segment, from survey answers.

Convention: a survey answer is an **activity event** whose ``activity_type`` is ``nps`` (or the
type given) with an attribute ``score`` from 0 to 10. Each member counts once, with her latest
answer in the period. Promoters answer 9–10, passives 7–8, detractors 0–6;
NPS = 100 × (promoters − detractors) ÷ answers. The segment is the account's ``segment``
attribute (``(none)`` when it has none).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from allegiance import events, members
from allegiance.analytics.common import Period, Report, program_of, segment_of

SURVEY_TYPE = "nps"
SCORE = "score"
NO_SEGMENT = "(none)"
COLUMNS = ["segment", "answers", "promoters", "passives", "detractors", "nps"]


def answers(session: Session, tenant_id: str, program_id: str, span: Period,
            survey_type: str = SURVEY_TYPE) -> pl.DataFrame:
    """(member, segment, score) — the latest valid answer of each member in the period."""
    event, account = events.Event, members.Account
    rows = session.execute(
        select(event.account_id, event.occurred_at, event.attributes[SCORE], account.attributes)
        .join(account, and_(account.tenant_id == event.tenant_id,
                            account.id == event.account_id))
        .where(event.tenant_id == tenant_id, event.program_id == program_id,
               event.kind == "activity", event.activity_type == survey_type,
               event.status == "processed", event.occurred_at >= span.start,
               event.occurred_at < span.end)
    ).all()
    frame = pl.DataFrame(
        [(r[0], r[1], _score(r[2]), segment_of(r[3]) or NO_SEGMENT) for r in rows],
        schema={"member": pl.Utf8, "at": pl.Datetime("us", "UTC"), "score": pl.Float64,
                "segment": pl.Utf8}, orient="row")
    return (
        frame.filter(pl.col("score").is_not_null())
        .sort("member", "at").group_by("member").agg(pl.all().last())
    )


def _score(value: Any) -> float | None:
    """A whole number from 0 to 10 (JSON number), else None: the answer is ignored."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= 10 and float(value).is_integer() else None


def score(frame: pl.DataFrame) -> dict[str, Any]:
    n = frame.height
    promoters = frame.filter(pl.col("score") >= 9).height
    detractors = frame.filter(pl.col("score") <= 6).height
    return {"answers": n, "promoters": promoters, "passives": n - promoters - detractors,
            "detractors": detractors,
            "nps": None if n == 0 else 100.0 * (promoters - detractors) / n}


def nps(session: Session, tenant_id: str, program_id: str, span: Period,
        survey_type: str = SURVEY_TYPE) -> Report:
    program_of(session, tenant_id, program_id)
    frame = answers(session, tenant_id, program_id, span, survey_type)
    rows = [{"segment": segment, **score(frame.filter(pl.col("segment") == segment))}
            for segment in sorted(frame["segment"].unique().to_list())]
    return Report("nps", program_id, "Net Promoter Score", COLUMNS, rows, score(frame),
                  {"from": span.start, "to": span.end, "survey_type": survey_type})
