"""One entry at a time: :func:`post_entry` and its two-step forms for the hot API writes.

On PostgreSQL one entry is posted by the database function ``ledger_post_one`` (migration
0013) in one statement: key check, account checks, counters in id order, journal number, hash
chain, rows. :func:`post_entry_sent` sends it and reads the answer later (in a pipeline, the
statements sent after it share its round trip); :func:`post_entry_final` calls
``ledger_post_final`` (migration 0032), which raises every refusal in the database, so the
unit of work may send its COMMIT before reading the answer (``kit.placement``). Elsewhere
(SQLite) an entry goes through :func:`service.post_entries`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance.kit import clock
from allegiance.kit.db import is_unique_violation
from allegiance.kit.errors import AllegianceError, Conflict
from allegiance.kit.ids import new_id
from allegiance.ledger import repository as repo
from allegiance.ledger.domain import EntryProblem, Line, check_lines
from allegiance.ledger.errors import AccountNotFound, InsufficientFunds, InvalidEntry
from allegiance.ledger.service import (
    JOURNAL_SEQUENCE,
    EntryRequest,
    EntryResult,
    post_entries,
    track_lots,
)


def post_entry(session: Session, tenant_id: str, request: EntryRequest) -> EntryResult:
    """Post one balanced entry. A repeated ``entry_key`` returns the first entry (created=False)."""
    return post_entry_sent(session, tenant_id, request)()


def post_entry_sent(session: Session, tenant_id: str,
                    request: EntryRequest) -> Callable[[], EntryResult]:
    """:func:`post_entry` in two steps: this sends the posting, the function it returns reads
    the outcome (and raises what :func:`post_entry` raises; until then the transaction must
    not commit). On PostgreSQL inside a pipeline (``kit.db.pipelined``) the posting then
    shares the round trip of the statements sent after it, up to the next answer read: the
    tenant's journal number it locks is held for less. Elsewhere it is posted at once."""
    if session.get_bind().dialect.name == "postgresql":
        return _send_one_postgres(session, tenant_id, request, final=False)
    result = post_entries(session, tenant_id, [request])[0]
    if isinstance(result, AllegianceError):
        raise result
    return lambda: result


def post_entry_final(session: Session, tenant_id: str,
                     request: EntryRequest) -> Callable[[], EntryResult]:
    """:func:`post_entry_sent` for an entry whose refusals must all come from the database:
    on PostgreSQL the posting raises SQLSTATE ``kit.placement.REFUSED`` with the reason
    (``exists`` included: the entry is always new) and :func:`refusal` turns it into the
    error :func:`post_entry` raises; a unit of work may then COMMIT before reading the answer.
    Only for entries that track no lots (no member wallet of a unit that expires): an entry
    that would is refused with a serialization failure (40001, run the transaction again).
    Elsewhere it is :func:`post_entry_sent`."""
    if session.get_bind().dialect.name == "postgresql":
        return _send_one_postgres(session, tenant_id, request, final=True)
    result = post_entry_sent(session, tenant_id, request)()
    if not result.created:  # as the database refuses it on PostgreSQL
        raise _exists(request)
    return lambda: result


def refusal(request: EntryRequest, reason: str, detail: str) -> AllegianceError | None:
    """The error of a ``ledger_post_final`` refusal of ``request`` (None: not the ledger's)."""
    if reason == "exists":
        return _exists(request)
    return _refused(request.lines, reason, detail)


def _exists(request: EntryRequest) -> Conflict:
    return Conflict(f"an entry with key {request.entry_key} exists already", field="entry_key")


def _send_one_postgres(session: Session, tenant_id: str, request: EntryRequest, *,
                       final: bool) -> Callable[[], EntryResult]:
    """The same entry as :func:`post_entries` writes, by ``ledger_post_one`` (``final``:
    ``ledger_post_final``) in one round trip; lots, where a wallet's unit expires, follow
    when the answer is read (never with ``final``)."""
    try:
        check_lines(request.lines)
    except EntryProblem as exc:
        raise InvalidEntry(str(exc), field=exc.field) from exc
    now = clock.now()
    effective_at = request.effective_at or now
    if effective_at > now:
        raise InvalidEntry("entries cannot be dated in the future", field="effective_at")
    lines = request.lines
    entry_id = request.entry_id or new_id("txn")
    answer = repo.send_one_postgres(session, (
        tenant_id, entry_id, request.program_id, request.kind, request.source_type,
        request.source_id, request.entry_key, request.reverses_entry_id, request.hold_id,
        request.memo, json.dumps(dict(request.meta)), request.actor, effective_at,
        effective_at.isoformat(), now, [line.account_id for line in lines],
        [line.unit_id for line in lines], [line.side.value for line in lines],
        [line.amount for line in lines], [line.reverses_line_no for line in lines],
        sorted(request.unchecked), JOURNAL_SEQUENCE,
    ), final=final)

    if final:
        def posted() -> EntryResult:
            found_id, seq = answer()
            return EntryResult(str(found_id), int(seq), created=True)

        return posted

    def outcome() -> EntryResult:
        try:
            status, found_id, seq, detail, lots = answer()
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise Conflict("an entry with this key is being written",
                               field="entry_key") from exc
            raise
        if status == "exists":
            return EntryResult(str(found_id), int(seq), created=False)
        error = _refused(lines, status, detail)
        if error is not None:
            raise error
        result = EntryResult(entry_id, int(seq), created=True)
        if lots:
            infos = repo.account_infos(session, tenant_id, {line.account_id for line in lines})
            track_lots(session, tenant_id, [request], [result], infos, now)
        return result

    return outcome


def _refused(lines: Sequence[Line], status: str, detail: Any) -> AllegianceError | None:
    """The error of a ``ledger_post_one`` answer other than ok / exists (None: ok)."""
    if status == "missing":
        index = int(detail)
        return AccountNotFound(f"ledger account {lines[index].account_id} not found",
                               field=f"postings[{index}].account_id")
    if status == "program":
        return InvalidEntry("every posting must be in the entry's program",
                            field=f"postings[{int(detail)}].account_id")
    if status == "unit":
        index_text, _, unit_id = str(detail).partition(":")
        index = int(index_text)
        return InvalidEntry(
            f"account {lines[index].account_id} holds unit {unit_id}, not {lines[index].unit_id}",
            field=f"postings[{index}].unit_id",
        )
    if status == "overdrawn":
        return InsufficientFunds(f"ledger account {detail} has not enough available balance",
                                 field="postings", account_id=str(detail))
    return None
