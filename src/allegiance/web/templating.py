"""Jinja2 templates of both web apps: one environment with autoescaping, the filters the
pages use, and a response helper that adds the CSP nonce and the signed-in context."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from allegiance import __version__

HERE = Path(__file__).parent
STATIC = HERE / "static"

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def number(value: Any) -> str:
    """12345 → "12,345"; None → "—"."""
    if value is None:
        return "—"
    if isinstance(value, float | Decimal):
        return f"{value:,.2f}"
    return f"{int(value):,}"


def amount(value: int | None, kind: str = "points", currency: str | None = None) -> str:
    """Points as whole numbers, money from minor units ("$12.50" style: "12.50 USD")."""
    if value is None:
        return "—"
    if kind == "money":
        sign = "-" if value < 0 else ""
        whole, cents = divmod(abs(value), 100)
        return f"{sign}{whole:,}.{cents:02d} {currency or ''}".rstrip()
    return f"{value:,}"


def signed(value: int, kind: str = "points", currency: str | None = None) -> str:
    """A movement with its sign: "+4,500", "-25.00 USD"."""
    text = amount(value, kind, currency)
    return text if value < 0 else f"+{text}"


def when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M")


def day(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d")


def last_day(value: datetime | None) -> str:
    """The last day of a period that ends at ``value`` exclusive (a tier year ending at
    2027-01-01 00:00 shows as 2026-12-31)."""
    return "—" if value is None else (value - timedelta(microseconds=1)).strftime("%Y-%m-%d")


def percent(value: float | Decimal | None) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


env.filters.update(number=number, amount=amount, signed=signed, when=when, day=day, last_day=last_day,
                   percent=percent)
env.globals["version"] = __version__


def render(request: Request, name: str, context: dict[str, Any],
           status_code: int = 200) -> HTMLResponse:
    template = env.get_template(name)
    html = template.render(request=request, nonce=getattr(request.state, "nonce", ""),
                           path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)
