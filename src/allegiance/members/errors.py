"""Errors of accounts, users, enrolments and invitations, each with a stable code."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed


class AccountNotFound(NotFound):
    code = "account_not_found"


class UserNotFound(NotFound):
    code = "user_not_found"


class EnrolmentNotFound(NotFound):
    code = "enrolment_not_found"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"


class WalletNotFound(NotFound):
    code = "wallet_not_found"


class DuplicateMemberNumber(Conflict):
    code = "duplicate_member_number"


class DuplicateExternalId(Conflict):
    code = "duplicate_external_id"


class DuplicateEmail(Conflict):
    code = "duplicate_email"


class HierarchyCycle(ValidationFailed):
    code = "hierarchy_cycle"


class AccountNotActive(Conflict):
    """The account is merged or closed."""

    code = "account_not_active"


class AccountErased(AccountNotActive):
    """The account was erased (GDPR): it earns nothing, changes nothing and joins nothing."""

    code = "account_erased"


class UserNotActive(Forbidden):
    code = "user_not_active"


class RegionNotEligible(Forbidden):
    code = "region_not_eligible"


class AlreadyEnrolled(Conflict):
    code = "already_enrolled"


class NotEnrolled(Forbidden):
    """The account has no active enrolment and the program does not enrol automatically."""

    code = "not_enrolled"


class InvalidStatusTransition(Conflict):
    code = "invalid_status_transition"


class InvitationRequired(Forbidden):
    code = "invitation_required"


class InvitationExpired(Conflict):
    code = "invitation_expired"


class InvitationRevoked(Conflict):
    code = "invitation_revoked"


class InvitationUsed(Conflict):
    code = "invitation_already_used"


class InvitationForOther(Forbidden):
    """The invitation names another account or program."""

    code = "invitation_not_for_you"


class InvalidMerge(ValidationFailed):
    code = "invalid_merge"


class PendingHolds(Conflict):
    code = "pending_holds"


class RoleForbidden(Forbidden):
    code = "role_forbidden"
