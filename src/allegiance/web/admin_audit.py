"""Admin: the tenant's audit log, newest first, filtered by object, actor or action, and the
hash chain verified on request (tamper detection, as ``allegiance audit verify`` does)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from allegiance import audit
from allegiance.web.forms import url
from allegiance.web.security import Admin, admin, reading
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50


@router.get("/audit")
def audit_log(request: Request, object_type: str = Query("", max_length=40),
              object_id: str = Query("", max_length=200),
              actor: str = Query("", max_length=200), action: str = Query("", max_length=80),
              before: int | None = Query(None, ge=1), verify: bool = Query(False),
              ctx: Admin = Depends(admin("view"))) -> Response:
    filters = {"object_type": object_type, "object_id": object_id, "actor": actor,
               "action": action}
    with reading(ctx.db) as s:
        rows = audit.page(s, ctx.tenant_id, **{k: v.strip() for k, v in filters.items()},
                          before_seq=before, limit=PAGE + 1)
        check = audit.verify(s, ctx.tenant_id) if verify else None
    more = rows[PAGE - 1].seq if len(rows) > PAGE else None
    return render(request, "admin/audit.html", {
        "ctx": ctx, "rows": rows[:PAGE], "filters": filters, "check": check,
        "verify_url": url("/admin/audit", verify="true", **filters),
        "older_url": url("/admin/audit", before=more, **filters) if more else None})
