"""The imports page's mapping form, turned into the mapping data the imports feature takes
(the same JSON ``imports.domain.mapping_from`` reads from the API, the CLI and saved
mappings; its meaning is unchanged).

The form sends ``col.<field>`` = the file's header chosen for each field of the kind (blank:
the column of the same name, if any, as always), ``decimals`` (money written in major units
with at most that many decimals; the page offers 2 for kinds with money amounts),
``account_source`` and ``time_zone``. What it sets goes over the saved mapping of the source
and kind, if any; a form that sets nothing leaves the saved mapping to apply as before. The
advanced raw JSON, when filled, wins over all of it (``web.admin_imports.upload``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from allegiance.imports import domain
from allegiance.kit.errors import AllegianceError

COLUMN_PREFIX = "col."
DEFAULT_DECIMALS = 2  # what the page offers for money amounts (12.50 -> 1250 cents)
LABELS = {"file": "File", "kind": "It holds", "source": "Source",
          "mapping": "Advanced mapping (JSON)", "decimals": "Amount decimals",
          "account_source": "Account source", "time_zone": "Time zone"}


@dataclass(frozen=True)
class MappingForm:
    columns: Mapping[str, str] = field(default_factory=dict)  # field -> header, chosen ones
    decimals: str | None = None  # as typed; None: not sent (or left empty)
    account_source: str = ""
    time_zone: str = ""

    def empty(self) -> bool:
        return not (self.columns or self.decimals is not None or self.account_source
                    or self.time_zone)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


async def mapping_form(request: Request) -> MappingForm:
    """The mapping fields of the posted form (a dependency: the form is parsed once)."""
    form = await request.form()
    columns = {key[len(COLUMN_PREFIX):]: _text(value) for key, value in form.multi_items()
               if key.startswith(COLUMN_PREFIX) and _text(value)}
    decimals = _text(form.get("decimals"))
    return MappingForm(columns, decimals or None, _text(form.get("account_source")),
                       _text(form.get("time_zone")))


def has_money(kind: str) -> bool:
    return bool(set(domain.FIELDS.get(kind, ())) & domain.MONEY_FIELDS)


def mapping_of(form: MappingForm, kind: str,
               saved: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The mapping data the form describes, over ``saved``; None when the form sets nothing
    (the saved mapping then applies, as for an upload without a mapping). Raises
    :class:`imports.domain.MappingInvalid` naming the field (``columns.<field>``,
    ``decimals``, ``time_zone``…)."""
    if form.empty():
        return None
    data: dict[str, Any] = dict(saved or {})
    known = domain.FIELDS[kind]
    for name in form.columns:
        if name not in known:
            raise domain.MappingInvalid(f"{name} is not a field of {kind}",
                                        field=f"columns.{name}")
    if form.columns:
        data["columns"] = {**dict(data.get("columns") or {}), **form.columns}
    if form.decimals is not None and has_money(kind):
        try:
            decimals = int(form.decimals)
        except ValueError:
            decimals = -1
        if not 0 <= decimals <= domain.MAX_DECIMALS:
            raise domain.MappingInvalid(
                f"a whole number from 0 to {domain.MAX_DECIMALS} (2: 12.50 is 1250 cents; "
                "0: amounts are written in cents)", field="decimals")
        data["decimals"] = decimals
    if form.account_source:
        data["account_source"] = form.account_source
    if form.time_zone:
        data["time_zone"] = form.time_zone
    domain.mapping_from(data, kind)
    return data


def kinds_for_page() -> dict[str, dict[str, Any]]:
    """What the page's script needs to draw the form of each kind: its fields (the needed
    ones first), which are needed, whether it has money amounts and an account source."""
    out: dict[str, dict[str, Any]] = {}
    for kind in domain.KINDS:
        needed = [f for choice in domain.REQUIRED[kind] for f in choice]
        fields = [f for f in domain.FIELDS[kind] if f in needed] + [
            f for f in domain.FIELDS[kind] if f not in needed]
        out[kind] = {"fields": fields, "needed": [list(c) for c in domain.REQUIRED[kind]],
                     "money": has_money(kind),
                     "account_source": "account_external_id" in domain.FIELDS[kind]}
    return out


def label_of(name: str | None) -> str | None:
    if not name:
        return None
    if name.startswith("columns."):
        return f"Column for {name[len('columns.'):]}"
    if name in LABELS:
        return LABELS[name]
    if any(name in fields for fields in domain.FIELDS.values()):
        return f"Column for {name}"
    return name


def named(exc: AllegianceError) -> str:
    """The error's message after the name of the form field it is about."""
    label = label_of(exc.field)
    return f"{label}: {exc.message}" if label else exc.message
