"""Validation of a program definition document: every problem, each with its exact path.

``validate(document)`` never raises on bad input; it returns a list of :class:`Problem` (empty
when the document can be applied). Paths read like ``units[1].currency``,
``rules[2].effects[0].rate`` or ``tiers[0].levels[3].threshold``.

The rules part is checked by :func:`allegiance.rules.compile_program`, which stops at its first
problem (a rule cannot be checked further once a unit or list it names is unknown); every other
section is checked completely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from allegiance import engagement, rules, tiers
from allegiance.kit.expiry import ExpiryPolicy
from allegiance.kit.money import is_currency_code

SECTIONS = ("program", "units", "product_lists", "activity_types", "member_attributes",
            "counters", "rules", "tiers", "engagement")
PROGRAM_FIELDS = ("code", "name", "time_zone", "base_currency", "enrolment_mode",
                  "eligible_regions", "adjustment_approval_threshold", "settings")
UNIT_FIELDS = ("code", "name", "kind", "currency", "value_in_base", "negative_floor", "expiry",
               "expiry_policy", "transferable")
ENROLMENT_MODES = ("open", "application", "invitation", "automatic")
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
_LEADING_PATH = re.compile(r"^([A-Za-z_][\w:-]*(?:\[\d+\])?(?:\.[\w:-]+(?:\[\d+\])?)*) (.*)$")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


def normalise(value: Any) -> Any:
    """The document as plain JSON data: YAML dates and times become ISO 8601 text."""
    if isinstance(value, Mapping):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


MAX_INT = 2**63 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 200


def _valid_zone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder
        return False
    return True


def _program(section: Any, out: list[Problem]) -> None:
    if not isinstance(section, Mapping):
        out.append(Problem("program", "is required: a mapping with at least code, name and "
                                      "base_currency"))
        return
    for key in section:
        if key not in PROGRAM_FIELDS:
            out.append(Problem(f"program.{key}", "is not a known program field (known: "
                                                 f"{', '.join(PROGRAM_FIELDS)})"))
    code = section.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        out.append(Problem("program.code", "is required: lower-case letters, digits, '-' and '_'"
                                           " (at most 64)"))
    if "name" in section and not _is_name(section["name"]):
        out.append(Problem("program.name", "must be a non-empty text of at most 200 characters"))
    if "time_zone" in section and not _valid_zone(section["time_zone"]):
        out.append(Problem("program.time_zone",
                           f"unknown time zone {section['time_zone']!r} (use an IANA name such "
                           "as Europe/Paris)"))
    currency = section.get("base_currency")
    if currency is None:
        out.append(Problem("program.base_currency", "is required (an ISO 4217 code, e.g. USD)"))
    elif not is_currency_code(str(currency)):
        out.append(Problem("program.base_currency", f"{currency!r} is not an ISO 4217 code"))
    mode = section.get("enrolment_mode")
    if mode is not None and mode not in ENROLMENT_MODES:
        out.append(Problem("program.enrolment_mode",
                           f"must be one of {', '.join(ENROLMENT_MODES)}"))
    regions = section.get("eligible_regions")
    if regions is not None:
        if not isinstance(regions, list):
            out.append(Problem("program.eligible_regions",
                               "must be a list of ISO 3166 codes (US, US-CA)"))
        else:
            for index, region in enumerate(regions):
                if not isinstance(region, str) or not _REGION.match(region):
                    out.append(Problem(f"program.eligible_regions[{index}]",
                                       f"{region!r} is not an ISO 3166 code (US, US-CA)"))
    threshold = section.get("adjustment_approval_threshold")
    if threshold is not None and (not _is_int(threshold) or threshold < 0):
        out.append(Problem("program.adjustment_approval_threshold",
                           "must be a whole number, zero or more"))
    if "settings" in section and not isinstance(section["settings"], Mapping):
        out.append(Problem("program.settings", "must be a mapping"))


def _unit(unit: Any, path: str, seen: set[str], out: list[Problem]) -> str | None:
    if not isinstance(unit, Mapping):
        out.append(Problem(path, "a unit is a mapping with code and kind"))
        return None
    for key in unit:
        if key not in UNIT_FIELDS:
            out.append(Problem(f"{path}.{key}", "is not a known unit field (known: "
                                                f"{', '.join(UNIT_FIELDS)})"))
    code = unit.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        out.append(Problem(f"{path}.code", "is required: lower-case letters, digits, '-' and "
                                           "'_' (at most 64)"))
        code = None
    elif code in seen:
        out.append(Problem(f"{path}.code", f"unit code {code!r} is used twice"))
    else:
        seen.add(code)
    if "name" in unit and not _is_name(unit["name"]):
        out.append(Problem(f"{path}.name", "must be a non-empty text of at most 200 characters"))
    kind = unit.get("kind")
    currency = unit.get("currency")
    if kind not in ("points", "money"):
        out.append(Problem(f"{path}.kind", "must be points or money"))
    elif kind == "money" and not is_currency_code(str(currency or "")):
        out.append(Problem(f"{path}.currency", "a money unit needs an ISO 4217 currency"))
    elif kind == "points" and currency:
        out.append(Problem(f"{path}.currency", "a points unit has no currency"))
    if "value_in_base" in unit:
        try:
            value = Decimal(str(unit["value_in_base"]))
            ok = (value.is_finite() and 0 <= value < 10**14
                  and not isinstance(unit["value_in_base"], bool))
        except InvalidOperation:
            ok = False
        if not ok:
            out.append(Problem(f"{path}.value_in_base",
                               "must be a number, zero or more (below 10^14)"))
    floor = unit.get("negative_floor")
    if floor is not None and (not _is_int(floor) or floor > 0):
        out.append(Problem(f"{path}.negative_floor", "must be a whole number, zero or negative"))
    if "transferable" in unit and not isinstance(unit["transferable"], bool):
        out.append(Problem(f"{path}.transferable", "must be true or false"))
    if "expiry" in unit and "expiry_policy" in unit:
        out.append(Problem(f"{path}.expiry_policy", "give expiry or expiry_policy, not both"))
    for key in ("expiry", "expiry_policy"):
        if key in unit:
            policy = unit[key]
            if policy is not None and not isinstance(policy, Mapping):
                out.append(Problem(f"{path}.{key}", "must be a mapping such as "
                                                    "{kind: after_months, months: 24}"))
                continue
            try:
                ExpiryPolicy.from_dict(policy)
            except (ValueError, TypeError) as exc:
                out.append(Problem(f"{path}.{key}", str(exc)))
    return code


def _split(message: str, prefix: str) -> Problem:
    """A tiers-domain message ``levels[1].threshold must be …`` as a Problem with a path."""
    found = _LEADING_PATH.match(message)
    if found and found.group(2).startswith(("must", "is ", "may ", "'")):
        return Problem(f"{prefix}.{found.group(1)}", found.group(2))
    return Problem(prefix, message)


def _tiers(raw: Any, units: Mapping[str, str], out: list[Problem]) -> set[str]:
    """Check every ladder; returns the codes of every level of every valid ladder."""
    levels: set[str] = set()
    if raw is None:
        return levels
    if not isinstance(raw, list):
        out.append(Problem("tiers", "must be a list of ladders"))
        return levels
    codes: set[str] = set()
    primary: str | None = None
    for index, data in enumerate(raw):
        path = f"tiers[{index}]"
        try:
            ladder = tiers.from_dict(data)
        except ValueError as exc:
            out.append(_split(str(exc), path))
            continue
        except TypeError as exc:  # a value of the wrong type deep inside the ladder
            out.append(Problem(path, f"is not a valid ladder: {exc}"))
            continue
        if ladder.code in codes:
            out.append(Problem(f"{path}.code", f"ladder code {ladder.code!r} is used twice"))
        codes.add(ladder.code)
        if ladder.primary:
            if primary is not None:
                out.append(Problem(f"{path}.primary",
                                   f"ladder {primary!r} is already the primary ladder"))
            primary = ladder.code
        if ladder.metric == "points_earned" and "points" not in units.values():
            out.append(Problem(f"{path}.metric",
                               "points_earned needs a points unit in units"))
        if ladder.period.kind == "anniversary":
            for metric in ladder.required_metrics:
                if metric in ("points_earned", "spend", "count"):
                    out.append(Problem(f"{path}.levels",
                                       "an anniversary ladder may only require reported "
                                       "metrics"))
        levels.update(level.code for level in ladder.levels)
    return levels


def _tier_constants(node: Any) -> list[str]:
    """Text constants compared with ``member.tier`` anywhere in a compiled condition."""
    found: list[str] = []
    args = getattr(node, "args", None)
    if not isinstance(args, tuple):
        return found
    if any(getattr(a, "op", None) == "field" and a.args[0] == "member.tier" for a in args):
        for arg in args:
            if getattr(arg, "op", None) == "const":
                value = arg.args[0]
                items = value if isinstance(value, tuple) else (value,)
                found.extend(str(v) for v in items if isinstance(v, str))
    for arg in args:
        found.extend(_tier_constants(arg))
    return found


def _counters(document: Mapping[str, Any], out: list[Problem]) -> None:
    counters = document.get("counters")
    types = document.get("activity_types")
    if not isinstance(counters, Mapping):
        return
    known = set(types) if isinstance(types, Mapping) else set()
    for name, spec in counters.items():
        if not isinstance(spec, Mapping):
            continue
        trigger = str(spec.get("trigger", "purchase"))
        if trigger in ("purchase", "activity"):
            continue
        if not trigger.startswith("activity:"):
            out.append(Problem(f"counters.{name}.trigger",
                               "must be purchase, activity or activity:<type>"))
        elif trigger[9:] not in known:
            out.append(Problem(f"counters.{name}.trigger",
                               f"unknown activity type {trigger[9:]!r}"))


def _too_large(value: Any, path: str, out: list[Problem]) -> None:
    """Whole numbers anywhere must fit in 64 bits (amounts, budgets, thresholds)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _too_large(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _too_large(item, f"{path}[{index}]", out)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        out.append(Problem(path, "is too large (at most 9,223,372,036,854,775,807)"))


def validate(document: Any) -> list[Problem]:
    """Every problem of ``document`` (empty when it can be applied)."""
    if not isinstance(document, Mapping):
        return [Problem("$", "a program definition is a mapping of sections "
                             f"({', '.join(SECTIONS)})")]
    out: list[Problem] = []
    _too_large(document, "", out)
    if out:
        return out
    for key in document:
        if key not in SECTIONS:
            out.append(Problem(str(key), f"is not a known section (known: {', '.join(SECTIONS)})"))
    _program(document.get("program"), out)
    units: dict[str, str] = {}
    raw_units = document.get("units")
    if raw_units is None or raw_units == []:
        out.append(Problem("units", "a program needs at least one unit"))
    elif not isinstance(raw_units, list):
        out.append(Problem("units", "must be a list of units"))
    else:
        seen: set[str] = set()
        for index, unit in enumerate(raw_units):
            code = _unit(unit, f"units[{index}]", seen, out)
            if code is not None and isinstance(unit, Mapping):
                units[code] = str(unit.get("kind"))
    _counters(document, out)
    levels = _tiers(document.get("tiers"), units, out)
    unit_problem = any(p.path.startswith("units") for p in out)
    compiled = None
    try:
        compiled = rules.compile_program(
            {k: v for k, v in document.items() if k != "units"} | {
                "units": [{"code": c, "kind": k} for c, k in units.items()]
            }
        )
    except rules.RuleError as exc:
        if not (unit_problem and exc.path.startswith("units")):
            out.append(Problem(exc.path, exc.message))
    except (TypeError, AttributeError, ValueError) as exc:  # malformed beyond the rule parser
        out.append(Problem("rules", f"cannot be read: {exc}"))
    out.extend(Problem(path, message)
               for path, message in engagement.check_definition(document.get("engagement"),
                                                                document))
    tier_problem = any(p.path.startswith("tiers") for p in out)
    if compiled is not None and document.get("tiers") is not None and not tier_problem:
        for index, rule in enumerate(compiled.rules):
            for value in _tier_constants(rule.condition):
                if value not in levels:
                    out.append(Problem(f"rules[{index}].condition",
                                       f"member.tier is compared with {value!r}, which is not a "
                                       "level of any ladder in tiers"))
    return out
