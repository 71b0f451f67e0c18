"""The people who sign in to the web apps: operator users (a tenant's staff, with roles) and
the portal credentials of member users; their sessions and sign-in throttling."""

from allegiance.operators import portal, sessions
from allegiance.operators.domain import (
    PERMISSIONS,
    ROLE_NAMES,
    ROLES,
    hash_token,
    may,
    new_token,
    normal_email,
    password_problem,
    same_secret,
)
from allegiance.operators.errors import (
    InvalidLink,
    InvalidPassword,
    OperatorExists,
    OperatorNotFound,
    SignInFailed,
    TooManyAttempts,
)
from allegiance.operators.models import OperatorUser, PortalInvitation, WebSession
from allegiance.operators.passwords import hash_password, verify_password
from allegiance.operators.service import (
    check_password,
    create_operator,
    get_operator,
    list_operators,
    operator_by_email,
    set_password,
    update_operator,
    verify,
)
from allegiance.operators.throttle import Throttle

__all__ = [
    "PERMISSIONS", "ROLES", "ROLE_NAMES", "InvalidLink", "InvalidPassword", "OperatorExists",
    "OperatorNotFound", "OperatorUser", "PortalInvitation", "SignInFailed", "Throttle",
    "TooManyAttempts", "WebSession", "check_password", "create_operator", "get_operator",
    "hash_password", "hash_token", "list_operators", "may", "new_token", "normal_email",
    "operator_by_email", "password_problem", "portal", "same_secret", "sessions",
    "set_password", "update_operator", "verify", "verify_password",
]
