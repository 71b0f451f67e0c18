"""The member portal: sign-in (password set through an invitation link), balances, history
with filters and CSV export, tier progress, the catalogue with what the member can afford,
redeem, and orders. A member user sees its own account and the accounts below it, nothing
else: every account a page names is checked against that tree (404 otherwise)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from allegiance import members, operators, rewards, tiers
from allegiance.kit.errors import AllegianceError, Forbidden, NotFound, ValidationFailed
from allegiance.operators import sessions
from allegiance.web import queries
from allegiance.web.forms import act, parse_day, safe_next, url
from allegiance.web.security import (
    PORTAL_COOKIE,
    Member,
    SignInRequired,
    branding_of,
    check_signin_token,
    clear_cookie,
    client_address,
    db_of,
    keep_signin_token,
    load_member,
    member,
    member_form,
    reading,
    set_cookie,
    signin_token,
)
from allegiance.web.templating import render

router = APIRouter()
PAGE = 50
CSV_MAX = 10_000


def _signin_form(request: Request, template: str, status_code: int = 200,
                 **context: object) -> Response:
    response = render(request, template, {"csrf": signin_token(request),
                                          "brand": branding_of(None), **context}, status_code)
    keep_signin_token(request, response)
    return response


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "") -> Response:
    try:
        load_member(request)
        return RedirectResponse("/portal/home", status_code=303)
    except SignInRequired:
        return _signin_form(request, "portal/sign_in.html", next=next, email="", error=None)


@router.post("/sign-in")
async def sign_in(request: Request, email: str = Form("", max_length=320),
                  password: str = Form("", max_length=1024), csrf_token: str = Form(""),
                  next: str = Form("")) -> Response:
    check_signin_token(request, csrf_token)
    return await run_in_threadpool(_sign_in, request, email, password, next)


def _sign_in(request: Request, email: str, password: str, next_: str) -> Response:
    throttle: operators.Throttle = request.app.state.portal_throttle
    clean = operators.normal_email(email)
    address = client_address(request)
    try:
        throttle.check(clean, address)
    except operators.TooManyAttempts as exc:
        return _signin_form(request, "portal/sign_in.html", 429, next=next_, email=email,
                            error=exc.message)
    with db_of(request).transaction() as s:
        matched = operators.portal.verify(s, clean, password)
        if matched:
            grants = [{"tenant_id": u.tenant_id, "user_id": u.id} for u in matched]
            _, token = sessions.start(s, matched[0].tenant_id, "member", matched[0].id,
                                      grants=grants)
    if not matched:
        throttle.failed(clean, address)
        return _signin_form(request, "portal/sign_in.html", 401, next=next_, email=email,
                            error="The e-mail address or the password is not right.")
    throttle.succeeded(clean)
    response = RedirectResponse(safe_next(next_, "/portal", "/portal/home"), status_code=303)
    set_cookie(response, request, PORTAL_COOKIE, token, "/portal")
    return response


@router.get("/set-password")
def set_password_page(request: Request, token: str = Query("", max_length=200)) -> Response:
    with reading(db_of(request)) as s:
        try:
            operators.portal.invitation_of(s, token)
            error = None
        except AllegianceError as exc:
            error = exc.message
    return _signin_form(request, "portal/set_password.html", 200 if error is None else 400,
                        token=token, error=error, invalid=error is not None)


@router.post("/set-password")
async def set_password(request: Request, token: str = Form("", max_length=200),
                       password: str = Form("", max_length=1024),
                       confirm: str = Form("", max_length=1024),
                       csrf_token: str = Form("")) -> Response:
    check_signin_token(request, csrf_token)
    return await run_in_threadpool(_set_password, request, token, password, confirm)


def _set_password(request: Request, token: str, password: str, confirm: str) -> Response:
    if password != confirm:
        return _signin_form(request, "portal/set_password.html", 422, token=token,
                            error="The two passwords differ.", invalid=False)
    try:
        with db_of(request).transaction() as s:
            user = operators.portal.set_password_with_link(s, token, password)
            _, cookie = sessions.start(s, user.tenant_id, "member", user.id,
                                       grants=[{"tenant_id": user.tenant_id, "user_id": user.id}])
    except AllegianceError as exc:
        return _signin_form(request, "portal/set_password.html", 422, token=token,
                            error=exc.message, invalid=exc.code == "invalid_link")
    response = RedirectResponse("/portal/home", status_code=303)
    set_cookie(response, request, PORTAL_COOKIE, cookie, "/portal")
    return response


@router.post("/sign-out")
def sign_out(request: Request, ctx: Member = Depends(member_form)) -> Response:
    with ctx.db.transaction() as s:
        sessions.revoke(s, ctx.tenant_id, ctx.web_session.id)
    response = RedirectResponse("/portal/sign-in", status_code=303)
    clear_cookie(response, request, PORTAL_COOKIE, "/portal")
    return response


@router.post("/switch")
def switch(program_id: str = Form("", max_length=40), back: str = Form("", max_length=300),
           ctx: Member = Depends(member_form)) -> RedirectResponse:
    if any(p.id == program_id for p in ctx.programs):
        with ctx.db.transaction() as s:
            sessions.set_program(s, ctx.tenant_id, ctx.web_session.id, program_id)
    return RedirectResponse(safe_next(back, "/portal", "/portal/home"), status_code=303)


@router.get("/")
def portal_root(ctx: Member = Depends(member)) -> RedirectResponse:
    return RedirectResponse("/portal/home", status_code=303)


def _account_of(ctx: Member, account: str | None) -> str:
    """The account a page shows: the user's own by default; only one of its tree."""
    chosen = account or ctx.account.id
    if not ctx.sees(chosen):
        raise NotFound("no such account", field="account")
    return chosen


