"""Pure rules of the rewards catalogue: eligibility, the redemption lifecycle, per-period
limit windows and coupon codes (stdlib only)."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from allegiance.kit.regions import region_eligible

KINDS = ("physical", "egift", "experience", "service", "coupon", "cashout", "donation",
         "marketing")
PERIODS = ("day", "month", "year", "all")
STATUSES = ("requested", "approved", "fulfilled", "cancelled", "rejected")

# status -> the statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"approved", "rejected", "cancelled"}),
    "approved": frozenset({"fulfilled", "cancelled"}),
    "fulfilled": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
}

# Shipping of a fulfilled physical gift: status -> the statuses it may move to (the same
# status again updates the carrier or tracking; returned is the end)
SHIPPING: dict[str, frozenset[str]] = {
    "": frozenset({"preparing", "shipped", "in_transit", "delivered", "lost"}),
    "preparing": frozenset({"preparing", "shipped", "in_transit", "delivered", "lost"}),
    "shipped": frozenset({"shipped", "in_transit", "delivered", "returned", "lost"}),
    "in_transit": frozenset({"in_transit", "delivered", "returned", "lost"}),
    "delivered": frozenset({"delivered", "returned"}),
    "lost": frozenset({"lost", "delivered", "returned"}),
    "returned": frozenset(),
}
SHIPPING_STATUSES = tuple(s for s in SHIPPING if s)


def may_ship(current: str, target: str) -> bool:
    """May a gift's shipping status move from ``current`` ('' when none yet) to ``target``?"""
    return target in SHIPPING.get(current, frozenset())


# Coupon codes: no 0/O/1/I/L, so a code read aloud or typed survives.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def may_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


@dataclass(frozen=True)
class Offer:
    """What eligibility needs to know of a reward."""

    status: str
    visible_from: datetime | None
    visible_to: datetime | None
    available_from: datetime | None
    available_to: datetime | None
    eligible_regions: Collection[str]
    eligible_tiers: Collection[str]
    eligible_segments: Collection[str] = ()


def _within(now: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or start <= now) and (end is None or now < end)


def is_visible(offer: Offer, now: datetime) -> bool:
    return offer.status == "active" and _within(now, offer.visible_from, offer.visible_to)


def ineligibility(offer: Offer, now: datetime, region: str | None,
                  tiers: Collection[str], segment: str | None = None,
                  member_segments: Collection[str] = ()) -> tuple[str, str] | None:
    """The first reason (code, message) why the member may not redeem now, or None. A
    segment restriction is met by the account's ``segment`` attribute or by any segment
    (``member_segments``: codes of the program's segments it is in). A region restriction
    follows program enrolment: a country admits its subdivisions (``US`` admits ``US-NY``)."""
    if offer.status != "active":
        return "reward_retired", "the reward is retired"
    if not _within(now, offer.available_from, offer.available_to):
        return "reward_unavailable", "the reward is not available now"
    if not region_eligible(offer.eligible_regions, region):
        return "region_not_eligible", "the reward is not offered in the member's region"
    if offer.eligible_segments and segment not in offer.eligible_segments \
            and not set(offer.eligible_segments) & set(member_segments):
        return "segment_not_eligible", "the member's segment may not redeem this reward"
    if offer.eligible_tiers and not set(offer.eligible_tiers) & set(tiers):
        return "tier_not_eligible", "the member's tier may not redeem this reward"
    return None


def period_start(now: datetime, period: str) -> datetime | None:
    """Start of the limit window containing ``now`` (UTC); None for ``all``."""
    now = now.astimezone(UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == "year":
        return now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == "all":
        return None
    raise ValueError(f"unknown period {period!r}")


def check_char(body: str) -> str:
    """A weighted mod-31 check character over ``ALPHABET``: catches any single typo and
    any swap of two neighbours."""
    total = 0
    for i, ch in enumerate(body):
        total += (i + 2) * ALPHABET.index(ch)
    return ALPHABET[total % len(ALPHABET)]


def new_coupon_code(length: int = 11) -> str:
    """A random code of ``length`` characters (the last one a check character)."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(length - 1))
    return body + check_char(body)


def normalise_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def code_well_formed(code: str) -> bool:
    code = normalise_code(code)
    if len(code) < 2 or any(ch not in ALPHABET for ch in code):
        return False
    return check_char(code[:-1]) == code[-1]
