"""Pure import logic: the column mapping from a file's headers to our fields, the per-row
validation (every problem is a :class:`RowError` — row, column, value, reason), and the
grouping of purchase rows into purchases (one row is one purchase line; contiguous rows with
the same ``external_id`` form one purchase) and of return rows into returns. Every kind
(:data:`KINDS`) is described by its fields (:data:`FIELDS`), the fields one of which each row
needs (:data:`REQUIRED`) and its key (:data:`KEY_FIELD`).

A purchase with a bad row is rejected whole (its other rows are reported too): storing it
without the bad line would make it impossible to fix later, since re-importing the same
``external_id`` is a replay that adds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from allegiance.kit.errors import ValidationFailed

KINDS = ("purchases", "activities", "returns", "accounts", "users", "catalogue")
EVENT_KINDS = ("purchases", "activities")
GROUPED_KINDS = ("purchases", "returns")  # contiguous rows with one external_id: one record
ACCOUNT_FIELDS = ("account_id", "member_number", "account_external_id")
EVENT_FIELDS = ("external_id", "occurred_at", *ACCOUNT_FIELDS, "currency", "amount",
                "quantity", "channel", "user_id")
LINE_FIELDS = ("sku", "name", "category", "brand", "labels", "line_quantity", "unit_price",
               "line_amount")
RETURN_FIELDS = ("external_id", "original_external_id", "original_source", "original_event_id",
                 "occurred_at", "amount", "reason", "line_no", "line_quantity", "line_amount")
ACCOUNT_RECORD_FIELDS = ("member_number", "account_external_id", "name", "parent_member_number",
                         "region", "email", "tax_id")
USER_FIELDS = ("external_id", "name", "email", "role", *ACCOUNT_FIELDS)
CATALOGUE_FIELDS = ("code", "name", "kind", "unit", "cost", "description", "stock",
                    "min_balance", "eligible_regions", "eligible_tiers", "eligible_segments",
                    "limit_per_member", "limit_period", "requires_approval", "code_valid_days",
                    "visible_from", "visible_to", "available_from", "available_to")
FIELDS: dict[str, tuple[str, ...]] = {
    "purchases": EVENT_FIELDS + LINE_FIELDS,
    "activities": (*EVENT_FIELDS, "activity_type"),
    "returns": RETURN_FIELDS,
    "accounts": ACCOUNT_RECORD_FIELDS,
    "users": USER_FIELDS,
    "catalogue": CATALOGUE_FIELDS,
}
# Each entry: one of these fields must have a value on every row.
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "purchases": (("external_id",), ACCOUNT_FIELDS),
    "activities": (("external_id",), ACCOUNT_FIELDS, ("activity_type",)),
    "returns": (("external_id",), ("original_external_id", "original_event_id")),
    "accounts": (("member_number", "account_external_id"), ("name",)),
    "users": (("external_id",), ("name",), ("role",), ACCOUNT_FIELDS),
    "catalogue": (("code",), ("name",), ("kind",), ("unit",), ("cost",)),
}
# The field naming a record in messages and in the error report.
KEY_FIELD = {"accounts": "member_number", "catalogue": "code"}
ATTRIBUTE_KINDS = ("activities", "accounts")
INT_FIELDS = frozenset({"amount", "quantity", "line_quantity", "unit_price", "line_amount",
                        "line_no", "cost", "stock", "min_balance", "limit_per_member",
                        "code_valid_days"})
DATE_FIELDS = frozenset({"occurred_at", "visible_from", "visible_to", "available_from",
                         "available_to"})
BOOL_FIELDS = frozenset({"requires_approval"})
LIST_FIELDS = frozenset({"labels", "eligible_regions", "eligible_tiers", "eligible_segments"})
LONG_TEXT = {"description": 2000, "reason": 1000}
NOUNS = {"purchases": "purchase", "activities": "activity", "returns": "return",
         "accounts": "account", "users": "user", "catalogue": "reward"}
ATTRIBUTE_TYPES = ("str", "int", "float", "bool")
ATTRIBUTE_PREFIX = "attributes."
MAX_AMOUNT = 10**15
_INT = re.compile(r"^[+-]?\d+$")
# Money read as written in major units when the mapping gives ``decimals`` (12.50 -> 1250).
MONEY_FIELDS = frozenset({"amount", "unit_price", "line_amount"})
MAX_DECIMALS = 6
_DECIMAL = re.compile(r"^\+?(\d+)(?:\.(\d*))?$")


class MappingInvalid(ValidationFailed):
    code = "invalid_mapping"


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    value: str
    reason: str


@dataclass(frozen=True)
class ColumnMapping:
    """How a file's headers map to our fields.

    ``columns``: our field -> the file's header (fields not listed are read from a header of
    the same name, if any). ``attributes``: activity attribute -> header (headers named
    ``attributes.X`` are read as attribute ``X`` too); ``types`` gives an attribute's type
    (str, int, float, bool; default str). ``defaults``: a value for a field whose column is
    missing or empty. ``account_source``: the source of ``account_external_id`` values.
    ``time_zone``: the zone of times written without an offset (else such times are errors).
    ``decimals``: money (amount, unit price, line amount) is written in major units with at
    most this many decimal places (2: ``12.50`` dollars is 1250 cents); 0 (the default):
    money is written in minor units, as whole numbers.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    account_source: str | None = None
    time_zone: str | None = None
    decimals: int = 0


