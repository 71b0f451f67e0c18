"""Bulk actions of the admin queues: the ticked rows, each in its own transaction (one
failure stops no other), and one message saying how many were done and why others were not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from allegiance.kit.errors import AllegianceError
from allegiance.web.security import Admin

MAX_TICKED = 100


async def ticked(request: Request) -> tuple[list[str], str, str]:
    """(ids, action, reason) of a bulk form (at most MAX_TICKED ids)."""
    form = await request.form()
    ids = list(dict.fromkeys(str(v)[:40] for v in form.getlist("ids")))[:MAX_TICKED]
    return ids, str(form.get("action") or "")[:20], str(form.get("reason") or "")[:1000]


def apply_each(ctx: Admin, ids: list[str], one: Callable[[Session, str], Any], noun: str,
               to: str) -> RedirectResponse:
    done, failed = 0, []
    for item in ids:
        try:
            with ctx.db.transaction() as s:
                one(s, item)
            done += 1
        except AllegianceError as exc:
            failed.append(f"{item}: {exc.message}")
    if not ids:
        ctx.say("error", f"Tick at least one {noun}.")
    else:
        text = f"{done} {noun}(s) done." + (f" Not done: {'; '.join(failed)}" if failed else "")
        ctx.say("error" if failed else "ok", text)
    return RedirectResponse(to, status_code=303)
