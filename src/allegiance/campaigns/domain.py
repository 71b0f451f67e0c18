"""Pure logic of segments and campaigns: which member fields a segment condition may use,
the earning rule a campaign becomes, and who enters or leaves a segment on refresh."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

BASE_MEMBER_FIELDS = {"member.tier": "str", "member.region": "str", "member.country": "str",
                      "member.enrolled_days": "int"}
# RFM scores (1–5, 0 without a purchase in the program's RFM window) and the cell "545"
RFM_FIELDS = {"member.rfm.recency": "int", "member.rfm.frequency": "int",
              "member.rfm.monetary": "int", "member.rfm.cell": "str"}
RFM_DIMENSIONS = ("recency", "frequency", "monetary")
QUINTILES = 5
NOT_FOR_SEGMENTS = ("member.segments", "member.role")
RULE_PREFIX = "campaign:"


def segment_fields(types: Mapping[str, str]) -> dict[str, str]:
    """The fields a segment condition may read: the member's own (tier, region, country,
    enrolled days, declared attributes, counters), not the event's, the user's or other
    segments."""
    out = dict(BASE_MEMBER_FIELDS)
    out.update(RFM_FIELDS)
    out.update({name: kind for name, kind in types.items()
                if name.startswith("member.") and name not in NOT_FOR_SEGMENTS})
    return out


def uses_rfm(fields: Iterable[str]) -> bool:
    return any(name in RFM_FIELDS for name in fields)


def quintile(rank: int, buyers: int) -> int:
    """The score (1–5) of the ``rank``-th lowest raw value (rank 1-based, ties sharing the
    lowest rank of their group) among ``buyers``: ``ceil(5 rank / buyers)``, so equal values
    always share a score, each score holds about a fifth of the buyers and the highest
    distinct value scores 5."""
    if buyers <= 0 or not 1 <= rank <= buyers:
        raise ValueError("rank must be 1 to buyers")
    return (QUINTILES * rank + buyers - 1) // buyers


def score(value: int, breakpoints: Sequence[int | None]) -> int:
    """Score one raw value against the breakpoints of the last refresh (the lowest raw value
    that scored 2, 3, 4 and 5; None where no buyer had that score): the highest score whose
    breakpoint the value reaches, 1 below them all."""
    out = 1
    for level, low in enumerate(breakpoints, start=2):
        if low is not None and value >= low:
            out = level
    return out


def cell(recency: int, frequency: int, monetary: int) -> str:
    return f"{recency}{frequency}{monetary}"


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
