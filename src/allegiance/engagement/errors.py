"""Errors of challenges, badges, leaderboards and surveys."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, ValidationFailed


class ChallengeNotFound(NotFound):
    code = "challenge_not_found"


class BadgeNotFound(NotFound):
    code = "badge_not_found"


class SurveyNotFound(NotFound):
    code = "survey_not_found"


class InvalidChallenge(ValidationFailed):
    code = "invalid_challenge"


class InvalidBadge(ValidationFailed):
    code = "invalid_badge"


class InvalidSurvey(ValidationFailed):
    code = "invalid_survey"


class InvalidAnswers(ValidationFailed):
    code = "invalid_answers"


class InvalidLeaderboard(ValidationFailed):
    code = "invalid_leaderboard"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class AlreadyAnswered(Conflict):
    code = "already_answered"


class SurveyClosed(Conflict):
    code = "survey_closed"


class MemberEventNotFound(NotFound):
    code = "member_event_not_found"


class InvalidMemberEvent(ValidationFailed):
    code = "invalid_member_event"


class EventFull(Conflict):
    code = "event_full"


class NotInvited(Conflict):
    code = "not_invited"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class MenuNotFound(NotFound):
    code = "menu_not_found"


class InvalidMenu(ValidationFailed):
    code = "invalid_menu"


class AlreadyPicked(Conflict):
    code = "already_picked"


class SuperTicketNotFound(NotFound):
    code = "super_ticket_not_found"


class InvalidSuperTicket(ValidationFailed):
    code = "invalid_super_ticket"


class AlreadyEntered(Conflict):
    code = "already_entered"


class EntriesClosed(Conflict):
    code = "entries_closed"


class CourseNotFound(NotFound):
    code = "course_not_found"


class CertificationNotFound(NotFound):
    code = "certification_not_found"


class InvalidCourse(ValidationFailed):
    code = "invalid_course"


class InvalidCertification(ValidationFailed):
    code = "invalid_certification"


class InvalidDefinitionItem(ValidationFailed):
    """An engagement object of a program definition that cannot be applied as written."""

    code = "invalid_definition"
