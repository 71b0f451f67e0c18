"""Pure logic of segments and campaigns: which member fields a segment condition may use,
the earning rule a campaign becomes, and who enters or leaves a segment on refresh."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

BASE_MEMBER_FIELDS = {"member.tier": "str", "member.region": "str", "member.country": "str",
                      "member.enrolled_days": "int"}
NOT_FOR_SEGMENTS = ("member.segments", "member.role")
RULE_PREFIX = "campaign:"


def segment_fields(types: Mapping[str, str]) -> dict[str, str]:
    """The fields a segment condition may read: the member's own (tier, region, country,
    enrolled days, declared attributes, counters), not the event's, the user's or other
    segments."""
    out = dict(BASE_MEMBER_FIELDS)
    out.update({name: kind for name, kind in types.items()
                if name.startswith("member.") and name not in NOT_FOR_SEGMENTS})
    return out


def changes(before: Iterable[str], after: Iterable[str]) -> tuple[list[str], list[str]]:
    """(entered, left), each sorted."""
    old, new = set(before), set(after)
    return sorted(new - old), sorted(old - new)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def campaign_rule(code: str, name: str, rule: Mapping[str, Any], segments: Sequence[str],
                  starts_at: datetime, ends_at: datetime, budget: int | None,
                  program_rules: Sequence[str]) -> dict[str, Any]:
    """The campaign as a rule document of the program's rule format: its condition is
    narrowed to the members of ``segments`` (any of them) and its validity to the window; a
    multiplier without ``applies_to`` multiplies every rule of the program in
    ``program_rules``."""
    condition = rule.get("condition")
    parts = []
    if segments:
        parts.append("(" + " or ".join(f"{_quote(s)} in member.segments"
                                       for s in segments) + ")")
    if condition:
        parts.append(f"({condition})")
    effects = []
    for effect in rule.get("effects") or []:
        effect = dict(effect)
        if effect.get("type") == "multiplier" and not effect.get("applies_to"):
            effect["applies_to"] = list(program_rules)
        effects.append(effect)
    document: dict[str, Any] = {
        "code": f"{RULE_PREFIX}{code}", "name": name,
        "trigger": rule.get("trigger", "purchase"),
        "priority": rule.get("priority", 0), "stacking": rule.get("stacking", "stack"),
        "effects": effects, "valid_from": starts_at.isoformat(),
        "valid_to": ends_at.isoformat(),
    }
    if parts:
        document["condition"] = " and ".join(parts)
    if rule.get("limits"):
        document["limits"] = rule["limits"]
    if budget is not None:
        document["budget"] = budget
    return document
