"""Errors of payouts."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class BatchNotFound(NotFound):
    code = "payout_batch_not_found"


class ItemNotFound(NotFound):
    code = "payout_item_not_found"


class NotWithdrawable(Conflict):
    code = "not_withdrawable"


class InvalidPayout(ValidationFailed):
    code = "invalid_payout"


class DuplicateBatch(Conflict):
    code = "duplicate_payout_batch"


class ItemSettled(Conflict):
    code = "payout_item_settled"
