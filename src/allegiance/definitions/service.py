"""Programs as code: apply a definition document (program settings, units, product lists,
activity types, rules, tiers) as a new version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from allegiance import audit, rules, tenants
from allegiance.definitions import versions
from allegiance.definitions.errors import InvalidDefinition
from allegiance.kit.errors import AllegianceError, NotFound

PROGRAM_FIELDS = ("name", "time_zone", "base_currency", "enrolment_mode", "eligible_regions",
                  "adjustment_approval_threshold", "settings")
UNIT_FIELDS = ("name", "value_in_base", "negative_floor", "expiry_policy", "transferable")


def compile_document(document: Any) -> rules.CompiledProgram:
    """Check the parts every definition needs and compile its rules; errors name the path."""
    if not isinstance(document, dict):
        raise InvalidDefinition("a program definition is a mapping", field="$")
    program = document.get("program")
    if not isinstance(program, dict) or not program.get("code"):
        raise InvalidDefinition("program.code is required", field="program.code")
    try:
        return rules.compile_program(document)
    except rules.RuleError as exc:
        raise InvalidDefinition(exc.message, field=exc.path) from exc


def _unit_settings(unit: dict[str, Any]) -> dict[str, Any]:
    out = {k: unit[k] for k in UNIT_FIELDS if k in unit and k != "expiry_policy"}
    if "expiry" in unit or "expiry_policy" in unit:
        out["expiry_policy"] = unit.get("expiry", unit.get("expiry_policy"))
    return out


def apply(
    session: Session,
    tenant_id: str,
    document: dict[str, Any],
    *,
    actor: str,
    effective_from: datetime | None = None,
) -> versions.Version:
    """Create or update the program and its units, then store the document as a new version."""
    compiled = compile_document(document)
    section = document["program"]
    fields = {k: section[k] for k in PROGRAM_FIELDS if k in section}
    try:
        try:
            program = tenants.program_by_code(session, tenant_id, str(section["code"]))
            program = tenants.update_program(session, tenant_id, program.id, fields)
        except NotFound:
            if "base_currency" not in fields:
                raise InvalidDefinition("program.base_currency is required",
                                        field="program.base_currency") from None
            program = tenants.create_program(session, tenant_id, code=str(section["code"]),
                                             **{"name": section.get("name", section["code"]),
                                                **fields})
        unit_ids: dict[str, str] = {}
        for index, unit in enumerate(document.get("units") or []):
            try:
                existing = tenants.unit_by_code(session, tenant_id, program.id, unit["code"])
                changes = _unit_settings(unit)
                if unit.get("kind", existing.kind) != existing.kind:
                    raise InvalidDefinition("a unit's kind cannot change",
                                            field=f"units[{index}].kind")
                existing = tenants.update_unit(session, tenant_id, existing.id, changes)
                unit_ids[existing.code] = existing.id
            except NotFound:
                created = tenants.create_unit(
                    session, tenant_id, program.id, code=unit["code"],
                    name=unit.get("name", unit["code"]), kind=unit["kind"],
                    currency=unit.get("currency"), **_unit_settings(unit),
                )
                unit_ids[created.code] = created.id
    except InvalidDefinition:
        raise
    except AllegianceError as exc:
        prefix = "program" if exc.field in PROGRAM_FIELDS or exc.field == "code" else "units"
        raise InvalidDefinition(exc.message, field=f"{prefix}.{exc.field}") from exc
    version = versions.store(session, tenant_id, program.id, document, actor=actor,
                             effective_from=effective_from)
    for rule in compiled.rules:
        unit_code = next((e.unit for e in rule.effects if e.unit), None)
        if rule.budget is not None and unit_code is not None:
            rules.fund_budget(session, tenant_id, program.id, unit_ids[unit_code], rule,
                              version_key=f"v{version.number}")
    audit.record(session, tenant_id, actor=actor, action="program.definition_applied",
                 object_type="program", object_id=program.id,
                 after={"version": version.number, "checksum": version.checksum})
    return version
