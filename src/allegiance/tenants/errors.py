"""Errors of tenants, programs, units and API keys."""

from __future__ import annotations

from allegiance.kit.errors import Conflict, NotFound, Unauthorized


class TenantNotFound(NotFound):
    code = "tenant_not_found"


class ProgramNotFound(NotFound):
    code = "program_not_found"


class UnitNotFound(NotFound):
    code = "unit_not_found"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class InvalidApiKey(Unauthorized):
    code = "invalid_api_key"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class ApiKeyNotUsable(Conflict):
    code = "api_key_not_usable"