def mapping_from(data: Any, kind: str) -> ColumnMapping:
    """A :class:`ColumnMapping` from plain data (a parsed YAML/JSON mapping file)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise MappingInvalid("a mapping file is an object", field="mapping")
    allowed = {"columns", "attributes", "types", "defaults", "account_source", "time_zone",
               "decimals"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise MappingInvalid(f"unknown keys: {', '.join(map(str, extra))}", field=str(extra[0]))
    parts: dict[str, dict[str, Any]] = {}
    for key in ("columns", "attributes", "types", "defaults"):
        value = data.get(key) or {}
        if not isinstance(value, Mapping):
            raise MappingInvalid(f"{key} maps names to values", field=key)
        parts[key] = {str(k): v for k, v in value.items()}
    known = FIELDS[kind]
    for key in ("columns", "defaults"):
        for name in parts[key]:
            if name not in known:
                raise MappingInvalid(f"{name} is not a field of {kind} (known: "
                                     f"{', '.join(known)})", field=f"{key}.{name}")
    for key in ("columns", "attributes"):
        for name, header in parts[key].items():
            if not isinstance(header, str) or not header:
                raise MappingInvalid("a column is named by its header", field=f"{key}.{name}")
    for name, kind_name in parts["types"].items():
        if kind_name not in ATTRIBUTE_TYPES:
            raise MappingInvalid(f"type must be one of {', '.join(ATTRIBUTE_TYPES)}",
                                 field=f"types.{name}")
    if (parts["attributes"] or parts["types"]) and kind not in ATTRIBUTE_KINDS:
        raise MappingInvalid("only activities and accounts have attributes",
                             field="attributes")
    zone = data.get("time_zone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise MappingInvalid(f"unknown time zone {zone}", field="time_zone") from None
    decimals = data.get("decimals", 0)
    if isinstance(decimals, bool) or not isinstance(decimals, int) \
            or not 0 <= decimals <= MAX_DECIMALS:
        raise MappingInvalid(f"decimals is a whole number from 0 to {MAX_DECIMALS}",
                             field="decimals")
    source = data.get("account_source")
    return ColumnMapping(
        columns=parts["columns"], attributes=parts["attributes"], types=parts["types"],
        defaults=parts["defaults"], account_source=None if source is None else str(source),
        time_zone=None if zone is None else str(zone), decimals=decimals,
    )


@dataclass(frozen=True)
class Plan:
    """A mapping resolved against a file's headers: field -> header, attribute -> header."""

    kind: str
    fields: Mapping[str, str]
    attributes: Mapping[str, str]
    mapping: ColumnMapping

    def columns(self) -> list[str]:
        return sorted(set(self.fields.values()) | set(self.attributes.values()))


