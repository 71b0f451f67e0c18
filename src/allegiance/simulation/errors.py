"""Errors of simulations (stable codes for the API)."""

from __future__ import annotations

from allegiance.kit.errors import NotFound, ValidationFailed


class InvalidPeriod(ValidationFailed):
    code = "invalid_period"


class NoBaseline(NotFound):
    code = "no_definition_in_force"


class WrongProgram(ValidationFailed):
    code = "draft_of_another_program"
