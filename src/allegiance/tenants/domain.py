"""Pure checks for tenants, programs, units and API-key scopes."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from allegiance.kit.auth import SCOPES, scope_allows
from allegiance.kit.regions import region_eligible

__all__ = ["SCOPES", "region_eligible", "scope_allows"]

ENROLMENT_MODES = ("open", "application", "invitation", "automatic")
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder
        return False
    return True


def valid_code(code: str) -> bool:
    """Program and unit codes: lower-case letters, digits, ``-`` and ``_``; at most 64."""
    return bool(_CODE.match(code))


def valid_region(region: str) -> bool:
    """ISO 3166-1 alpha-2, optionally with an ISO 3166-2 subdivision (``US``, ``US-CA``)."""
    return bool(_REGION.match(region))
