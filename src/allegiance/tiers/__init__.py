"""Tier ladders: qualification on a metric over a period, placements, history, recalculation.

The surface other features use:

* ``add_credit(session, tenant_id, program_id, account_id, metric, amount, at, order_amount=)``
  for every earning event (metric ``points_earned``, ``spend`` in minor units or ``count``);
* ``multiplier(session, tenant_id, program_id, account_id) -> Decimal`` for earning rules;
* ``status(session, tenant_id, program_id, account_id) -> list[TierState]``.
"""

from allegiance.tiers.domain import (
    NO_LEVEL,
    Ladder,
    Level,
    PeriodSpec,
    direct_placement_rank,
    from_dict,
    month_index,
    qualify,
    qualify_rank,
)
from allegiance.tiers.models import TierChange, TierLadder, TierMetric, TierStatus
from allegiance.tiers.service import (
    Move,
    Recalculation,
    TierState,
    add_credit,
    certify,
    create_ladder,
    get_ladder,
    history,
    ladder_of,
    list_ladders,
    multiplier,
    place,
    recalculate,
    report_metric,
    status,
    update_ladder,
)

__all__ = [
    # for events.bulk, which checks that no tier can move before writing credits in bulk
    "NO_LEVEL",
    "Ladder",
    "Level",
    "Move",
    "PeriodSpec",
    "Recalculation",
    "TierChange",
    "TierLadder",
    "TierMetric",
    "TierState",
    "TierStatus",
    "add_credit",
    "certify",
    "create_ladder",
    "direct_placement_rank",
    "from_dict",
    "get_ladder",
    "history",
    "ladder_of",
    "list_ladders",
    "month_index",
    "multiplier",
    "place",
    "qualify",
    "qualify_rank",
    "recalculate",
    "report_metric",
    "status",
    "update_ladder",
]