def plan(kind: str, mapping: ColumnMapping, headers: Sequence[str]) -> Plan:
    """Resolve ``mapping`` against the file's headers; a mapped header the file lacks, or a
    file that cannot name an event or its account, is a :class:`MappingInvalid`."""
    if kind not in KINDS:
        raise MappingInvalid(f"kind must be one of {', '.join(KINDS)}", field="kind")
    present = set(headers)
    fields: dict[str, str] = {}
    for name, header in mapping.columns.items():
        if header not in present:
            raise MappingInvalid(f"the file has no column {header!r} (for {name})",
                                 field=f"columns.{name}")
        fields[name] = header
    for name in FIELDS[kind]:
        if name not in fields and name in present and name not in mapping.columns.values():
            fields[name] = name
    attributes: dict[str, str] = {}
    if kind in ATTRIBUTE_KINDS:
        for header in headers:
            if header.startswith(ATTRIBUTE_PREFIX):
                attributes[header[len(ATTRIBUTE_PREFIX):]] = header
        for name, header in mapping.attributes.items():
            if header not in present:
                raise MappingInvalid(f"the file has no column {header!r} (for attribute "
                                     f"{name})", field=f"attributes.{name}")
            attributes[name] = header
    for choice in REQUIRED[kind]:
        if not any(f in fields or f in mapping.defaults for f in choice):
            if choice == ACCOUNT_FIELDS:
                raise MappingInvalid("the file needs an account_id, member_number or "
                                     "account_external_id column", field="member_number")
            names = " or ".join(choice)
            article = "an" if names[0] in "aeiou" else "a"
            raise MappingInvalid(f"the file needs {article} {names} column (or a default)",
                                 field=choice[0])
    if "account_external_id" in fields and not mapping.account_source:
        raise MappingInvalid("account_external_id needs account_source in the mapping",
                             field="account_source")
    return Plan(kind, fields, attributes, mapping)


# ---------------------------------------------------------------------------------------------
# Values


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    out = value if isinstance(value, str) else str(value)
    out = out.strip()
    return out or None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.match(value.strip()):
        number = int(value.strip())
    else:
        raise ValueError("must be a whole number (amounts in minor units, or decimals in the "
                         "mapping)")
    if not 0 <= number <= MAX_AMOUNT:
        raise ValueError(f"must be between 0 and {MAX_AMOUNT}")
    return number


def _money(value: Any, decimals: int) -> int:
    """Money written in major units with at most ``decimals`` places, in minor units: exact
    (decimal arithmetic on the written digits; a float cell is read by its shortest form)."""
    if isinstance(value, bool):
        raise ValueError("must be an amount")
    number: int
    if isinstance(value, int):
        number = int(value) * 10**decimals
    else:
        text = str(value).strip()
        match = _DECIMAL.match(text)
        if match is None:
            raise ValueError(f"must be an amount such as 12.50 (at most {decimals} decimal "
                             "places, a point before them, no thousands separators)")
        whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
        if len(fraction) > decimals:
            raise ValueError(f"has more than {decimals} decimal places")
        number = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if not 0 <= number <= MAX_AMOUNT:
        raise ValueError(f"must be between 0 and {MAX_AMOUNT / 10**decimals:.{decimals}f}")
    return number


def _datetime(value: Any, zone: str | None) -> datetime:
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, date):
        at = datetime.combine(value, time())
    else:
        try:
            at = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-15T10:00:00+00:00") \
                from None
    if at.tzinfo is None:
        if zone is None:
            raise ValueError("needs a time zone offset (or time_zone in the mapping)")
        at = at.replace(tzinfo=ZoneInfo(zone))
    return at


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "y", "t"):
        return True
    if text in ("false", "no", "0", "n", "f"):
        return False
    raise ValueError("must be true or false")


def _attribute(value: Any, kind: str) -> Any:
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if not _INT.match(text):
            raise ValueError("must be a whole number")
        return int(text)
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
    if kind == "bool":
        return _bool(value)
    return value if isinstance(value, str) else str(value)


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class Line:
    sku: str | None
    name: str | None
    category: str | None
    brand: str | None
    labels: tuple[str, ...]
    quantity: int
    unit_price: int | None
    amount: int | None


@dataclass(frozen=True)
class Row:
    """One valid row: the event fields and, for a purchase row, its line."""

    row: int
    external_id: str
    values: Mapping[str, Any]
    attributes: Mapping[str, Any]
    line: Line | None


# fields whose value must agree across the rows of one purchase (or return)
HEADER_FIELDS: dict[str, tuple[str, ...]] = {
    "purchases": ("occurred_at", *ACCOUNT_FIELDS, "currency", "amount", "quantity", "channel",
                  "user_id"),
    "returns": ("occurred_at", "original_external_id", "original_source", "original_event_id",
                "amount", "reason"),
}


