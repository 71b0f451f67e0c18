"""HTTP routes of the ledger: wallets and balances, entries, points, holds, reversals,
transfers, adjustments and reconciliation.

Scopes: reads need ``read``; postings, holds, transfers and adjustment requests need
``integration`` (admin keys pass too); approving adjustments and reconciling need ``admin``.
Another tenant's ids read as not found (every lookup filters by the caller's tenant).

Writes that may find their object already there (``entry_key``, ``hold_key``, an existing
wallet) answer 201 when they created it and 200 with the first object otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit, ledger, tenants
from allegiance.kit import clock
from allegiance.kit.db import is_unique_violation
from allegiance.kit.errors import AllegianceError, Conflict, ValidationFailed
from allegiance.kit.pagination import MAX_LIMIT
from allegiance.kit.web import Ctx, need
from allegiance.ledger import queries
from allegiance.ledger.domain import hold_deadline
from allegiance.ledger.errors import AccountNotFound, InvalidEntry, SameApprover
from allegiance.ledger.schemas import (
    AdjustmentCreate,
    AdjustmentDecision,
    AdjustmentPage,
    AdjustmentRead,
    BalanceRead,
    CountersRead,
    EntryCreate,
    EntryRead,
    EntryWritten,
    HoldCreate,
    HoldPost,
    HoldRead,
    LedgerAccountPage,
    LedgerAccountRead,
    MismatchRead,
    PointsCreate,
    PointsWritten,
    ReconcileRead,
    ReversalCreate,
    TransferCreate,
    WalletCreate,
    WalletEntryPage,
    WalletEntryRead,
)

router = APIRouter(tags=["ledger"])

LimitQuery = Query(50, ge=1, le=MAX_LIMIT, description="page size")
CursorQuery = Query(None, max_length=200, description="next_cursor of the previous page")
_SIDES = {"debit": ledger.Side.DEBIT, "credit": ledger.Side.CREDIT}


# ---------------------------------------------------------------------------------------------
# Helpers


class _Existing(Exception):
    """Raised inside a write that found its object already there: roll back, answer 200."""

    def __init__(self, result: BaseModel) -> None:
        super().__init__("existing")
        self.result = result


def _write_maybe_created(
    ctx: Ctx, body: BaseModel | None, fn: Callable[[Session], tuple[BaseModel, bool]]
) -> Response:
    """201 with the new object, or 200 with the one an earlier request created."""

    def first(session: Session) -> BaseModel:
        result, created = fn(session)
        if not created:
            raise _Existing(result)
        return result

    for attempt in (1, 2):
        try:
            return ctx.write(body, first, 201)
        except _Existing as existing:
            return ctx.write(body, _const(existing.result), 200)
        except (Conflict, IntegrityError) as exc:
            # A concurrent request wrote the same business key (entry_key, hold_key) first:
            # run again once, which finds and returns its object.
            lost_race = (
                is_unique_violation(exc) if isinstance(exc, IntegrityError)
                else exc.field in ("entry_key", "hold_key")
            )
            if attempt == 2 or not lost_race:
                raise
    raise AssertionError("unreachable")


def _const(result: BaseModel) -> Callable[[Session], BaseModel]:
    return lambda _session: result


def _account_read(
    session: Session, tenant_id: str, account: ledger.LedgerAccount,
    codes: dict[str, str] | None = None,
) -> LedgerAccountRead:
    if codes is None:
        codes = queries.unit_codes(session, tenant_id, [account.unit_id])
    return LedgerAccountRead.of(account, codes.get(account.unit_id, ""))


def _entry_read(session: Session, tenant_id: str, entry_id: str) -> EntryRead:
    entry = ledger.get_entry(session, tenant_id, entry_id)
    return EntryRead.of(entry, queries.postings_of(session, tenant_id, entry_id))


def _written(session: Session, tenant_id: str, result: ledger.EntryResult) -> EntryWritten:
    read = _entry_read(session, tenant_id, result.entry_id)
    return EntryWritten(**read.model_dump(), created=result.created)


def _account(session: Session, ctx: Ctx, account_id: str, field: str) -> ledger.LedgerAccount:
    """A ledger account of the caller's tenant (404 otherwise) in a program the key may use."""
    try:
        account = ledger.get_account(session, ctx.tenant_id, account_id)
    except AccountNotFound as exc:
        raise AccountNotFound(exc.message, field=field) from exc
    ctx.check_program(account.program_id)
    return account