@router.get("/home")
def home(request: Request, account: str | None = Query(None, max_length=40),
         ctx: Member = Depends(member)) -> Response:
    account_id = _account_of(ctx, account)
    program = ctx.program
    with reading(ctx.db) as s:
        wallets = _visible(ctx, queries.wallets(s, ctx.tenant_id, [account_id],
                                                program.id if program else None))
        states = tiers.status(s, ctx.tenant_id, program.id, account_id) if program else []
    return render(request, "portal/home.html", {"ctx": ctx, "account_id": account_id,
                                                "wallets": wallets, "states": states})


def _visible(ctx: Member, wallets: list[queries.WalletRow]) -> list[queries.WalletRow]:
    return [w for w in wallets if ctx.may_view(w.owner_type, w.owner_id)]


def _history_args(ctx: Member, s: Session, account_id: str, wallet: str | None
                  ) -> tuple[list[queries.WalletRow], queries.WalletRow | None]:
    wallets = _visible(ctx, queries.wallets(s, ctx.tenant_id, [account_id],
                                            ctx.program.id if ctx.program else None))
    if wallet and not any(w.id == wallet for w in wallets):
        raise NotFound("no such wallet", field="wallet")
    chosen = next((w for w in wallets if w.id == wallet), wallets[0] if wallets else None)
    return wallets, chosen


@router.get("/history")
def history(request: Request, account: str | None = Query(None, max_length=40),
            wallet: str | None = Query(None, max_length=40),
            kind: str = Query("", max_length=20), since: str = Query("", max_length=10),
            until: str = Query("", max_length=10), before: int | None = Query(None, ge=1),
            ctx: Member = Depends(member)) -> Response:
    account_id = _account_of(ctx, account)
    with reading(ctx.db) as s:
        wallets, chosen = _history_args(ctx, s, account_id, wallet)
        rows = queries.history(s, ctx.tenant_id, chosen.id, kind=kind or None,
                               since=parse_day(since), until=parse_day(until),
                               before_seq=before, limit=PAGE) if chosen else []
    more = rows[PAGE - 1]["seq"] if len(rows) > PAGE else None
    filters = {"account": account_id, "wallet": chosen.id if chosen else None, "kind": kind,
               "since": since, "until": until}
    return render(request, "portal/history.html", {
        "ctx": ctx, "account_id": account_id, "wallets": wallets, "chosen": chosen,
        "rows": rows[:PAGE], "filters": filters, "kinds": queries.HISTORY_KINDS,
        "csv_url": url("/portal/history.csv", **filters),
        "older_url": url("/portal/history", **filters, before=more) if more else None})


