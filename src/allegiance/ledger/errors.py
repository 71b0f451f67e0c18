"""Ledger errors, each with a stable code."""

from __future__ import annotations

from allegiance.kit.errors import AllegianceError, Conflict, NotFound, ValidationFailed


class InvalidEntry(ValidationFailed):
    code = "invalid_entry"


class InsufficientFunds(AllegianceError):
    """The debit would take an account below what it may go to."""

    code = "insufficient_funds"
    status = 422


class AccountNotFound(NotFound):
    code = "ledger_account_not_found"


class EntryNotFound(NotFound):
    code = "entry_not_found"


class HoldNotFound(NotFound):
    code = "hold_not_found"


class HoldAlreadyResolved(Conflict):
    code = "hold_already_resolved"


class HoldExpired(Conflict):
    code = "hold_expired"


class ReversalTooLarge(ValidationFailed):
    code = "reversal_exceeds_original"


class AdjustmentNotFound(NotFound):
    code = "adjustment_not_found"


class AdjustmentNotPending(Conflict):
    code = "adjustment_not_pending"


class SameApprover(AllegianceError):
    """The second approver of an adjustment must be someone else than its requester."""

    code = "second_approver_required"
    status = 403


class HoldKeyInFlight(Conflict):
    """Another request is creating a hold with the same key; retry to get it."""

    code = "hold_key_in_flight"
