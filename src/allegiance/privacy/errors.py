"""Errors of GDPR operations."""

from __future__ import annotations

from allegiance.kit.errors import Conflict


class AlreadyErased(Conflict):
    code = "already_erased"
