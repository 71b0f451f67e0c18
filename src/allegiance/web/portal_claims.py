"""Portal: partner sales claims. A member submits an invoice (number, date, seller, lines)
with its proof file, and follows its claims: submitted, approved (the points are in the
wallet), rejected with the reviewer's reason, or duplicate of an invoice already claimed."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import claims
from allegiance.kit import clock
from allegiance.kit.errors import NotFound, ValidationFailed
from allegiance.web.forms import parse_day, url
from allegiance.web.portal_base import (
    account_of,
    may_act,
    need_act,
    parse_money,
    proof_download,
    with_proof,
)
from allegiance.web.security import Member, member, member_form, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50
LINE_ROWS = 5  # empty line rows the form offers (rows left empty are ignored)
STATUSES = ("submitted", "approved", "rejected", "duplicate")


def _claims(s: Session, ctx: Member, program_id: str, account_id: str, status: str | None,
            before: str | None) -> list[claims.SalesClaim]:
    query = select(claims.SalesClaim).where(
        claims.SalesClaim.tenant_id == ctx.tenant_id, claims.SalesClaim.program_id == program_id,
        claims.SalesClaim.account_id == account_id)
    if status:
        query = query.where(claims.SalesClaim.status == status)
    if before:
        query = query.where(claims.SalesClaim.id < before)
    return list(s.scalars(query.order_by(claims.SalesClaim.id.desc()).limit(PAGE + 1)))


@router.get("/claims")
def claim_list(request: Request, account: str | None = Query(None, max_length=40),
               status: str = Query("", max_length=12),
               before: str | None = Query(None, max_length=40),
               ctx: Member = Depends(member)) -> Response:
    account_id = account_of(ctx, account)
    rows: list[claims.SalesClaim] = []
    if ctx.program is not None:
        with reading(ctx.db) as s:
            rows = _claims(s, ctx, ctx.program.id, account_id,
                           status if status in STATUSES else None, before)
    more = rows[PAGE - 1].id if len(rows) > PAGE else None
    return render(request, "portal/claims.html", {
        "ctx": ctx, "account_id": account_id, "rows": rows[:PAGE], "status": status,
        "statuses": STATUSES, "may_act": may_act(ctx, account_id), "line_rows": LINE_ROWS,
        "today": clock.now().strftime("%Y-%m-%d"),
        "older_url": url("/portal/claims", account=account_id, status=status, before=more)
        if more else None})


def _lines(sku: list[str], name: list[str], quantity: list[str],
           unit_price: list[str]) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for index in range(max(len(sku), len(name), len(quantity), len(unit_price))):
        cells = [(values[index] if index < len(values) else "").strip()
                 for values in (sku, name, quantity, unit_price)]
        if not any(cells):
            continue
        number = len(lines) + 1
        if not cells[0] and not cells[1]:
            raise ValidationFailed(f"line {number}: enter a product code or a name",
                                   field=f"lines[{index}].sku")
        try:
            count = int(cells[2] or "1")
        except ValueError:
            raise ValidationFailed(f"line {number}: the quantity must be a whole number",
                                   field=f"lines[{index}].quantity") from None
        if count <= 0 or count > 1_000_000:
            raise ValidationFailed(f"line {number}: the quantity must be 1 or more",
                                   field=f"lines[{index}].quantity")
        price = parse_money(cells[3], f"lines[{index}].unit_price")
        lines.append({"sku": cells[0] or None, "name": cells[1] or None, "quantity": count,
                      "unit_price": price})
    if not lines:
        raise ValidationFailed("add at least one line of the invoice", field="lines")
    return lines


@router.post("/claims")
def submit_claim(account: str = Form("", max_length=40),
                 invoice_number: str = Form("", max_length=100),
                 invoice_date: str = Form("", max_length=10),
                 seller: str = Form("", max_length=200),
                 sku: list[str] = Form([]), name: list[str] = Form([]),
                 quantity: list[str] = Form([]), unit_price: list[str] = Form([]),
                 proof: UploadFile | None = File(None),
                 ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = account_of(ctx, account or None)
    back = url("/portal/claims", account=account_id)
    program = ctx.program

    def run(s: Session, ref: str) -> claims.SalesClaim:
        if program is None:
            raise ValidationFailed("you are in no program", field="program_id")
        need_act(ctx, account_id)
        if not invoice_number.strip():
            raise ValidationFailed("enter the invoice number", field="invoice_number")
        if not seller.strip():
            raise ValidationFailed("enter who issued the invoice", field="seller")
        day = parse_day(invoice_date)
        if day is None:
            raise ValidationFailed("enter the invoice date", field="invoice_date")
        lines = _lines(sku[:50], name[:50], quantity[:50], unit_price[:50])
        return claims.submit(
            s, ctx.tenant_id, program.id, account_id=account_id,
            invoice_number=invoice_number.strip(), invoice_date=day, seller=seller.strip(),
            lines=lines, proof_ref=ref,
            user_id=ctx.user.id if account_id == ctx.account.id else None, actor=ctx.actor)

    def said(row: claims.SalesClaim) -> str:
        if row.status == "duplicate":
            return (f"Claim {row.id} was recorded, but invoice {row.invoice_number} was "
                    "already claimed: it will not earn.")
        return f"Thank you! Claim {row.id} waits for review."

    return with_proof(ctx, proof, run, said, back)


def _own_claim(s: Session, ctx: Member, claim_id: str) -> claims.SalesClaim:
    """A claim of the user's tree, else not found (another account's or tenant's alike)."""
    row = claims.get_claim(s, ctx.tenant_id, claim_id)
    if not ctx.sees(row.account_id):
        raise NotFound(f"claim {claim_id} not found", field="claim_id")
    return row


@router.get("/claims/{claim_id}")
def claim_detail(request: Request, claim_id: str, ctx: Member = Depends(member)) -> Response:
    with reading(ctx.db) as s:
        row = _own_claim(s, ctx, claim_id)
    return render(request, "portal/claim.html", {"ctx": ctx, "account_id": row.account_id,
                                                 "claim": row})


@router.get("/claims/{claim_id}/proof")
def claim_proof(claim_id: str, ctx: Member = Depends(member)) -> Response:
    with reading(ctx.db) as s:
        row = _own_claim(s, ctx, claim_id)
    return proof_download(row.proof_ref, ctx.tenant_id)
