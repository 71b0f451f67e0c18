"""Cursor pagination over opaque, time-sortable ids."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Generic, TypeVar

from allegiance.kit.errors import ValidationFailed

T = TypeVar("T")

MAX_LIMIT = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:  # binascii.Error is a ValueError
        raise ValidationFailed("cursor is not valid", field="cursor") from exc


def check_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def page_of(rows: list[T], limit: int, key: str | None) -> Page[T]:
    """``rows`` fetched with ``limit + 1``; ``key`` is the sort key of the last kept row."""
    if len(rows) > limit:
        return Page(items=rows[:limit], next_cursor=encode_cursor(key) if key else None)
    return Page(items=rows, next_cursor=None)
