"""Simulate a draft program definition over a period of history: read the period's events,
evaluate them under the draft and under the definition in force (columnar), compare. Reads
only: nothing is written, neither the ledger nor anything else."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from allegiance import definitions, tenants, tiers
from allegiance.kit.errors import NotFound
from allegiance.simulation import counters, engine, history
from allegiance.simulation.errors import InvalidPeriod, NoBaseline, WrongProgram

MAX_DAYS = 3700


@dataclass
class Simulation:
    program_id: str
    program_code: str
    start: datetime
    end: datetime
    baseline_version: int
    base_currency: str
    comparison: engine.Comparison

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "program_id": self.program_id, "program": self.program_code,
            "from": self.start.isoformat(), "to": self.end.isoformat(),
            "baseline_version": self.baseline_version, "base_currency": self.base_currency,
            "events": c.events, "members": c.members, "baseline": c.baseline,
            "draft": c.draft, "rules": c.rules, "tiers": c.tiers,
            "top_earners": c.top_earners, "tier_changes": c.tier_changes,
            "daily": c.daily, "notes": c.notes,
            "seconds": {k: round(v, 3) for k, v in c.seconds.items()},
        }


def _value(raw: Any) -> Decimal | None:
    if raw is None:
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        return None


def side(session: Session, tenant_id: str, program: tenants.Program, name: str,
         document: dict[str, Any], compiled: Any) -> engine.Side:
    """A document as a simulation side: its units' values in base currency (the document's,
    else the stored unit's, else 0), its ladders, its time zone."""
    units: dict[str, engine.Unit] = {}
    for unit in document.get("units") or []:
        code = str(unit.get("code"))
        value = _value(unit.get("value_in_base"))
        if value is None:
            try:
                value = tenants.unit_by_code(session, tenant_id, program.id, code).value_in_base
            except NotFound:
                value = Decimal(0)
        units[code] = engine.Unit(code, str(unit.get("kind", "points")), Decimal(value))
    ladders = tuple(tiers.from_dict(t) for t in document.get("tiers") or [])
    zone = (document.get("program") or {}).get("time_zone") or program.time_zone
    return engine.Side(name, compiled, units, ladders, str(zone))


def simulate(session: Session, tenant_id: str, program_id: str, draft: Any, start: datetime,
             end: datetime, *, top: int = 10) -> Simulation:
    """Replay the events of ``[start, end)`` under ``draft`` and under the definition in
    force at ``start``; compare issue, cost, liability, tiers, earners and rules."""
    started = time.perf_counter()
    program = tenants.get_program(session, tenant_id, program_id)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidPeriod("the period's dates need a time zone offset", field="from")
    if end <= start:
        raise InvalidPeriod("the period ends before it starts", field="to")
    if (end - start).days > MAX_DAYS:
        raise InvalidPeriod(f"the period is longer than {MAX_DAYS} days", field="to")
    compiled = definitions.compile_document(draft)
    document = definitions.normalise(draft)
    code = (document.get("program") or {}).get("code")
    if code is not None and code != program.code:
        raise WrongProgram(f"the draft is a definition of program {code}, not {program.code}",
                           field="program.code")
    base = definitions.version_at(session, tenant_id, program_id, start)
    notes: list[str] = []
    if base is None:
        raise NoBaseline("the program has no definition in force at the period's start",
                         field="from")
    later = [v.version for v in definitions.list_versions(session, tenant_id, program_id)
             if start < v.effective_from < end]
    if later:
        notes.append(f"version(s) {', '.join(map(str, later))} took effect during the period; "
                     f"the baseline is version {base.number} throughout")
    baseline = side(session, tenant_id, program, f"v{base.number}", base.document,
                    base.compiled)
    drafted = side(session, tenant_id, program, "draft", document, compiled)
    types = {**baseline.compiled.types, **drafted.compiled.types}
    lines, labels = history.load(session, tenant_id, program_id, start, end, types,
                                 drafted.time_zone)
    replayed, counter_notes = counters.definitions_of(drafted.compiled, baseline.compiled)
    if replayed:
        lines = counters.replay(lines, replayed)
    liability = history.liability_at(session, tenant_id, program_id, end)
    recorded = history.recorded_awards(session, tenant_id, program_id, start, end)
    loaded = time.perf_counter() - started
    comparison = engine.compare(baseline, drafted, lines, top=top, liability=liability,
                                recorded=recorded, labels=labels)
    comparison.notes[:0] = notes
    if any(n.startswith("member.counters.") for n in types):
        comparison.notes.append("member.counters.* counted from the period's events (from 0 "
                                "at its start)")
        comparison.notes.extend(counter_notes)
    comparison.seconds["load"] = loaded
    comparison.seconds["total"] = time.perf_counter() - started
    return Simulation(program.id, program.code, start, end, base.number,
                      program.base_currency, comparison)


def program_for(session: Session, tenant_id: str, draft: Any) -> str:
    """The id of the program a draft document defines (by its program.code)."""
    code = ((draft or {}).get("program") or {}).get("code") if isinstance(draft, dict) \
        else None
    if not code:
        raise WrongProgram("the draft names no program (program.code)", field="program.code")
    return tenants.program_by_code(session, tenant_id, str(code)).id
