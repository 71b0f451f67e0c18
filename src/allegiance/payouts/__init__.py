"""Payouts: store credit or withdrawable money units, payout batches (CSV / JSON files for
finance), paid or failed items (failures return the money to the wallet)."""

from allegiance.payouts.domain import to_csv
from allegiance.payouts.models import PayoutBatch, PayoutItem, PayoutPolicy
from allegiance.payouts.service import (
    create_batch,
    get_batch,
    items,
    mark_failed,
    mark_paid,
    policy_of,
    rows,
    set_policy,
)
from allegiance.payouts.statements import StatementLine, statement, totals

__all__ = ["PayoutBatch", "PayoutItem", "PayoutPolicy", "StatementLine", "create_batch",
           "get_batch", "items", "mark_failed", "mark_paid", "policy_of", "rows", "set_policy",
           "statement", "to_csv", "totals"]