def parse_row(p: Plan, row: int, raw: Mapping[str, Any]) -> Row | list[RowError]:
    """Validate one row (``raw``: header -> cell); every problem of the row is reported."""
    errors: list[RowError] = []
    values: dict[str, Any] = {}
    defaults = p.mapping.defaults
    for name in FIELDS[p.kind]:
        header = p.fields.get(name)
        if header is None and name not in defaults:
            continue  # neither in the file nor defaulted
        cell = raw.get(header) if header is not None else None
        value: Any = _text(cell)
        if value is None:
            default = p.mapping.defaults.get(name)
            value = None if default is None else _text(default)
        if value is None:
            continue
        try:
            value = _convert(name, cell if _text(cell) is not None else value,
                             p.mapping.time_zone, p.mapping.decimals)
        except ValueError as exc:
            errors.append(RowError(row, header or name, _text(cell) or "", str(exc)))
            continue
        values[name] = value
    attributes: dict[str, Any] = {}
    for name, header in p.attributes.items():
        cell = raw.get(header)
        if _text(cell) is None:
            continue
        try:
            attributes[name] = _attribute(
                cell if not isinstance(cell, str) else cell.strip(), p.mapping.types.get(name,
                                                                                         "str"))
        except ValueError as exc:
            errors.append(RowError(row, header, _text(cell) or "", str(exc)))
    for choice in REQUIRED[p.kind]:
        if any(name in values for name in choice):
            continue
        columns = {p.fields.get(f, f) for f in choice}
        if any(e.column in columns for e in errors):
            continue
        column = next((p.fields[f] for f in choice if f in p.fields), choice[0])
        reason = ("names no account (account_id, member_number or account_external_id)"
                  if choice == ACCOUNT_FIELDS else "is required" if len(choice) == 1
                  else f"is required (or {', '.join(choice[1:])})")
        errors.append(RowError(row, column, "", reason))
    if p.kind == "returns" and "line_no" not in values:
        errors.extend(RowError(row, p.fields.get(name, name), str(values[name]),
                               "needs line_no (the purchase line it returns)")
                      for name in ("line_quantity", "line_amount") if name in values)
    if errors:
        return errors
    line: Line | None = None
    if p.kind == "purchases" and any(name in values for name in LINE_FIELDS):
        line = Line(
            sku=values.get("sku"), name=values.get("name"), category=values.get("category"),
            brand=values.get("brand"), labels=values.get("labels", ()),
            quantity=values.get("line_quantity", 1), unit_price=values.get("unit_price"),
            amount=values.get("line_amount"),
        )
        if line.quantity == 0:
            return [RowError(row, p.fields["line_quantity"], "0", "must be more than 0")]
    if p.kind == "returns" and values.get("line_quantity") == 0:
        return [RowError(row, p.fields["line_quantity"], "0", "must be more than 0")]
    key = values.get(KEY_FIELD.get(p.kind, "external_id"))
    return Row(row, "" if key is None else str(key), values, attributes, line)


def typed_parser(p: Plan) -> Callable[[int, Mapping[str, Any]], Row | None] | None:
    """For a purchases or activities plan without defaults, attributes or decimals: a parser
    that takes a row whose cells already have their types (a Parquet file's: text, whole
    numbers, date-times with a zone) without the per-cell conversions of :func:`parse_row`,
    and gives exactly its :class:`Row`; ``None`` for a row it does not take (a missing
    required value, an empty or long text, a number out of range, a zero quantity, a cell of
    another type …), which then goes through :func:`parse_row` and its errors."""
    mapping = p.mapping
    if p.kind not in EVENT_KINDS or p.attributes or mapping.defaults or mapping.decimals:
        return None
    kinds = {name: ("int" if name in INT_FIELDS else "datetime" if name in DATE_FIELDS
                    else "" if name in BOOL_FIELDS | LIST_FIELDS else "text")
             for name in FIELDS[p.kind] if name in p.fields}
    if "" in kinds.values():
        return None  # booleans and lists are read by parse_row
    present = [(name, p.fields[name], kind, LONG_TEXT.get(name, 200))
               for name, kind in kinds.items()]
    required = REQUIRED[p.kind]
    key_field = KEY_FIELD.get(p.kind, "external_id")
    purchases = p.kind == "purchases"

    def parse(row: int, raw: Mapping[str, Any]) -> Row | None:
        values: dict[str, Any] = {}
        for name, header, kind, longest in present:
            cell = raw.get(header)
            if cell is None:
                continue
            if kind == "text":
                if type(cell) is not str:
                    return None
                cell = cell.strip()
                if not cell or len(cell) > longest:
                    return None
            elif kind == "int":
                if type(cell) is not int or not 0 <= cell <= MAX_AMOUNT:
                    return None
            elif type(cell) is not datetime or cell.tzinfo is None:
                return None
            values[name] = cell
        for choice in required:
            if not any(name in values for name in choice):
                return None
        line: Line | None = None
        if purchases and any(name in values for name in LINE_FIELDS):
            line = Line(sku=values.get("sku"), name=values.get("name"),
                        category=values.get("category"), brand=values.get("brand"),
                        labels=(), quantity=values.get("line_quantity", 1),
                        unit_price=values.get("unit_price"), amount=values.get("line_amount"))
            if line.quantity == 0:
                return None
        key = values.get(key_field)
        return Row(row, "" if key is None else str(key), values, {}, line)

    return parse


