"""Errors of exchange rates."""

from __future__ import annotations

from allegiance.kit.errors import ValidationFailed


class FxRateMissing(ValidationFailed):
    code = "fx_rate_missing"


class InvalidRate(ValidationFailed):
    code = "invalid_fx_rate"
