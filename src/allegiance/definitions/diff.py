"""A structured diff of two program definitions, and its readable rendering.

Lists whose items are mappings with a ``code`` (units, rules, tier ladders, levels) are matched
by code, so moving a rule does not read as a change; such items are addressed as
``rules[code=genuine-points]``. Other lists of mappings are compared position by position; a
changed list of plain values (regions, SKUs) is one change with the old and the new list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # added | removed | changed
    old: Any = None
    new: Any = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind != "added":
            out["old"] = self.old
        if self.kind != "removed":
            out["new"] = self.new
        return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _by_code(items: list[Any]) -> dict[str, Any] | None:
    if not items or not all(isinstance(i, Mapping) and isinstance(i.get("code"), str)
                            for i in items):
        return None
    codes = [str(i["code"]) for i in items]
    if len(set(codes)) != len(codes):
        return None
    return dict(zip(codes, items, strict=True))


def _walk(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in old:
            if key not in new:
                out.append(Change(_join(path, str(key)), "removed", old=old[key]))
        for key in new:
            if key not in old:
                out.append(Change(_join(path, str(key)), "added", new=new[key]))
            else:
                _walk(old[key], new[key], _join(path, str(key)), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        if old == new:
            return
        old_codes, new_codes = _by_code(old), _by_code(new)
        if (old_codes is not None and new_codes is not None) or (
            old_codes is not None and not new) or (new_codes is not None and not old):
            old_codes, new_codes = old_codes or {}, new_codes or {}
            for code, item in old_codes.items():
                if code not in new_codes:
                    out.append(Change(f"{path}[code={code}]", "removed", old=item))
            for code, item in new_codes.items():
                if code not in old_codes:
                    out.append(Change(f"{path}[code={code}]", "added", new=item))
                else:
                    _walk(old_codes[code], item, f"{path}[code={code}]", out)
            return
        if all(isinstance(i, Mapping) for i in old + new):
            for index in range(max(len(old), len(new))):
                item_path = f"{path}[{index}]"
                if index >= len(new):
                    out.append(Change(item_path, "removed", old=old[index]))
                elif index >= len(old):
                    out.append(Change(item_path, "added", new=new[index]))
                else:
                    _walk(old[index], new[index], item_path, out)
            return
    if old != new or isinstance(old, bool) != isinstance(new, bool):
        out.append(Change(path or "$", "changed", old=old, new=new))


def diff(old: Any, new: Any) -> list[Change]:
    """The changes that turn document ``old`` into document ``new``."""
    out: list[Change] = []
    _walk(old, new, "", out)
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def render(changes: list[Change]) -> str:
    """One line per change: ``+ path: new``, ``- path: old``, ``~ path: old -> new``."""
    if not changes:
        return "no differences"
    lines = []
    for change in changes:
        if change.kind == "added":
            lines.append(f"+ {change.path}: {_show(change.new)}")
        elif change.kind == "removed":
            lines.append(f"- {change.path}: {_show(change.old)}")
        else:
            lines.append(f"~ {change.path}: {_show(change.old)} -> {_show(change.new)}")
    return "\n".join(lines)
