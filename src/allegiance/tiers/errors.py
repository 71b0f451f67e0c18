"""Errors of tier ladders, metrics and placements."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class LadderNotFound(NotFound):
    code = "tier_ladder_not_found"


class AccountNotFound(NotFound):
    code = "account_not_found"


class DuplicateLadder(Conflict):
    code = "duplicate_tier_ladder"


class LevelInUse(Conflict):
    code = "tier_level_in_use"


class InvalidLadder(ValidationFailed):
    code = "invalid_tier_ladder"
