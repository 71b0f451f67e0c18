"""Errors of rule definitions."""

from __future__ import annotations

from allegiance.kit.errors import ValidationFailed


class InvalidRule(ValidationFailed):
    code = "invalid_rule"
