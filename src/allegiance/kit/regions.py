"""Region rules shared by program enrolment and reward eligibility (pure, stdlib only)."""

from __future__ import annotations

from collections.abc import Collection


def region_eligible(eligible: Collection[str], region: str | None) -> bool:
    """Whether a member in ``region`` (ISO 3166: ``US`` or ``US-NY``) falls within ``eligible``.

    An empty list means everywhere; a country in the list admits all its subdivisions
    (``US`` admits ``US-NY``), a subdivision admits only itself. Codes compare without case.
    """
    if not eligible:
        return True
    if region is None:
        return False
    allowed = {r.upper() for r in eligible}
    region = region.upper()
    return region in allowed or region.split("-", 1)[0] in allowed
