"""What the portal's pages share: the account a page shows (only one of the user's tree),
who may act for an account, money typed by a person, and proof files with their claims."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from allegiance.kit.errors import AllegianceError, Forbidden, NotFound, ValidationFailed
from allegiance.web import proofs
from allegiance.web.security import Member

ACTING_ROLES = ("owner", "manager", "rep")


def account_of(ctx: Member, account: str | None) -> str:
    """The account a page shows: the user's own by default; only one of its tree."""
    chosen = account or ctx.account.id
    if not ctx.sees(chosen):
        raise NotFound("no such account", field="account")
    return chosen


def may_act(ctx: Member, account_id: str) -> bool:
    """Submitting claims and requests for an account: owners and managers for the accounts
    of their tree, reps for their own account; viewers only look."""
    if ctx.user.role not in ACTING_ROLES or not ctx.sees(account_id):
        return False
    return account_id == ctx.account.id or ctx.user.role in ("owner", "manager")


def need_act(ctx: Member, account_id: str) -> None:
    if not may_act(ctx, account_id):
        raise Forbidden("your role may not submit for this account", field="account")


def parse_money(text: str, field: str, *, required: bool = True) -> int | None:
    """"1,234.50" → 123450 minor units (two decimals); None when empty and not required."""
    clean = text.strip().replace(",", "").replace(" ", "")
    if not clean:
        if required:
            raise ValidationFailed(f"enter the {field.replace('_', ' ')}", field=field)
        return None
    try:
        value = Decimal(clean)
    except InvalidOperation:
        raise ValidationFailed(f"{field.replace('_', ' ')} must be an amount like 125.50",
                               field=field) from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")) \
            or value > Decimal("1e13"):
        raise ValidationFailed(f"{field.replace('_', ' ')} must be an amount >= 0 with at most "
                               "two decimals", field=field)
    return int(value * 100)


def with_proof(ctx: Member, file: UploadFile | None, run: Callable[[Session, str], Any],
               ok: Callable[[Any], str], to: str, field: str = "proof") -> RedirectResponse:
    """Keep the uploaded proof, then run the write with its reference in one transaction;
    when the write is refused the file is removed and the refusal shown on the next page."""
    try:
        if file is None:
            raise proofs.InvalidProof("choose a proof file (PDF or image)", field=field)
        ref = proofs.store(ctx.tenant_id, file.file, field)
    except AllegianceError as exc:
        ctx.say("error", exc.message)
        return RedirectResponse(to, status_code=303)
    try:
        with ctx.db.transaction() as session:
            result = run(session, ref)
    except AllegianceError as exc:
        proofs.discard(ref)
        ctx.say("error", exc.message)
    except BaseException:
        proofs.discard(ref)
        raise
    else:
        ctx.say("ok", ok(result))
    return RedirectResponse(to, status_code=303)


def proof_download(ref: str | None, tenant_id: str) -> Response:
    found = proofs.locate(ref, tenant_id)
    if found is None:
        raise NotFound("no stored proof file", field="proof")
    return FileResponse(found.path, media_type=found.media_type, filename=found.file_name,
                        content_disposition_type="attachment")
