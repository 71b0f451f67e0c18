"""Tenants, programs, units and API keys: the public surface other features use."""

from allegiance.kit.auth import Principal
from allegiance.tenants.domain import region_eligible, scope_allows
from allegiance.tenants.models import ApiKey, Program, Unit
from allegiance.tenants.service import (
    IssuedKey,
    authenticate,
    cached_principal,
    create_api_key,
    create_program,
    create_tenant,
    create_unit,
    get_program,
    get_tenant,
    get_unit,
    last_use_due,
    list_api_keys,
    list_programs,
    list_units,
    program_by_code,
    program_by_code_or_id,
    revoke_api_key,
    rotate_api_key,
    touch_api_key,
    unit_by_code,
    unit_expiry,
    update_program,
    update_unit,
)

__all__ = [
    "ApiKey", "IssuedKey", "Principal", "Program", "Unit", "authenticate", "cached_principal", "create_api_key",
    "create_program", "create_tenant", "create_unit", "get_program", "get_tenant", "get_unit",
    "last_use_due", "list_api_keys", "list_programs", "list_units", "program_by_code", "program_by_code_or_id", "region_eligible",
    "revoke_api_key", "rotate_api_key", "scope_allows", "touch_api_key", "unit_by_code", "unit_expiry",
    "update_program", "update_unit",
]
