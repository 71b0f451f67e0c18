"""Errors of program definitions: every one names the path of the problem."""

from __future__ import annotations

from allegiance.kit.errors import ValidationFailed


class InvalidDefinition(ValidationFailed):
    code = "invalid_definition"
