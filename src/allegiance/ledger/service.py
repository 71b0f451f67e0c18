"""Ledger use cases: post entries (one or a batch), holds, reversals, transfers.

Every function takes the caller's session and only flushes; the caller commits. A function
that raises leaves partial writes in the session, so the caller must roll back (the unit of
work does). Batched posting with ``partial=True`` isolates each failing entry in a savepoint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import tenants
from allegiance.kit import clock, sequences
from allegiance.kit.db import is_unique_violation
from allegiance.kit.errors import AllegianceError, Conflict
from allegiance.kit.ids import new_id
from allegiance.ledger import aging_writes
from allegiance.ledger import repository as repo
from allegiance.ledger.aging import day_number
from allegiance.ledger.domain import (
    EntryProblem,
    ExpiryPolicy,
    Line,
    Side,
    check_lines,
    consume_lots,
    lot_expiry,
)
from allegiance.ledger.errors import (
    AccountNotFound,
    EntryNotFound,
    InsufficientFunds,
    InvalidEntry,
)
from allegiance.ledger.models import LedgerAccount

JOURNAL_SEQUENCE = "journal"
# From this many entries in one call, ``ledger_aging`` is kept set-based (aging_writes) rather
# than by the trigger on ``posting``, posting by posting.
AGING_SET_BASED_FROM = 32


@dataclass(frozen=True)
class EntryRequest:
    program_id: str
    kind: str
    lines: Sequence[Line]
    source_type: str | None = None
    source_id: str | None = None
    entry_key: str | None = None
    memo: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    actor: str | None = None
    effective_at: datetime | None = None
    reverses_entry_id: str | None = None
    hold_id: str | None = None
    # Credits to wallets take the expiry dates of the lots the entry's debits consumed
    # (transfers and merges keep the points' age).
    inherit_lots: bool = False
    # The wallet debit consumes exactly this lot (expiry of one lot).
    expire_lot_id: str | None = None
    # Accounts whose overdraw check is skipped (hold resolution moves pending to posted).
    unchecked: frozenset[str] = frozenset()
    # The new entry's id, when the caller needs it before posting (a redemption row written
    # first, so that the tenant's journal lock is taken last); a new id when None.
    entry_id: str | None = None


@dataclass(frozen=True)
class EntryResult:
    entry_id: str
    seq: int
    created: bool


# ---------------------------------------------------------------------------------------------
# Accounts


def wallet(
    session: Session, tenant_id: str, program_id: str, unit_id: str, owner_type: str, owner_id: str
) -> LedgerAccount:
    """The member wallet of ``owner`` (an account or a user) for a unit; created on first use."""
    if owner_type not in ("account", "user"):
        raise InvalidEntry("wallets belong to an account or a user", field="owner_type")
    # An existing wallet was checked against its unit when it was made (one query, not two).
    found = repo.find_account(session, tenant_id, program_id, unit_id, owner_type, owner_id,
                              "wallet")
    if found is not None:
        return found
    unit = tenants.get_unit(session, tenant_id, unit_id)
    if unit.program_id != program_id:
        raise InvalidEntry("the unit belongs to another program", field="unit_id")
    return _get_or_create(
        session, tenant_id, program_id, unit_id, owner_type, owner_id, "wallet",
        normal="credit", no_overdraw=True, floor=unit.negative_floor,
    )


def receivable(
    session: Session, tenant_id: str, program_id: str, unit_id: str, owner_type: str, owner_id: str
) -> LedgerAccount:
    """What a member owes in a unit (a reversal after the points were spent)."""
    return _get_or_create(
        session, tenant_id, program_id, unit_id, owner_type, owner_id, "receivable",
        normal="debit", no_overdraw=False, floor=0,
    )


def program_account(
    session: Session,
    tenant_id: str,
    program_id: str,
    unit_id: str,
    purpose: str,
    *,
    normal: str = "debit",
    no_overdraw: bool = False,
) -> LedgerAccount:
    """A program-side account (issued, redeemed, expired, adjustments, budget:…, stock:…)."""
    found = repo.find_account(session, tenant_id, program_id, unit_id, "program", program_id,
                              purpose)
    if found is not None:
        return found
    tenants.get_unit(session, tenant_id, unit_id)
    return _get_or_create(
        session, tenant_id, program_id, unit_id, "program", program_id, purpose,
        normal=normal, no_overdraw=no_overdraw, floor=0,
    )


def _get_or_create(
    session: Session,
    tenant_id: str,
    program_id: str,
    unit_id: str,
    owner_type: str,
    owner_id: str,
    purpose: str,
    *,
    normal: str,
    no_overdraw: bool,
    floor: int,
) -> LedgerAccount:
    found = repo.find_account(session, tenant_id, program_id, unit_id, owner_type, owner_id, purpose)
    if found is not None:
        return found
    prefix = "wal" if owner_type != "program" else "lac"
    account = LedgerAccount(
        tenant_id=tenant_id, id=new_id(prefix), program_id=program_id, unit_id=unit_id,
        owner_type=owner_type, owner_id=owner_id, purpose=purpose, normal=normal,
        no_overdraw=no_overdraw, floor=floor, debits_posted=0, credits_posted=0,
        debits_pending=0, credits_pending=0, last_activity_at=None, created_at=clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(account)
            session.flush()
    except IntegrityError as exc:  # created concurrently: use the winner's row
        if not is_unique_violation(exc):
            raise
        found = repo.find_account(
            session, tenant_id, program_id, unit_id, owner_type, owner_id, purpose
        )
        if found is None:
            raise
        return found
    return account


def get_account(session: Session, tenant_id: str, account_id: str) -> LedgerAccount:
    account = repo.get_account(session, tenant_id, account_id)
    if account is None:
        raise AccountNotFound(f"ledger account {account_id} not found", field="account_id")
    return account


# ---------------------------------------------------------------------------------------------
# Posting


def post_entries(
    session: Session, tenant_id: str, requests: Sequence[EntryRequest], *, partial: bool = False
) -> list[EntryResult | AllegianceError]:
    """Post many entries with set-based writes (one counter update per touched account).

    ``partial=False``: the first problem raises. ``partial=True``: problems are returned in
    place of results and every other entry is written (bulk import: bad rows never block good
    ones).
    """
    if not requests:
        return []
    if not partial:
        return list(_write(session, tenant_id, requests))
    try:
        with session.begin_nested():
            return list(_write(session, tenant_id, requests))
    except AllegianceError:
        pass
    out: list[EntryResult | AllegianceError] = []
    for request in requests:
        try:
            with session.begin_nested():
                out.append(_write(session, tenant_id, [request])[0])
        except AllegianceError as exc:
            out.append(exc)
    return out


def _write(
    session: Session, tenant_id: str, requests: Sequence[EntryRequest]
) -> list[EntryResult]:
    for index, request in enumerate(requests):
        try:
            check_lines(request.lines)
        except EntryProblem as exc:
            field_name = exc.field if len(requests) == 1 else f"entries[{index}].{exc.field}"
            raise InvalidEntry(str(exc), field=field_name) from exc

    # Idempotent replays by business key (also within the batch).
    keys = [r.entry_key for r in requests if r.entry_key]
    existing = repo.existing_entries_by_key(session, tenant_id, keys) if keys else {}
    results: list[EntryResult | None] = [None] * len(requests)
    fresh: list[int] = []
    seen: dict[str, int] = {}
    for index, request in enumerate(requests):
        key = request.entry_key
        if key and key in existing:
            entry_id, seq = existing[key]
            results[index] = EntryResult(entry_id, seq, created=False)
        elif key and key in seen:
            results[index] = None  # filled after the first one is written
        else:
            if key:
                seen[key] = index
            fresh.append(index)

    if fresh:
        infos = repo.account_infos(
            session, tenant_id, {line.account_id for i in fresh for line in requests[i].lines}
        )
        for i in fresh:
            _check_accounts(requests[i], infos)
        now = clock.now()
        deltas: dict[str, repo.Delta] = defaultdict(repo.Delta)
        unchecked: set[str] = set()
        for i in fresh:
            unchecked |= requests[i].unchecked
            for line in requests[i].lines:
                delta = deltas[line.account_id]
                if line.side is Side.DEBIT:
                    delta.debits_posted += line.amount
                else:
                    delta.credits_posted += line.amount
        activity = now if any(requests[i].kind != "expiry" for i in fresh) else None
        failed = repo.apply_deltas(
            session, tenant_id, infos, deltas, activity, unchecked=frozenset(unchecked)
        )
        if failed is not None:
            raise InsufficientFunds(
                f"ledger account {failed} has not enough available balance",
                field="postings", account_id=failed,
            )
        written = record(session, tenant_id, [requests[i] for i in fresh], infos, now)
        for i, result in zip(fresh, written, strict=True):
            results[i] = result
    for index, request in enumerate(requests):
        if results[index] is None and request.entry_key:
            first = results[seen[request.entry_key]]
            assert first is not None
            results[index] = EntryResult(first.entry_id, first.seq, created=False)
    return [r for r in results if r is not None]


def _check_accounts(request: EntryRequest, infos: dict[str, repo.AccountInfo]) -> None:
    for index, line in enumerate(request.lines):
        info = infos.get(line.account_id)
        if info is None:
            raise AccountNotFound(
                f"ledger account {line.account_id} not found",
                field=f"postings[{index}].account_id",
            )
        if info.program_id != request.program_id:
            raise InvalidEntry(
                "every posting must be in the entry's program",
                field=f"postings[{index}].account_id",
            )
        if info.unit_id != line.unit_id:
            raise InvalidEntry(
                f"account {line.account_id} holds unit {info.unit_id}, not {line.unit_id}",
                field=f"postings[{index}].unit_id",
            )


def record(  # entries already checked and counted; used by holds and expiry
    session: Session,
    tenant_id: str,
    requests: Sequence[EntryRequest],
    infos: dict[str, repo.AccountInfo],
    now: datetime,
) -> list[EntryResult]:
    first_seq, previous_hash = sequences.reserve(session, tenant_id, JOURNAL_SEQUENCE, len(requests))
    entry_rows: list[tuple[Any, ...]] = []  # in repo.ENTRY_COLUMNS order
    posting_rows: list[tuple[Any, ...]] = []  # in repo.POSTING_COLUMNS order
    results: list[EntryResult] = []
    stamps: dict[datetime, tuple[str, int]] = {}  # isoformat and day of the shared times
    chain = sequences.chain
    # A large batch keeps ledger_aging itself, set-based (aging_writes), with the trigger
    # paused for its postings: the member-wallet postings summed per (wallet, day).
    set_based = len(requests) >= AGING_SET_BASED_FROM
    wallets = {a for a, info in infos.items() if info.is_member_wallet} if set_based else set()
    moves: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for offset, request in enumerate(requests):
        seq = first_seq + offset
        entry_id = request.entry_id or new_id("txn")
        effective_at = request.effective_at or now
        if effective_at > now:
            raise InvalidEntry("entries cannot be dated in the future", field="effective_at")
        known = stamps.get(effective_at)
        if known is None:
            known = stamps[effective_at] = (effective_at.isoformat(), day_number(effective_at))
        stamp, day = known
        parts = []
        for line_no, line in enumerate(request.lines, start=1):
            side = line.side.value
            parts.append(f"{line_no}:{line.account_id}:{line.unit_id}:{side}:{line.amount}")
            posting_rows.append((tenant_id, entry_id, line_no, line.account_id, line.unit_id,
                                 side, line.amount, line.reverses_line_no))
            if line.account_id in wallets:
                moves[(line.account_id, day)][side == "D"] += line.amount
        # The entry's canonical content; balances.verify_chain recomputes it.
        previous_hash = chain(previous_hash, (
            f"{seq}|{entry_id}|{request.program_id}|{request.kind}|{stamp}|"
            f"{request.entry_key or ''}|{request.reverses_entry_id or ''}|{';'.join(parts)}"
        ))
        entry_rows.append((
            tenant_id, entry_id, seq, request.program_id, request.kind, request.source_type,
            request.source_id, request.entry_key, request.reverses_entry_id, request.hold_id,
            request.memo, request.meta, request.actor, effective_at, now, previous_hash,
        ))
        results.append(EntryResult(entry_id, seq, created=True))
    try:
        if set_based:
            aging_writes.pause(session, tenant_id, True)
        repo.write_journal(
            session, tenant_id, JOURNAL_SEQUENCE, previous_hash, entry_rows, posting_rows
        )
    except IntegrityError as exc:
        if is_unique_violation(exc):
            # A concurrent writer took the business key first; the caller retries and replays.
            raise Conflict("an entry with this key is being written", field="entry_key") from exc
        raise
    if set_based:
        aging_writes.pause(session, tenant_id, False)
        aging_writes.add(session, tenant_id, moves)
    track_lots(session, tenant_id, requests, results, infos, now)
    return results


def track_lots(
    session: Session,
    tenant_id: str,
    requests: Sequence[EntryRequest],
    results: Sequence[EntryResult],
    infos: dict[str, repo.AccountInfo],
    now: datetime,
) -> None:
    """Open a lot for each wallet credit of a unit that expires; consume lots on debits."""
    wallet_units = {
        infos[line.account_id].unit_id
        for r in requests for line in r.lines if infos[line.account_id].is_member_wallet
    }
    if not wallet_units:
        return
    policies = tenants.unit_expiry(session, tenant_id, sorted(wallet_units))
    if not any(policy.creates_lots for policy, _ in policies.values()):
        return  # no unit here expires: no lot to open or consume
    lot_rows: list[dict[str, Any]] = []
    use_rows: list[dict[str, Any]] = []
    for request, result in zip(requests, results, strict=True):
        consumed: list[tuple[datetime, datetime | None, int]] = []
        effective_at = request.effective_at or now
        for line_no, line in enumerate(request.lines, start=1):
            info = infos[line.account_id]
            policy, time_zone = policies.get(info.unit_id, (ExpiryPolicy(), "UTC"))
            if not info.is_member_wallet or not policy.creates_lots or line.side is Side.CREDIT:
                continue
            taken = _consume(session, tenant_id, request, line, info)
            dates = repo.lot_dates(session, tenant_id, [lot_id for lot_id, _ in taken])
            for lot_id, amount in taken:
                use_rows.append({"tenant_id": tenant_id, "entry_id": result.entry_id,
                                 "line_no": line_no, "lot_id": lot_id, "amount": amount})
                earned_at, expires_at = dates[lot_id]
                consumed.append((earned_at, expires_at, amount))
        for line_no, line in enumerate(request.lines, start=1):
            info = infos[line.account_id]
            policy, time_zone = policies.get(info.unit_id, (ExpiryPolicy(), "UTC"))
            if not info.is_member_wallet or not policy.creates_lots or line.side is Side.DEBIT:
                continue
            left = line.amount
            if request.reverses_entry_id and line.reverses_line_no:
                left -= _restore(session, tenant_id, request, line, now)
            if request.inherit_lots:
                while left > 0 and consumed:
                    earned_at, expires_at, amount = consumed.pop(0)
                    use = min(amount, left)
                    if amount > use:
                        consumed.insert(0, (earned_at, expires_at, amount - use))
                    lot_rows.append(_lot_row(tenant_id, result.entry_id, line_no, line.account_id,
                                             use, earned_at, expires_at))
                    left -= use
            if left > 0:
                lot_rows.append(_lot_row(
                    tenant_id, result.entry_id, line_no, line.account_id, left, effective_at,
                    lot_expiry(policy, effective_at, time_zone),
                ))
    repo.insert_lots(session, lot_rows)
    repo.insert_lot_uses(session, use_rows)


def _lot_row(
    tenant_id: str, entry_id: str, line_no: int, account_id: str, amount: int,
    earned_at: datetime, expires_at: datetime | None,
) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "id": new_id("lot"), "account_id": account_id,
            "entry_id": entry_id, "line_no": line_no, "amount": amount, "remaining": amount,
            "earned_at": earned_at, "expires_at": expires_at}


def _consume(
    session: Session, tenant_id: str, request: EntryRequest, line: Line, info: repo.AccountInfo
) -> list[tuple[str, int]]:
    lots = repo.open_lots(session, tenant_id, line.account_id)
    preferred: str | None = request.expire_lot_id
    if preferred is None and request.reverses_entry_id and line.reverses_line_no:
        preferred = repo.lot_of_line(
            session, tenant_id, request.reverses_entry_id, line.reverses_line_no
        )
    taken: list[tuple[str, int]] = []
    left = line.amount
    if preferred is not None:
        for lot in lots:
            if lot.lot_id == preferred and lot.remaining > 0:
                use = min(lot.remaining, left)
                taken.append((lot.lot_id, use))
                left -= use
        lots = [lot for lot in lots if lot.lot_id != preferred]
    if left > 0 and request.expire_lot_id is None:
        taken.extend(consume_lots(lots, left))
    for lot_id, amount in taken:
        if not repo.take_from_lot(session, tenant_id, lot_id, amount):
            raise InsufficientFunds("a lot was consumed concurrently", field="postings")
    return taken


def _restore(
    session: Session, tenant_id: str, request: EntryRequest, line: Line, now: datetime
) -> int:
    """Give a reversed debit back to the lots it consumed, where they have not expired."""
    assert request.reverses_entry_id is not None and line.reverses_line_no is not None
    uses = repo.lot_uses_of_line(
        session, tenant_id, request.reverses_entry_id, line.reverses_line_no
    )
    dates = repo.lot_dates(session, tenant_id, [lot_id for lot_id, _ in uses])
    restored = 0
    for lot_id, used in uses:
        want = min(used, line.amount - restored)
        if want <= 0:
            break
        expires_at = dates[lot_id][1]
        if expires_at is not None and expires_at <= now:
            continue
        if repo.restore_lot(session, tenant_id, lot_id, want):
            restored += want
    return restored


def get_entry(session: Session, tenant_id: str, entry_id: str) -> Any:
    entry = repo.get_entry(session, tenant_id, entry_id)
    if entry is None:
        raise EntryNotFound(f"entry {entry_id} not found", field="entry_id")
    return entry