def _member_wallet(session: Session, ctx: Ctx, wallet_id: str, field: str) -> ledger.LedgerAccount:
    account = _account(session, ctx, wallet_id, field)
    if account.owner_type == "program" or account.purpose != "wallet":
        raise InvalidEntry(f"{wallet_id} is not a member wallet", field=field)
    return account


def _account_page(
    session: Session, tenant_id: str, rows: list[ledger.LedgerAccount], limit: int
) -> LedgerAccountPage:
    items, next_cursor = queries.next_page(rows, limit, lambda a: a.id)
    codes = queries.unit_codes(session, tenant_id, [a.unit_id for a in items])
    return LedgerAccountPage(items=[_account_read(session, tenant_id, a, codes) for a in items],
                             next_cursor=next_cursor)


def _redeemed(session: Session, tenant_id: str, program_id: str, unit_id: str) -> str:
    return ledger.program_account(
        session, tenant_id, program_id, unit_id, "redeemed", normal="credit"
    ).id


# ---------------------------------------------------------------------------------------------
# Accounts and wallets


@router.get("/programs/{program_id}/accounts", response_model=LedgerAccountPage,
            summary="The program-side ledger accounts of a program")
def list_program_accounts(
    program_id: str,
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
    ctx: Ctx = Depends(need("read")),
) -> LedgerAccountPage:
    ctx.check_program(program_id)
    after = queries.page_after(cursor, limit)
    with ctx.read() as session:
        tenants.get_program(session, ctx.tenant_id, program_id)
        rows = queries.list_accounts(session, ctx.tenant_id, members=False,
                                     program_id=program_id, after_id=after, limit=limit)
        return _account_page(session, ctx.tenant_id, rows, limit)


@router.get("/wallets", response_model=LedgerAccountPage,
            summary="Member wallets (and receivables) with balances")
def list_wallets(
    owner_type: str | None = Query(None, pattern="^(account|user)$"),
    owner_id: str | None = Query(None, max_length=40),
    program_id: str | None = Query(None, max_length=40),
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
    ctx: Ctx = Depends(need("read")),
) -> LedgerAccountPage:
    if program_id is not None:
        ctx.check_program(program_id)
    after = queries.page_after(cursor, limit)
    with ctx.read() as session:
        rows = queries.list_accounts(
            session, ctx.tenant_id, members=True, program_id=program_id, owner_type=owner_type,
            owner_id=owner_id, program_ids=ctx.principal.program_ids, after_id=after,
            limit=limit,
        )
        return _account_page(session, ctx.tenant_id, rows, limit)


@router.post("/wallets", status_code=201, response_model=LedgerAccountRead,
             responses={200: {"model": LedgerAccountRead, "description": "already existed"}},
             summary="Get or create the wallet of an account or user")