def _convert(name: str, value: Any, zone: str | None, decimals: int = 0) -> Any:
    """The typed value of a field's cell (or default); ``ValueError`` says what is wrong."""
    if decimals and name in MONEY_FIELDS:
        return _money(value, decimals)
    if name in INT_FIELDS:
        return _int(value)
    if name in DATE_FIELDS:
        return _datetime(value, zone)
    if name in BOOL_FIELDS:
        return _bool(value)
    if name in LIST_FIELDS:
        return tuple(x.strip() for x in str(value).replace(";", ",").split(",") if x.strip())
    text = _text(value) or ""
    if len(text) > LONG_TEXT.get(name, 200):
        raise ValueError(f"is longer than {LONG_TEXT.get(name, 200)} characters")
    return text


@dataclass
class Group:
    """The rows of one event: valid (``errors`` empty) or rejected whole."""

    external_id: str
    rows: list[Row] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    noun: str = "purchase"

    @property
    def first_row(self) -> int:
        return self.row_numbers[0]

    @property
    def values(self) -> Mapping[str, Any]:
        return self.rows[0].values

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(r.line for r in self.rows if r.line is not None)

    def reject_rest(self) -> list[RowError]:
        """The errors of a rejected group: its own, and one for each of its other rows."""
        bad = {e.row for e in self.errors}
        rest = [RowError(n, "external_id", self.external_id,
                         f"another row of this {self.noun} is invalid: the {self.noun} is "
                         "skipped")
                for n in self.row_numbers if n not in bad]
        return sorted([*self.errors, *rest], key=lambda e: e.row)


class Grouper:
    """Feeds parsed rows in file order, hands back finished events. Purchase rows with the
    same ``external_id`` next to each other form one purchase; the last open purchase of a
    chunk is carried over to the next. An activity is always one row."""

    def __init__(self, p: Plan) -> None:
        self.plan = p
        self.kind = p.kind
        self.open: Group | None = None

    def feed(self, row: int, external_id: str | None,
             parsed: Row | list[RowError]) -> list[Group]:
        done: list[Group] = []
        key = external_id or f"\x00row{row}"  # a row without an id is a group of its own
        if self.open is not None and (self.kind not in GROUPED_KINDS
                                      or self.open.external_id != key):
            done.append(self.open)
            self.open = None
        if self.open is None:
            self.open = Group(key if external_id else "", noun=NOUNS[self.kind])
        group = self.open
        group.row_numbers.append(row)
        if isinstance(parsed, list):
            group.errors.extend(parsed)
            return done
        if group.rows:
            first = group.rows[0].values
            for name in HEADER_FIELDS[self.kind]:
                if parsed.values.get(name) != first.get(name):
                    group.errors.append(RowError(
                        row, self.plan.fields.get(name, name), str(parsed.values.get(name, "")),
                        f"differs from the first row of {group.noun} {key} "
                        f"(row {group.first_row})"))
                    break
        group.rows.append(parsed)
        return done

    def finish(self) -> list[Group]:
        done = [] if self.open is None else [self.open]
        self.open = None
        return done


def group_rows(p: Plan, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> list[Group]:
    """Parse and group a whole sequence of rows (a convenience over :class:`Grouper`)."""
    grouper = Grouper(p)
    out: list[Group] = []
    for number, raw in rows:
        out.extend(grouper.feed(number, external_id_of(p, raw), parse_row(p, number, raw)))
    out.extend(grouper.finish())
    return out


def external_id_of(p: Plan, raw: Mapping[str, Any]) -> str | None:
    """The row's key: its external id (the member number of an account, the code of a
    reward)."""
    header = p.fields.get(KEY_FIELD.get(p.kind, "external_id"))
    return None if header is None else _text(raw.get(header))
