"""Integer amounts: points are whole numbers, money is in minor units. Rates are Decimals."""

from __future__ import annotations

from decimal import (
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from enum import StrEnum

# One amount (a posting, an event line) stays below this: 10^15 points, or ten trillion dollars
# in cents. Ledger counters (sums of amounts) stay below MAX_COUNTER, checked by the database,
# so a signed 64-bit column can never overflow (SQLite would silently turn it into a float).
MAX_AMOUNT = 10**15
MAX_COUNTER = 2**62

# ISO 4217 exponents that differ from 2; everything else has two decimals.
_EXPONENTS: dict[str, int] = {
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "XAF": 0, "XOF": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "LYD": 3, "IQD": 3,
}


class Rounding(StrEnum):
    DOWN = "down"
    UP = "up"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"
    FLOOR = "floor"


_DECIMAL_ROUNDING = {
    Rounding.DOWN: ROUND_DOWN,
    Rounding.UP: ROUND_UP,
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
    Rounding.FLOOR: ROUND_FLOOR,
}


def currency_exponent(currency: str) -> int:
    """Number of decimals of an ISO 4217 currency (2 unless known otherwise)."""
    return _EXPONENTS.get(currency.upper(), 2)


def known_exponents() -> dict[str, int]:
    """The currencies whose exponent :func:`currency_exponent` knows (every other has 2)."""
    return dict(_EXPONENTS)


def is_currency_code(code: str) -> bool:
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()


def round_to_int(value: Decimal, rounding: Rounding = Rounding.DOWN) -> int:
    """Round a Decimal to an integer with an explicit policy (default: down, toward zero)."""
    return int(value.quantize(Decimal(1), rounding=_DECIMAL_ROUNDING[rounding]))


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """Major units (``"12.34"``) to minor units (``1234``); refuses sub-minor precision, text
    that is not a number, infinities and magnitudes of 10^18 and more (``ValueError``)."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not a finite number")
    if value.adjusted() >= 18 or value.as_tuple().exponent < -18:  # type: ignore[operator]
        raise ValueError(f"{amount!r} is out of range")
    scaled = value.scaleb(currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def from_minor(amount: int, currency: str) -> Decimal:
    """Minor units to a Decimal in major units."""
    return Decimal(amount).scaleb(-currency_exponent(currency))


def check_amount(amount: int) -> int:
    """A posting amount: a positive integer within the storage range."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amounts are integers")
    if amount <= 0:
        raise ValueError("amounts are positive")
    if amount >= MAX_AMOUNT:
        raise ValueError("amount overflows the ledger's range")
    return amount
