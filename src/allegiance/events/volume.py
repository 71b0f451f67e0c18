"""Net purchase volume per account over a period (amount minus what was returned), for the
features that pay on volume: rebates, co-marketing accruals, discount schedules."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allegiance.events.models import Event, EventLine


def purchase_volume(
    session: Session,
    tenant_id: str,
    program_id: str,
    start: datetime | None,
    end: datetime | None,
    *,
    account_ids: Collection[str] | None = None,
    categories: Collection[str] | None = None,
) -> dict[str, int]:
    """{account_id: net amount} of processed purchases that occurred in ``[start, end)``;
    with ``categories``, only the lines of those categories count."""
    where = [Event.tenant_id == tenant_id, Event.program_id == program_id,
             Event.kind == "purchase", Event.status == "processed",
             Event.account_id.is_not(None)]
    if start is not None:
        where.append(Event.occurred_at >= start)
    if end is not None:
        where.append(Event.occurred_at < end)
    if account_ids is not None:
        where.append(Event.account_id.in_(list(account_ids)))
    if categories is None:
        query = select(Event.account_id,
                       func.sum(Event.amount - Event.returned_amount)).where(*where)
    else:
        query = (select(Event.account_id,
                        func.sum(EventLine.amount - EventLine.returned_amount))
                 .join(EventLine, (EventLine.tenant_id == Event.tenant_id)
                       & (EventLine.event_id == Event.id))
                 .where(*where, EventLine.category.in_(list(categories))))
    rows = session.execute(query.group_by(Event.account_id))
    return {str(account): int(total or 0) for account, total in rows}
