"""Accounts (a hierarchy of member businesses), users and their roles, enrolments,
applications, invitations and merges: the public surface other features use."""

from allegiance.members.domain import (
    ROLES,
    Relation,
    may_change_status,
    may_spend,
    may_transfer,
    may_view_wallet,
    relation,
)
from allegiance.members.enrolments import (
    accept_invitation,
    approve_application,
    change_enrolment_status,
    end_enrolments,
    enrol,
    enrolment_history,
    ensure_enrolled,
    get_enrolment,
    invite,
    list_enrolments,
    reject_application,
    revoke_invitation,
)
from allegiance.members.errors import AccountErased, AccountNotFound
from allegiance.members.merge import merge_accounts, transfer_as_user, user_may, wallet_relation
from allegiance.members.models import (
    Account,
    AccountExternalId,
    Enrolment,
    EnrolmentChange,
    Invitation,
    User,
)
from allegiance.members.service import (
    add_user,
    ancestors,
    create_account,
    descendants,
    external_ids_of,
    find_account,
    get_account,
    get_user,
    list_accounts,
    list_users,
    refuse_erased,
    update_account,
    update_user,
)

__all__ = [
    "ROLES", "Account", "AccountErased", "AccountExternalId", "AccountNotFound", "Enrolment",
    "EnrolmentChange", "Invitation", "Relation", "User", "accept_invitation", "add_user",
    "ancestors", "approve_application", "change_enrolment_status", "create_account",
    "descendants", "end_enrolments", "enrol", "enrolment_history", "ensure_enrolled",
    "external_ids_of", "find_account", "get_account", "get_enrolment", "get_user", "invite",
    "list_accounts", "list_enrolments", "list_users", "may_change_status", "may_spend",
    "may_transfer", "may_view_wallet", "merge_accounts", "refuse_erased", "reject_application",
    "relation", "revoke_invitation", "transfer_as_user", "update_account", "update_user",
    "user_may", "wallet_relation",
]
