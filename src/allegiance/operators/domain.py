"""Who may do what in the web apps, and the small pure rules of signing in.

Operator roles and their permissions live here and only here: every admin page and action
asks :func:`may` (through the web layer's ``require``), so a role's powers read in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ROLES = ("owner", "program_manager", "finance", "support", "read_only")

ROLE_NAMES = {
    "owner": "Owner",
    "program_manager": "Program manager",
    "finance": "Finance",
    "support": "Support",
    "read_only": "Read-only",
}

# Every permission an admin page or action may need.
PERMISSIONS = (
    "view",            # see dashboards, members, queues, catalogue, designer
    "adjust",          # manual point adjustments with a reason
    "place_tier",      # put a member on a tier level by hand
    "suspend",         # suspend or reactivate a member's enrolment
    "invite",          # send a portal invitation (password set) to a member user
    "redemptions",     # approve, reject and fulfil redemptions
    "catalogue",       # change rewards (stock, status)
    "designer",        # apply a program definition
    "operators",       # manage operator users
    "enrolments",      # approve or reject enrolment applications
    "mdf",             # decide co-marketing pre-approval requests and fund claims
    "imports",         # upload files that start an import job
)

GRANTS: dict[str, frozenset[str]] = {
    "owner": frozenset(PERMISSIONS),
    "program_manager": frozenset({"view", "place_tier", "suspend", "invite", "redemptions",
                                  "catalogue", "designer",
                                  "enrolments",
                                  "mdf",
                                  "imports"}),
    "finance": frozenset({"view", "adjust", "redemptions",
                          "mdf"}),
    "support": frozenset({"view", "adjust", "place_tier", "suspend", "invite", "redemptions",
                          "enrolments"}),
    "read_only": frozenset({"view"}),
}


def may(role: str, permission: str) -> bool:
    """True when ``role`` grants ``permission`` (unknown roles and permissions grant nothing)."""
    return permission in GRANTS.get(role, frozenset())


MIN_PASSWORD = 12
MAX_PASSWORD = 256


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why a new password is refused, or None. Length over composition rules (NIST 800-63B)."""
    if len(password) < MIN_PASSWORD:
        return f"use at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"use at most {MAX_PASSWORD} characters"
    if "\x00" in password:
        return "the password must not contain NUL characters"
    if email and password.strip().lower() == email.strip().lower():
        return "the password must not be your e-mail address"
    if len(set(password)) < 4:
        return "the password repeats too few characters"
    return None


def new_token() -> str:
    """A random secret for a cookie or a link (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are stored hashed: a leaked table holds no usable session or link."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def normal_email(email: str) -> str:
    return email.strip().lower()