def create_wallet(body: WalletCreate, ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(body.program_id)

    def run(session: Session) -> tuple[BaseModel, bool]:
        tenants.get_program(session, ctx.tenant_id, body.program_id)
        try:
            if body.unit_id is not None:
                unit = tenants.get_unit(session, ctx.tenant_id, body.unit_id)
            else:
                assert body.unit_code is not None
                unit = tenants.unit_by_code(session, ctx.tenant_id, body.program_id,
                                            body.unit_code)
        except AllegianceError as exc:
            exc.field = "unit_id" if body.unit_id is not None else "unit_code"
            raise
        found = queries.find_account(session, ctx.tenant_id, body.program_id, unit.id,
                                     body.owner_type, body.owner_id, "wallet")
        account = ledger.wallet(session, ctx.tenant_id, body.program_id, unit.id,
                                body.owner_type, body.owner_id)
        return _account_read(session, ctx.tenant_id, account), found is None

    return _write_maybe_created(ctx, body, run)


@router.get("/wallets/{wallet_id}", response_model=LedgerAccountRead,
            summary="One ledger account with its balance")
def get_wallet(wallet_id: str, ctx: Ctx = Depends(need("read"))) -> LedgerAccountRead:
    with ctx.read() as session:  # one round trip: the account with its unit's code
        found = queries.account_with_unit_code(session, ctx.tenant_id, wallet_id)
        if found is None:
            raise AccountNotFound(f"ledger account {wallet_id} not found", field="wallet_id")
        account, code = found
        ctx.check_program(account.program_id)
        return LedgerAccountRead.of(account, code)


@router.get("/wallets/{wallet_id}/entries", response_model=WalletEntryPage,
            summary="The postings of a wallet, newest first")
def wallet_entries(
    wallet_id: str,
    kind: str | None = Query(None, max_length=40),
    since: AwareDatetime | None = Query(None, alias="from",
                                        description="effective at or after (inclusive)"),
    until: AwareDatetime | None = Query(None, alias="to",
                                        description="effective before (exclusive)"),
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
    ctx: Ctx = Depends(need("read")),
) -> WalletEntryPage:
    raw = queries.page_after(cursor, limit)
    after: tuple[int, int] | None = None
    if raw is not None:
        seq, _, line_no = raw.partition(":")
        if not (seq.isdigit() and line_no.isdigit()):
            raise ValidationFailed("cursor is not valid", field="cursor")
        after = (int(seq), int(line_no))
    with ctx.read() as session:
        account = _account(session, ctx, wallet_id, "wallet_id")
        rows = queries.wallet_history(session, ctx.tenant_id, account.id, kind=kind,
                                      since=since, until=until, after=after, limit=limit)
        items, next_cursor = queries.next_page(rows, limit, lambda r: f"{r['seq']}:{r['line_no']}")
        return WalletEntryPage(items=[WalletEntryRead(**r) for r in items],
                               next_cursor=next_cursor)


# ---------------------------------------------------------------------------------------------
# Entries and points


@router.post("/entries", status_code=201, response_model=EntryWritten,
             responses={200: {"model": EntryWritten, "description": "entry_key already used"}},
             summary="Post a balanced journal entry")
def create_entry(body: EntryCreate, ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(body.program_id)

    def run(session: Session) -> tuple[BaseModel, bool]:
        tenants.get_program(session, ctx.tenant_id, body.program_id)
        result = ledger.post_entry(session, ctx.tenant_id, ledger.EntryRequest(
            program_id=body.program_id, kind=body.kind,
            lines=tuple(ledger.Line(p.account_id, p.unit_id, _SIDES[p.side], p.amount)
                        for p in body.postings),
            source_type=body.source_type, source_id=body.source_id, entry_key=body.entry_key,
            memo=body.memo, actor=ctx.actor, effective_at=body.effective_at,
        ))
        return _written(session, ctx.tenant_id, result), result.created

    return _write_maybe_created(ctx, body, run)


@router.get("/entries/{entry_id}", response_model=EntryRead, summary="One entry with postings")
def get_entry(entry_id: str, ctx: Ctx = Depends(need("read"))) -> EntryRead:
    with ctx.read() as session:
        read = _entry_read(session, ctx.tenant_id, entry_id)
        ctx.check_program(read.program_id)
        return read


@router.post("/programs/{program_id}/points", status_code=201, response_model=PointsWritten,
             responses={200: {"model": PointsWritten, "description": "entry_key already used"}},
             summary="Earn (issued → wallet) or redeem (wallet → redeemed) points")
def post_points(
    program_id: str, body: PointsCreate, ctx: Ctx = Depends(need("integration"))
) -> Response:
    ctx.check_program(program_id)

    def run(session: Session) -> tuple[BaseModel, bool]:
        tenants.get_program(session, ctx.tenant_id, program_id)
        wallet = _member_wallet(session, ctx, body.wallet_id, "wallet_id")
        if wallet.program_id != program_id:
            raise InvalidEntry("the wallet belongs to another program", field="wallet_id")
        unit_id = wallet.unit_id
        if body.kind == "earn":
            issued = ledger.program_account(session, ctx.tenant_id, program_id, unit_id,
                                            "issued")
            lines = (ledger.Line(issued.id, unit_id, ledger.Side.DEBIT, body.amount),
                     ledger.Line(wallet.id, unit_id, ledger.Side.CREDIT, body.amount))
        else:
            redeemed = _redeemed(session, ctx.tenant_id, program_id, unit_id)
            lines = (ledger.Line(wallet.id, unit_id, ledger.Side.DEBIT, body.amount),
                     ledger.Line(redeemed, unit_id, ledger.Side.CREDIT, body.amount))
        result = ledger.post_entry(session, ctx.tenant_id, ledger.EntryRequest(
            program_id=program_id, kind=body.kind, lines=lines, entry_key=body.entry_key,
            memo=body.memo, actor=ctx.actor,
        ))
        out = PointsWritten(entry=_written(session, ctx.tenant_id, result), wallet_id=wallet.id,
                            balance=BalanceRead.of(ledger.balance_of(
                                ledger.get_account(session, ctx.tenant_id, wallet.id))))
        return out, result.created

    return _write_maybe_created(ctx, body, run)


@router.post("/entries/{entry_id}/reverse", status_code=201, response_model=EntryWritten,
             responses={200: {"model": EntryWritten, "description": "entry_key already used"}},
             summary="Reverse an entry, fully or some lines")
def reverse_entry(
    entry_id: str,
    body: ReversalCreate | None = Body(None),
    ctx: Ctx = Depends(need("integration")),
) -> Response:
    request = body or ReversalCreate()

    def run(session: Session) -> tuple[BaseModel, bool]:
        original = ledger.get_entry(session, ctx.tenant_id, entry_id)
        ctx.check_program(original.program_id)
        if request.entry_key:
            existing = queries.entry_by_key(session, ctx.tenant_id, request.entry_key)
            if existing is not None:
                if existing.reverses_entry_id != entry_id:
                    raise Conflict("entry_key was used for another entry", field="entry_key")
                replay = ledger.EntryResult(existing.id, existing.seq, created=False)
                return _written(session, ctx.tenant_id, replay), False
        lines = ({int(k): v for k, v in request.lines.items()}
                 if request.lines is not None else None)
        result = ledger.reverse_entry(session, ctx.tenant_id, entry_id, lines=lines,
                                      entry_key=request.entry_key, memo=request.memo,
                                      actor=ctx.actor)
        return _written(session, ctx.tenant_id, result), result.created

    return _write_maybe_created(ctx, body, run)


@router.post("/transfers", status_code=201, response_model=EntryWritten,
             responses={200: {"model": EntryWritten, "description": "entry_key already used"}},
             summary="Move points between two wallets of the same unit")
def create_transfer(body: TransferCreate, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> tuple[BaseModel, bool]:
        _member_wallet(session, ctx, body.from_wallet_id, "from_wallet_id")
        _member_wallet(session, ctx, body.to_wallet_id, "to_wallet_id")
        result = ledger.transfer(
            session, ctx.tenant_id, from_wallet_id=body.from_wallet_id,
            to_wallet_id=body.to_wallet_id, amount=body.amount, entry_key=body.entry_key,
            memo=body.memo, actor=ctx.actor,
        )
        return _written(session, ctx.tenant_id, result), result.created

    return _write_maybe_created(ctx, body, run)


# ---------------------------------------------------------------------------------------------
# Holds


@router.post("/holds", status_code=201, response_model=HoldRead,
             responses={200: {"model": HoldRead, "description": "hold_key already used"}},
             summary="Reserve an amount (two-phase: post or void later)")
def create_hold(body: HoldCreate, ctx: Ctx = Depends(need("integration"))) -> Response:
    ctx.check_program(body.program_id)

    def run(session: Session) -> tuple[BaseModel, bool]:
        tenants.get_program(session, ctx.tenant_id, body.program_id)
        if body.wallet_id is not None:
            wallet = _member_wallet(session, ctx, body.wallet_id, "wallet_id")
            if wallet.program_id != body.program_id:
                raise InvalidEntry("the wallet belongs to another program", field="wallet_id")
            debit, unit_id, kind = wallet.id, wallet.unit_id, "redeem"
            credit = _redeemed(session, ctx.tenant_id, body.program_id, unit_id)
        else:
            assert body.debit_account_id is not None and body.credit_account_id is not None
            source = _account(session, ctx, body.debit_account_id, "debit_account_id")
            debit, credit, unit_id, kind = source.id, body.credit_account_id, source.unit_id, "hold"
        hold, created = ledger.create_hold(session, ctx.tenant_id, ledger.HoldRequest(
            program_id=body.program_id, debit_account_id=debit, credit_account_id=credit,
            unit_id=unit_id, amount=body.amount, kind=kind, hold_key=body.hold_key,
            memo=body.memo, expires_at=hold_deadline(clock.now(), body.expires_in_seconds),
        ))
        return HoldRead.model_validate(hold), created

    return _write_maybe_created(ctx, body, run)


@router.get("/holds/{hold_id}", response_model=HoldRead, summary="One hold")
def get_hold(hold_id: str, ctx: Ctx = Depends(need("read"))) -> HoldRead:
    with ctx.read() as session:
        hold = ledger.get_hold(session, ctx.tenant_id, hold_id)
        ctx.check_program(hold.program_id)
        return HoldRead.model_validate(hold)


@router.post("/holds/{hold_id}/post", response_model=HoldRead,
             summary="Post a pending hold, fully or partly (the rest is released)")
def post_hold(
    hold_id: str, body: HoldPost | None = Body(None), ctx: Ctx = Depends(need("integration"))
) -> Response:
    request = body or HoldPost()

    def run(session: Session) -> HoldRead:
        hold = ledger.get_hold(session, ctx.tenant_id, hold_id)
        ctx.check_program(hold.program_id)
        return HoldRead.model_validate(ledger.post_hold(
            session, ctx.tenant_id, hold_id, request.amount, actor=ctx.actor, memo=request.memo
        ))

    return ctx.write(body, run, 200)


@router.post("/holds/{hold_id}/void", response_model=HoldRead,
             summary="Void a pending hold (releases the reservation)")
def void_hold(hold_id: str, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> HoldRead:
        hold = ledger.get_hold(session, ctx.tenant_id, hold_id)
        ctx.check_program(hold.program_id)
        return HoldRead.model_validate(
            ledger.void_hold(session, ctx.tenant_id, hold_id, actor=ctx.actor)
        )

    return ctx.write(None, run, 200)


# ---------------------------------------------------------------------------------------------
# Adjustments
#
# Separation of duties rests on the API key, not on names in the body: ``requested_by`` and
# ``decided_by`` are recorded as labels ("api_key:key_…/alice") but the second approver must
# use another API key than the requester. A key that could name any requester could otherwise
# approve its own adjustments.


def _identity(ctx: Ctx, label: str | None) -> str:
    return f"{ctx.actor}/{label}" if label else ctx.actor


def _audit_adjustment(session: Session, ctx: Ctx, action: str, out: AdjustmentRead) -> None:
    audit.record(session, ctx.tenant_id, actor=ctx.actor, action=action,
                 object_type="adjustment", object_id=out.id, before=None,
                 after=out.model_dump(mode="json"))


@router.post("/adjustments", status_code=201, response_model=AdjustmentRead,
             summary="Request a manual credit (amount > 0) or debit (amount < 0) of a wallet")
def create_adjustment(body: AdjustmentCreate, ctx: Ctx = Depends(need("integration"))) -> Response:
    def run(session: Session) -> AdjustmentRead:
        _member_wallet(session, ctx, body.wallet_id, "wallet_id")
        out = AdjustmentRead.model_validate(ledger.request_adjustment(
            session, ctx.tenant_id, wallet_id=body.wallet_id, amount=body.amount,
            reason=body.reason, requested_by=_identity(ctx, body.requested_by),
        ))
        _audit_adjustment(session, ctx, "adjustment.request", out)
        return out

    return ctx.write(body, run, 201)


@router.get("/adjustments", response_model=AdjustmentPage, summary="List adjustments")
def list_adjustments(
    status: str | None = Query(None, pattern="^(pending_approval|posted|rejected)$"),
    program_id: str | None = Query(None, max_length=40),
    limit: int = LimitQuery,
    cursor: str | None = CursorQuery,
    ctx: Ctx = Depends(need("read")),
) -> AdjustmentPage:
    if program_id is not None:
        ctx.check_program(program_id)
    after = queries.page_after(cursor, limit)
    with ctx.read() as session:
        rows = queries.list_adjustments(
            session, ctx.tenant_id, status=status, program_id=program_id,
            program_ids=ctx.principal.program_ids, after_id=after, limit=limit,
        )
        items, next_cursor = queries.next_page(rows, limit, lambda a: a.id)
        return AdjustmentPage(items=[AdjustmentRead.model_validate(a) for a in items],
                              next_cursor=next_cursor)


@router.get("/adjustments/{adjustment_id}", response_model=AdjustmentRead,
            summary="One adjustment")
def get_adjustment(adjustment_id: str, ctx: Ctx = Depends(need("read"))) -> AdjustmentRead:
    with ctx.read() as session:
        adjustment = ledger.get_adjustment(session, ctx.tenant_id, adjustment_id)
        ctx.check_program(adjustment.program_id)
        return AdjustmentRead.model_validate(adjustment)


def _decide(ctx: Ctx, adjustment_id: str, body: AdjustmentDecision | None,
            approve: bool) -> Response:
    request = body or AdjustmentDecision()

    def run(session: Session) -> AdjustmentRead:
        adjustment = ledger.get_adjustment(session, ctx.tenant_id, adjustment_id)
        ctx.check_program(adjustment.program_id)
        requester_key = adjustment.requested_by.split("/", 1)[0]
        if adjustment.status == "pending_approval" and requester_key == ctx.actor:
            raise SameApprover("the second approver must use another API key than the "
                               "requester", field="Authorization")
        out = AdjustmentRead.model_validate(ledger.decide_adjustment(
            session, ctx.tenant_id, adjustment_id, approve=approve,
            decided_by=_identity(ctx, request.decided_by), reason=request.reason,
        ))
        _audit_adjustment(session, ctx, "adjustment.approve" if approve else "adjustment.reject",
                          out)
        return out

    return ctx.write(body, run, 200)


@router.post("/adjustments/{adjustment_id}/approve", response_model=AdjustmentRead,
             summary="Approve a pending adjustment (not by its requester's key)")
def approve_adjustment(
    adjustment_id: str,
    body: AdjustmentDecision | None = Body(None),
    ctx: Ctx = Depends(need("admin")),
) -> Response:
    return _decide(ctx, adjustment_id, body, approve=True)


@router.post("/adjustments/{adjustment_id}/reject", response_model=AdjustmentRead,
             summary="Reject a pending adjustment (not by its requester's key)")
def reject_adjustment(
    adjustment_id: str,
    body: AdjustmentDecision | None = Body(None),
    ctx: Ctx = Depends(need("admin")),
) -> Response:
    return _decide(ctx, adjustment_id, body, approve=False)


# ---------------------------------------------------------------------------------------------
# Reconciliation


@router.get("/programs/{program_id}/reconcile", response_model=ReconcileRead,
            summary="Recompute every account's balance from postings and compare")
def reconcile(program_id: str, ctx: Ctx = Depends(need("admin"))) -> ReconcileRead:
    ctx.check_program(program_id)
    with ctx.read() as session:
        tenants.get_program(session, ctx.tenant_id, program_id)
        ids = queries.program_account_ids(session, ctx.tenant_id, program_id)
        _checked, mismatches = ledger.reconcile(session, ctx.tenant_id)
        bad = [
            MismatchRead(account_id=m.account_id, stored=CountersRead.of(m.stored),
                         computed=CountersRead.of(m.computed))
            for m in mismatches if m.account_id in ids
        ]
        return ReconcileRead(program_id=program_id, accounts_checked=len(ids), mismatches=bad,
                             ok=not bad)