@router.get("/history.csv")
def history_csv(account: str | None = Query(None, max_length=40),
                wallet: str | None = Query(None, max_length=40),
                kind: str = Query("", max_length=20), since: str = Query("", max_length=10),
                until: str = Query("", max_length=10),
                ctx: Member = Depends(member)) -> Response:
    account_id = _account_of(ctx, account)
    with reading(ctx.db) as s:
        _, chosen = _history_args(ctx, s, account_id, wallet)
        rows = queries.history(s, ctx.tenant_id, chosen.id, kind=kind or None,
                               since=parse_day(since), until=parse_day(until),
                               limit=CSV_MAX)[:CSV_MAX] if chosen else []

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["date", "kind", "amount", "unit", "description", "entry"])
        for row in rows:
            memo = str(row["memo"])
            if memo[:1] in ("=", "+", "-", "@"):
                memo = "'" + memo  # no formulas when opened in a spreadsheet
            writer.writerow([row["at"].isoformat(), row["kind"], row["amount"],
                             chosen.unit_code if chosen else "", memo, row["entry_id"]])
        yield out.getvalue()

    return StreamingResponse(lines(), media_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="history.csv"'})


@router.get("/catalogue")
def catalogue(request: Request, account: str | None = Query(None, max_length=40),
              ctx: Member = Depends(member)) -> Response:
    account_id = _account_of(ctx, account)
    program = ctx.program
    items: list[rewards.Reward] = []
    available: dict[str, int] = {}
    if program is not None:
        with reading(ctx.db) as s:
            items = rewards.list_rewards(s, ctx.tenant_id, program.id, account_id=account_id,
                                         limit=200)[:200]
            for w in _visible(ctx, queries.wallets(s, ctx.tenant_id, [account_id],
                                                   program.id)):
                if w.owner_type == "account":
                    available[w.unit_code] = w.available
            units = queries.units_by_id(s, ctx.tenant_id, program.id)
    else:
        units = {}
    may_spend = members.may_spend(ctx.user.role, "account", account_id == ctx.account.id, True)
    return render(request, "portal/catalogue.html", {
        "ctx": ctx, "account_id": account_id, "items": items, "units": units,
        "available": available, "may_spend": may_spend})


@router.post("/catalogue/{reward_id}/redeem")
def redeem(reward_id: str, account: str = Form("", max_length=40),
           quantity: int = Form(1, ge=1, le=100), cause: str = Form("", max_length=200),
           ctx: Member = Depends(member_form)) -> RedirectResponse:
    account_id = _account_of(ctx, account or None)
    program = ctx.program

    def run(s: Session) -> rewards.Redemption:
        if program is None:
            raise ValidationFailed("you are in no program", field="program_id")
        if not members.may_spend(ctx.user.role, "account", account_id == ctx.account.id, True):
            raise Forbidden("your role may not spend this account's points",
                            field="account_id")
        return rewards.redeem(s, ctx.tenant_id, program.id, reward_id, account_id,
                              quantity=quantity, user_id=ctx.user.id, cause=cause or None,
                              actor=ctx.actor)

    def said(row: rewards.Redemption) -> str:
        if row.status == "requested":
            return "Thank you! Your order waits for approval; the points are reserved."
        return "Thank you! Your order is confirmed."

    return act(ctx, run, said, url("/portal/orders", account=account_id))


@router.get("/orders")
def orders(request: Request, account: str | None = Query(None, max_length=40),
           before: str | None = Query(None, max_length=40),
           ctx: Member = Depends(member)) -> Response:
    account_id = _account_of(ctx, account)
    rows: list[rewards.Redemption] = []
    names: dict[str, rewards.Reward] = {}
    if ctx.program is not None:
        with reading(ctx.db) as s:
            rows = queries.redemptions(s, ctx.tenant_id, ctx.program.id,
                                       account_ids=[account_id], before=before, limit=PAGE)
            names = queries.rewards_by_id(s, ctx.tenant_id, [r.reward_id for r in rows])
    more = rows[PAGE - 1].id if len(rows) > PAGE else None
    return render(request, "portal/orders.html", {
        "ctx": ctx, "account_id": account_id, "rows": rows[:PAGE], "items": names,
        "older_url": url("/portal/orders", account=account_id, before=more) if more else None})
