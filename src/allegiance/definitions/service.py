"""Programs as code: apply a definition document (program settings, units, product lists,
activity types, rules, tiers, engagement objects) as a new version; export a version; diff a
draft against one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from allegiance import audit, engagement, rules, tenants, tiers
from allegiance.definitions import versions
from allegiance.definitions.diff import Change, diff
from allegiance.definitions.errors import InvalidDefinition
from allegiance.definitions.validation import Problem, normalise, validate
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError, NotFound

PROGRAM_FIELDS = ("name", "time_zone", "base_currency", "enrolment_mode", "eligible_regions",
                  "adjustment_approval_threshold", "settings")
UNIT_FIELDS = ("name", "value_in_base", "negative_floor", "expiry_policy", "transferable")


def refuse(problems: list[Problem]) -> InvalidDefinition:
    """The error for an invalid document: the first path as ``field``, every problem in
    ``details.problems``."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return InvalidDefinition(f"{first.path}: {first.message}{more}", field=first.path,
                             problems=[p.to_dict() for p in problems])


def compile_document(document: Any) -> rules.CompiledProgram:
    """Validate the whole document and compile its rules; errors name the path."""
    problems = validate(document)
    if problems:
        raise refuse(problems)
    try:
        return rules.compile_program(document)
    except rules.RuleError as exc:  # pragma: no cover - validate() runs the same compiler
        raise InvalidDefinition(exc.message, field=exc.path) from exc


def _unit_settings(unit: dict[str, Any]) -> dict[str, Any]:
    out = {k: unit[k] for k in UNIT_FIELDS if k in unit and k != "expiry_policy"}
    if "expiry" in unit or "expiry_policy" in unit:
        out["expiry_policy"] = unit.get("expiry", unit.get("expiry_policy"))
    return out


def _apply_program(session: Session, tenant_id: str,
                   section: dict[str, Any]) -> tenants.Program:
    fields = {k: section[k] for k in PROGRAM_FIELDS if k in section}
    try:
        try:
            program = tenants.program_by_code(session, tenant_id, str(section["code"]))
        except NotFound:
            return tenants.create_program(session, tenant_id, code=str(section["code"]),
                                          **{"name": section.get("name", section["code"]),
                                             **fields})
        return tenants.update_program(session, tenant_id, program.id, fields)
    except AllegianceError as exc:
        if isinstance(exc, InvalidDefinition):
            raise
        raise InvalidDefinition(exc.message, field=f"program.{exc.field or 'code'}") from exc


def _apply_unit(session: Session, tenant_id: str, program_id: str, unit: dict[str, Any],
                index: int) -> str:
    """Create or update one unit; returns its id."""
    try:
        try:
            existing = tenants.unit_by_code(session, tenant_id, program_id, unit["code"])
        except NotFound:
            return tenants.create_unit(
                session, tenant_id, program_id, code=unit["code"], kind=unit["kind"],
                currency=unit.get("currency"),
                **{"name": unit.get("name", unit["code"]), **_unit_settings(unit)},
            ).id
        if unit.get("kind", existing.kind) != existing.kind:
            raise InvalidDefinition("a unit's kind cannot change", field=f"units[{index}].kind")
        if (unit.get("currency") or None) != existing.currency:
            raise InvalidDefinition("a unit's currency cannot change",
                                    field=f"units[{index}].currency")
        return tenants.update_unit(session, tenant_id, existing.id, _unit_settings(unit)).id
    except AllegianceError as exc:
        if isinstance(exc, InvalidDefinition):
            raise
        raise InvalidDefinition(exc.message,
                                field=f"units[{index}].{exc.field or 'code'}") from exc


def apply(
    session: Session,
    tenant_id: str,
    document: dict[str, Any],
    *,
    actor: str,
    effective_from: datetime | None = None,
) -> versions.Version:
    """Create or update the program, its units and tier ladders, then store the document as a
    new version (in force from ``effective_from``, default now)."""
    if effective_from is not None and effective_from.tzinfo is None:
        raise InvalidDefinition("effective_from needs a time zone offset",
                                field="effective_from")
    document = normalise(document)
    compiled = compile_document(document)
    program = _apply_program(session, tenant_id, document["program"])
    unit_ids = {
        str(unit["code"]): _apply_unit(session, tenant_id, program.id, unit, index)
        for index, unit in enumerate(document.get("units") or [])
    }
    _apply_tiers(session, tenant_id, program.id, document.get("tiers") or [])
    previous = versions.latest(session, tenant_id, program.id)
    version = versions.store(session, tenant_id, program.id, document, actor=actor,
                             effective_from=effective_from)
    # after the version is stored: a challenge's product list is looked up in it
    engagement.apply_definition(session, tenant_id, program.id, document.get("engagement"),
                                None if previous is None else previous.document.get("engagement"),
                                actor=actor)
    for rule in compiled.rules:
        unit_code = next((e.unit for e in rule.effects if e.unit), None)
        if rule.budget is not None and unit_code is not None:
            rules.fund_budget(session, tenant_id, program.id, unit_ids[unit_code], rule,
                              version_key=f"v{version.number}")
    audit.record(session, tenant_id, actor=actor, action="program.definition_applied",
                 object_type="program", object_id=program.id,
                 after={"version": version.number, "checksum": version.checksum})
    return version


def _apply_tiers(session: Session, tenant_id: str, program_id: str,
                 ladders: list[dict[str, Any]]) -> None:
    """Create the document's ladders and update the existing ones (matched by code)."""
    existing = {row.code: row for row in tiers.list_ladders(session, tenant_id, program_id)}
    for index, definition in enumerate(ladders):
        try:
            row = existing.get(str(definition.get("code")))
            if row is None:
                tiers.create_ladder(session, tenant_id, program_id, definition)
            else:
                tiers.update_ladder(session, tenant_id, row.id, definition)
        except AllegianceError as exc:
            exc.field = f"tiers[{index}]" + (f".{exc.field}" if exc.field else "")
            raise


def export(session: Session, tenant_id: str, program_id: str,
           version: int | None = None) -> versions.Version:
    """The given version of a program's definition (default: the latest)."""
    tenants.get_program(session, tenant_id, program_id)
    if version is None:
        found = versions.latest(session, tenant_id, program_id)
    else:
        found = next((versions.Version(row.program_id, row.version, row.effective_from,
                                       row.document, rules.compile_program(row.document),
                                       row.checksum)
                      for row in versions.list_versions(session, tenant_id, program_id)
                      if row.version == version), None)
    if found is None:
        what = "no definition has been applied" if version is None else f"no version {version}"
        raise NotFound(f"program {program_id}: {what}", field="version")
    return found


def diff_draft(session: Session, tenant_id: str, program_id: str, draft: Any, *,
               against: int | None = None) -> tuple[versions.Version, list[Change]]:
    """The changes from the version in force now (or version ``against``) to ``draft``."""
    if against is None:
        base = versions.version_at(session, tenant_id, program_id, clock.now())
        if base is None:
            base = export(session, tenant_id, program_id)
    else:
        base = export(session, tenant_id, program_id, against)
    return base, diff(base.document, normalise(draft))
