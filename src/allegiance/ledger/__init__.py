"""The double-entry ledger. Knows nothing of rules, tiers or rewards: entries carry a
``(source_type, source_id)`` that only their writers interpret."""

from allegiance.ledger.aging import day_number as aging_day
from allegiance.ledger.aging import recompute as recompute_aging
from allegiance.ledger.aging import stored as stored_aging
from allegiance.ledger.balances import Mismatch, balance_of, reconcile, verify_chain
from allegiance.ledger.domain import Balance, Line, Side
from allegiance.ledger.expiry import ExpiryReport, expire_due_lots, expire_inactive, run_expiry
from allegiance.ledger.holds import (
    HoldRequest,
    create_hold,
    expire_holds,
    get_hold,
    post_hold,
    release_due_holds,
    void_hold,
)
from allegiance.ledger.models import (
    Adjustment,
    Aging,
    Hold,
    JournalEntry,
    LedgerAccount,
    Lot,
    Posting,
)
from allegiance.ledger.movements import (
    decide_adjustment,
    get_adjustment,
    request_adjustment,
    reverse_entry,
    transfer,
)
from allegiance.ledger.notices import notify_expiring
from allegiance.ledger.service import (
    EntryRequest,
    EntryResult,
    get_account,
    get_entry,
    post_entries,
    program_account,
    receivable,
    wallet,
)
from allegiance.ledger.single import post_entry, post_entry_final, post_entry_sent, refusal
from allegiance.ledger.writer import BatchWriter

__all__ = [
    "Adjustment",
    "Aging",
    "Balance",
    "BatchWriter",
    "EntryRequest",
    "EntryResult",
    "ExpiryReport",
    "Hold",
    "HoldRequest",
    "JournalEntry",
    "LedgerAccount",
    "Line",
    "Lot",
    "Mismatch",
    "Posting",
    "Side",
    "aging_day",
    "balance_of",
    "create_hold",
    "decide_adjustment",
    "expire_due_lots",
    "expire_holds",
    "expire_inactive",
    "get_account",
    "get_adjustment",
    "get_entry",
    "get_hold",
    "notify_expiring",
    "post_entries",
    "post_entry",
    "post_entry_final",
    "post_entry_sent",
    "post_hold",
    "program_account",
    "receivable",
    "recompute_aging",
    "reconcile",
    "refusal",
    "release_due_holds",
    "request_adjustment",
    "reverse_entry",
    "run_expiry",
    "stored_aging",
    "transfer",
    "verify_chain",
    "void_hold",
    "wallet",
]
