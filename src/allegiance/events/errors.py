"""Errors of the events feature."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class EventNotFound(NotFound):
    code = "event_not_found"


class InvalidEvent(ValidationFailed):
    code = "validation_error"


class NotEnrolled(ValidationFailed):
    """The matched account is not enrolled and the program does not enrol automatically."""

    code = "not_enrolled"


class NoDefinition(ValidationFailed):
    code = "program_has_no_definition"


class ReturnTooLarge(ValidationFailed):
    code = "return_exceeds_purchase"


class NotReturnable(ValidationFailed):
    code = "not_returnable"


class NotUnmatched(Conflict):
    code = "event_not_unmatched"
