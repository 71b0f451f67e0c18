"""Errors of operator users, sessions and portal credentials."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationFailed


class OperatorNotFound(NotFound):
    code = "operator_not_found"


class OperatorExists(Conflict):
    code = "operator_exists"


class InvalidPassword(ValidationFailed):
    code = "invalid_password"


class SignInFailed(Unauthorized):
    code = "sign_in_failed"


class TooManyAttempts(RateLimited):
    code = "too_many_sign_in_attempts"


class InvalidLink(ValidationFailed):
    code = "invalid_link"
