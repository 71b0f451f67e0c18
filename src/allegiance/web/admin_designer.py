"""Admin: the program designer. The program's definition (units, product lists, rules,
tiers) as YAML: edit it, validate it with every problem and its path, see the diff against
the version in force, apply it as a new version; dry-run an event against the rules."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from allegiance import definitions, events, tenants
from allegiance.kit.errors import AllegianceError, NotFound
from allegiance.web.forms import act, parse_int
from allegiance.web.security import Admin, admin, admin_form, reading
from allegiance.web.templating import render

router = APIRouter()
MAX_DOCUMENT = 500_000


def _current_yaml(ctx: Admin, program: tenants.Program) -> tuple[str, int | None]:
    with reading(ctx.db) as s:
        try:
            found = definitions.export(s, ctx.tenant_id, program.id)
        except NotFound:
            return f"program:\n  code: {program.code}\n  name: {program.name}\n", None
    return yaml.safe_dump(found.document, sort_keys=False, allow_unicode=True), found.number


def _page(request: Request, ctx: Admin, **extra: Any) -> Response:
    program = ctx.need_program()
    current, version = _current_yaml(ctx, program)
    with reading(ctx.db) as s:
        versions = definitions.list_versions(s, ctx.tenant_id, program.id)[-10:]
    context: dict[str, Any] = {"ctx": ctx, "program": program, "document": current,
                               "version": version, "versions": list(reversed(versions)),
                               "problems": None, "changes": None, "parse_error": None,
                               "dry": None, "dry_form": {}, "dry_error": None}
    context.update(extra)
    return render(request, "admin/designer.html", context)


@router.get("/designer")
def designer(request: Request, ctx: Admin = Depends(admin("view"))) -> Response:
    return _page(request, ctx)


def _parse(text: str) -> tuple[Any, str | None]:
    if len(text) > MAX_DOCUMENT:
        return None, "the document is too large"
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as exc:
        return None, f"not valid YAML: {exc}"


@router.post("/designer")
def check(request: Request, document: str = Form("", max_length=MAX_DOCUMENT),
          action: str = Form("validate", max_length=10),
          ctx: Admin = Depends(admin_form("view"))) -> Response:
    """Validate or diff a draft (anyone who may view); apply needs the designer permission."""
    program = ctx.need_program()
    parsed, error = _parse(document)
    if error is not None:
        return _page(request, ctx, document=document, parse_error=error)
    problems = [p.to_dict() for p in definitions.validate(definitions.normalise(parsed))]
    section = parsed.get("program") if isinstance(parsed, dict) else None
    if not problems and (not isinstance(section, dict) or section.get("code") != program.code):
        problems = [{"path": "program.code",
                     "message": f"this page edits program {program.code}; switch program "
                                "to edit another"}]
    if action == "apply" and not problems:
        if not ctx.may("designer"):
            return _page(request, ctx, document=document,
                         problems=[{"path": "", "message": "your role may not apply"}])
        return act(ctx, lambda s: definitions.apply(s, ctx.tenant_id, parsed, actor=ctx.actor),
                   lambda v: f"Applied as version {v.number}.", "/admin/designer")
    changes = None
    if action in ("diff", "apply") and not problems:
        try:
            with reading(ctx.db) as s:
                _, found = definitions.diff_draft(s, ctx.tenant_id, program.id, parsed)
            changes = [c.to_dict() for c in found]
        except AllegianceError as exc:
            problems = [{"path": exc.field or "", "message": exc.message}]
    return _page(request, ctx, document=document, problems=problems, changes=changes)


def _minor(value: str) -> int | None:
    """"125.50" → 12550 (money in minor units); empty → None."""
    if not value.strip():
        return None
    try:
        return int((Decimal(value.strip().replace(",", "")) * 100).to_integral_value())
    except InvalidOperation:
        return None


def _lines(text: str) -> tuple[list[events.LineIn], str | None]:
    """One line per row: ``SKU quantity [amount]``."""
    out = []
    for number, raw in enumerate(text.splitlines()[:100], start=1):
        parts = raw.split()
        if not parts:
            continue
        quantity = parse_int(parts[1]) if len(parts) > 1 else 1
        if quantity is None or quantity <= 0:
            return [], f"line {number}: the quantity must be a positive whole number"
        line_amount = _minor(parts[2]) if len(parts) > 2 else None
        out.append(events.LineIn(sku=parts[0], name=None, category=None, brand=None, labels=(),
                                 quantity=quantity, unit_price=None, amount=line_amount))
    return out, None


@router.post("/designer/dry-run")
def dry_run(request: Request, member_number: str = Form("", max_length=32),
            kind: str = Form("purchase", max_length=10),
            activity_type: str = Form("", max_length=64),
            amount: str = Form("", max_length=20), lines: str = Form("", max_length=10_000),
            ctx: Admin = Depends(admin_form("view"))) -> Response:
    program = ctx.need_program()
    form = {"member_number": member_number, "kind": kind, "activity_type": activity_type,
            "amount": amount, "lines": lines}
    parsed_lines, error = _lines(lines)
    if error is not None:
        return _page(request, ctx, dry_form=form, dry_error=error)
    data = events.EventData(
        external_id="dry-run", kind="activity" if kind == "activity" else "purchase",
        activity_type=activity_type or None, member_number=member_number.strip() or None,
        currency=program.base_currency, amount=_minor(amount), lines=parsed_lines)
    try:
        with reading(ctx.db) as s:
            result = events.dry_run(s, ctx.tenant_id, program.id, data)
    except AllegianceError as exc:
        return _page(request, ctx, dry_form=form, dry_error=exc.message)
    return _page(request, ctx, dry_form=form, dry=result)


