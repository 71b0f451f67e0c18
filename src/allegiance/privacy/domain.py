"""Pure rules of personal data: which keys are personal, and how values are pseudonymised."""

from __future__ import annotations

from typing import Any

# Keys whose values are personal data wherever they appear (profiles, outbox payloads,
# shipping details, applications).
PERSONAL_KEYS = frozenset({
    "name", "email", "tax_id", "phone", "address", "first_name", "last_name", "full_name",
    "contact", "shipping", "application", "attributes", "external_id", "member_number_alias",
    "street", "city", "postal_code", "recipient",
})
REDACTED = "[erased]"


def scrub(value: Any, keys: frozenset[str] = PERSONAL_KEYS) -> Any:
    """A copy of ``value`` with the values of personal keys replaced, at any depth."""
    if isinstance(value, dict):
        return {k: (REDACTED if k in keys and v not in (None, "", {}, []) else scrub(v, keys))
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, keys) for v in value]
    return value


def mentions(value: Any, needles: frozenset[str]) -> bool:
    """Whether any string in ``value`` (at any depth) is one of ``needles``."""
    if isinstance(value, str):
        return value in needles
    if isinstance(value, dict):
        return any(mentions(v, needles) for v in value.values())
    if isinstance(value, list):
        return any(mentions(v, needles) for v in value)
    return False


def pseudonym(prefix: str, object_id: str) -> str:
    """A stable, non-personal stand-in name, e.g. ``Erased member 7QK2M4``."""
    return f"{prefix} {object_id[-6:].upper()}"
