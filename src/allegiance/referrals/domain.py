"""Pure logic of referrals and affiliates: identity keys for self-referral and duplicate
detection, commission rates by category, the attribution window. No I/O."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
DEFAULT_CATEGORY = "*"


class PlanError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def email_key(email: str | None) -> str | None:
    """``"Jo.Doe+promo@Example.com"`` → ``"jodoe@example.com"``: lower case, ``+tag``
    removed, dots of the local part removed."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}" if local and domain else None


def tax_key(tax_id: str | None) -> str | None:
    """``"DE 123.456-789"`` → ``"DE123456789"``."""
    if not tax_id:
        return None
    key = re.sub(r"[^0-9A-Z]", "", tax_id.upper())
    return key or None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", code.upper())


@dataclass(frozen=True)
class Rates:
    """Commission percentages by product category; ``"*"`` is every other category."""

    by_category: Mapping[str, tuple[int, int]]

    @staticmethod
    def parse(data: Mapping[str, str]) -> Rates:
        out: dict[str, tuple[int, int]] = {}
        for category, raw in data.items():
            try:
                value = Decimal(str(raw))
            except InvalidOperation as exc:
                raise PlanError(f"commission_rates.{category}", "must be a number") from exc
            if not value.is_finite() or not 0 <= value <= 100:
                raise PlanError(f"commission_rates.{category}", "must be between 0 and 100")
            num, den = value.as_integer_ratio()
            out[category] = (num, den * 100)
        return Rates(out)

    def commission(self, category: str | None, amount: int) -> int:
        rate = self.by_category.get(category or "") or self.by_category.get(DEFAULT_CATEGORY)
        if rate is None or amount <= 0:
            return 0
        return amount * rate[0] // rate[1]


def in_window(signed_up_at: datetime, window_days: int, at: datetime) -> bool:
    return signed_up_at <= at < signed_up_at + timedelta(days=window_days)


@dataclass(frozen=True)
class Identity:
    """Every known identity of a member: the e-mail and tax id keys of its account and those
    the caller supplied (both kept: a supplied e-mail must not hide the account's own)."""

    account_id: str
    parent_id: str | None
    emails: frozenset[str]
    taxes: frozenset[str]
    devices: frozenset[str]


def self_referral(referrer: Identity, referred: Identity) -> str | None:
    """Why the referred member is the referrer in disguise, or None."""
    if referrer.account_id == referred.account_id:
        return "same account"
    if referred.account_id == referrer.parent_id or referred.parent_id == referrer.account_id \
            or (referrer.parent_id is not None and referrer.parent_id == referred.parent_id):
        return "same company hierarchy"
    if referrer.emails & referred.emails:
        return "same e-mail"
    if referrer.taxes & referred.taxes:
        return "same tax id"
    if referrer.devices & referred.devices:
        return "same device"
    return None


def commission_after_return(amount: int, line_amount: int, returned: int) -> int:
    """What a line's commission becomes once ``returned`` of the line came back: exactly the
    commission of the lines kept (proportional, rounded down)."""
    if line_amount <= 0:
        return 0
    kept = max(line_amount - returned, 0)
    return amount * kept // line_amount
