"""Purchases, activities and returns: ingestion, matching (with an unmatched queue), earning
through the rules in force at the event's time, exact reversal on return, and dry-run."""

from allegiance.events.bulk import Stats as BulkStats
from allegiance.events.bulk import ingest_many
from allegiance.events.domain import LineIn
from allegiance.events.dryrun import DryRun, dry_run
from allegiance.events.inputs import EventData, Outcome, WalletBalance, get_event, outcome
from allegiance.events.models import Event, EventAward, EventLine, MemberCounter, MemberCounterKey
from allegiance.events.returns import ReturnData, ReturnLine, record_return
from allegiance.events.service import ingest, match, prepare
from allegiance.events.volume import purchase_volume

__all__ = [
    "BulkStats", "DryRun", "Event", "EventAward", "EventData", "EventLine", "LineIn", "MemberCounter",
    "MemberCounterKey", "Outcome", "ReturnData", "ReturnLine", "WalletBalance", "dry_run", "get_event", "ingest",
    "ingest_many",
    "match", "outcome", "prepare", "purchase_volume", "record_return",
]
