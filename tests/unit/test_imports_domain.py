"""Column mapping, per-row validation and grouping of import rows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from allegiance.imports import domain
from allegiance.imports.domain import ColumnMapping, MappingInvalid, RowError

HEADERS = ["external_id", "occurred_at", "member_number", "sku", "line_quantity", "unit_price"]


def purchase_plan(mapping: ColumnMapping | None = None,
                  headers: list[str] | None = None) -> domain.Plan:
    return domain.plan("purchases", mapping or ColumnMapping(), headers or HEADERS)


def row(**kw: Any) -> dict[str, Any]:
    base = {"external_id": "INV-1", "occurred_at": "2026-01-10T10:00:00+00:00",
            "member_number": "M1", "sku": "SKU-1", "line_quantity": "2", "unit_price": "150"}
    base.update(kw)
    return base


def test_headers_of_the_same_name_map_by_default() -> None:
    p = purchase_plan()
    assert p.fields["external_id"] == "external_id"
    parsed = domain.parse_row(p, 1, row())
    assert isinstance(parsed, domain.Row)
    assert parsed.values["occurred_at"] == datetime(2026, 1, 10, 10, tzinfo=UTC)
    assert parsed.line == domain.Line("SKU-1", None, None, None, (), 2, 150, None)


def test_a_mapping_renames_columns_and_fills_defaults() -> None:
    mapping = domain.mapping_from({
        "columns": {"external_id": "Invoice", "member_number": "Dealer", "sku": "Article",
                    "line_quantity": "Qty", "unit_price": "Price", "occurred_at": "Date"},
        "defaults": {"channel": "erp"}, "time_zone": "Europe/Moscow",
    }, "purchases")
    p = purchase_plan(mapping, ["Invoice", "Date", "Dealer", "Article", "Qty", "Price"])
    parsed = domain.parse_row(p, 3, {"Invoice": "A", "Date": "2026-01-10 09:00",
                                     "Dealer": "D7", "Article": "X", "Qty": "1",
                                     "Price": "99"})
    assert isinstance(parsed, domain.Row)
    assert parsed.values["member_number"] == "D7"
    assert parsed.values["channel"] == "erp"
    assert parsed.values["occurred_at"].utcoffset() == timedelta(hours=3)


@pytest.mark.parametrize("data, field", [
    ({"columns": {"nope": "X"}}, "columns.nope"),
    ({"columns": {"sku": ""}}, "columns.sku"),
    ({"bogus": 1}, "bogus"),
    ({"types": {"a": "date"}}, "types.a"),
    ({"time_zone": "Mars/Base"}, "time_zone"),
    ({"decimals": 7}, "decimals"),
    ({"decimals": "2"}, "decimals"),
    ({"decimals": True}, "decimals"),
    ([1, 2], "mapping"),
])
def test_bad_mapping_files_are_refused_with_the_field(data: Any, field: str) -> None:
    with pytest.raises(MappingInvalid) as caught:
        domain.mapping_from(data, "purchases")
    assert caught.value.field == field


def test_a_file_must_name_an_event_and_its_account() -> None:
    with pytest.raises(MappingInvalid) as caught:
        purchase_plan(headers=["member_number", "sku"])
    assert caught.value.field == "external_id"
    with pytest.raises(MappingInvalid) as caught:
        purchase_plan(headers=["external_id", "sku"])
    assert caught.value.field == "member_number"
    with pytest.raises(MappingInvalid):
        purchase_plan(ColumnMapping(columns={"sku": "Article"}))
    with pytest.raises(MappingInvalid) as caught:
        domain.plan("activities", ColumnMapping(), ["external_id", "member_number"])
    assert caught.value.field == "activity_type"


def test_every_problem_of_a_row_is_reported_with_row_column_value_reason() -> None:
    p = purchase_plan()
    errors = domain.parse_row(p, 7, row(occurred_at="yesterday", line_quantity="-1",
                                        unit_price="1.5"))
    assert isinstance(errors, list)
    assert {(e.row, e.column, e.value) for e in errors} == {
        (7, "occurred_at", "yesterday"), (7, "line_quantity", "-1"), (7, "unit_price", "1.5")}
    assert all(e.reason for e in errors)
    naive = domain.parse_row(p, 8, row(occurred_at="2026-01-10T10:00:00"))
    assert isinstance(naive, list) and "time zone" in naive[0].reason
    missing = domain.parse_row(p, 9, row(external_id="", member_number=" "))
    assert isinstance(missing, list)
    assert {e.column for e in missing} == {"external_id", "member_number"}
    zero = domain.parse_row(p, 10, row(line_quantity="0"))
    assert zero == [RowError(10, "line_quantity", "0", "must be more than 0")]


def test_typed_cells_from_parquet_are_accepted() -> None:
    p = purchase_plan()
    at = datetime(2026, 1, 10, 10, tzinfo=timezone(timedelta(hours=2)))
    parsed = domain.parse_row(p, 1, row(occurred_at=at, line_quantity=3, unit_price=10.0,
                                        member_number=1234))
    assert isinstance(parsed, domain.Row)
    assert parsed.values["occurred_at"] == at and parsed.values["member_number"] == "1234"
    assert parsed.line is not None and (parsed.line.quantity, parsed.line.unit_price) == (3, 10)
    assert isinstance(domain.parse_row(p, 2, row(line_quantity=True)), list)


def test_contiguous_rows_with_one_external_id_form_one_purchase() -> None:
    p = purchase_plan()
    rows = [(1, row()), (2, row(sku="SKU-2")), (3, row(external_id="INV-2")),
            (4, row(external_id="INV-3"))]
    groups = domain.group_rows(p, rows)
    assert [(g.external_id, g.row_numbers) for g in groups] == [
        ("INV-1", [1, 2]), ("INV-2", [3]), ("INV-3", [4])]
    assert [line.sku for line in groups[0].lines] == ["SKU-1", "SKU-2"]


def test_the_open_purchase_carries_over_between_chunks() -> None:
    p = purchase_plan()
    grouper = domain.Grouper(p)
    done: list[domain.Group] = []
    for number, raw in [(1, row()), (2, row(sku="SKU-2"))]:  # chunk 1
        done += grouper.feed(number, domain.external_id_of(p, raw), domain.parse_row(p, number, raw))
    assert done == []
    for number, raw in [(3, row(sku="SKU-3")), (4, row(external_id="INV-2"))]:  # chunk 2
        done += grouper.feed(number, domain.external_id_of(p, raw), domain.parse_row(p, number, raw))
    done += grouper.finish()
    assert [g.row_numbers for g in done] == [[1, 2, 3], [4]]


def test_one_bad_row_rejects_its_whole_purchase_and_names_every_row() -> None:
    p = purchase_plan()
    groups = domain.group_rows(p, [(1, row()), (2, row(line_quantity="x")), (3, row()),
                                   (4, row(external_id="INV-2"))])
    bad, good = groups
    assert not good.errors
    report = bad.reject_rest()
    assert [(e.row, e.column) for e in report] == [(1, "external_id"), (2, "line_quantity"),
                                                   (3, "external_id")]
    assert "invalid" in report[0].reason


def test_rows_of_one_purchase_must_agree_on_its_header_fields() -> None:
    p = purchase_plan()
    (group,) = domain.group_rows(p, [(1, row()), (2, row(member_number="M2"))])
    assert [(e.row, e.column) for e in group.errors] == [(2, "member_number")]


def test_activities_are_one_row_each_with_typed_attributes() -> None:
    mapping = domain.mapping_from({"attributes": {"course_id": "Course"},
                                   "types": {"score": "float", "mandatory": "bool"},
                                   "defaults": {"activity_type": "course_completed"}},
                                  "activities")
    p = domain.plan("activities", mapping,
                    ["external_id", "member_number", "Course", "attributes.score",
                     "attributes.mandatory"])
    raw = {"external_id": "A1", "member_number": "M1", "Course": "C-9",
           "attributes.score": "0.5", "attributes.mandatory": "yes"}
    groups = domain.group_rows(p, [(1, raw), (2, raw)])
    assert len(groups) == 2
    parsed = groups[0].rows[0]
    assert parsed.values["activity_type"] == "course_completed"
    assert parsed.attributes == {"course_id": "C-9", "score": 0.5, "mandatory": True}
    bad = domain.parse_row(p, 3, {**raw, "attributes.score": "high"})
    assert bad == [RowError(3, "attributes.score", "high", "must be a number")]


@pytest.mark.parametrize("cell, cents", [
    ("12.50", 1250), ("12.5", 1250), ("12", 1200), (" 0.07 ", 7), ("+4.2", 420),
    (12.5, 1250), (0.1, 10), (3, 300), ("12.500", 1250),
])
def test_money_in_major_units_is_read_exactly_in_minor_units(cell: Any, cents: int) -> None:
    p = purchase_plan(domain.mapping_from({"decimals": 2}, "purchases"))
    parsed = domain.parse_row(p, 1, row(unit_price=cell))
    assert isinstance(parsed, domain.Row)
    assert parsed.line is not None and parsed.line.unit_price == cents
    assert parsed.line.quantity == 2  # a quantity is not money: never scaled


@pytest.mark.parametrize("cell, reason", [
    ("12.505", "has more than 2 decimal places"),
    ("1,234.50", "no thousands separators"),
    ("-1.00", "must be an amount"),
    ("1e3", "must be an amount"),
    ("9999999999999999", "must be between 0 and"),
])
def test_money_in_major_units_names_what_is_wrong(cell: str, reason: str) -> None:
    p = purchase_plan(domain.mapping_from({"decimals": 2}, "purchases"))
    parsed = domain.parse_row(p, 4, row(unit_price=cell))
    assert isinstance(parsed, list) and len(parsed) == 1
    assert (parsed[0].row, parsed[0].column, parsed[0].value) == (4, "unit_price", cell)
    assert reason in parsed[0].reason


def test_without_decimals_money_stays_whole_minor_units() -> None:
    parsed = domain.parse_row(purchase_plan(), 2, row(unit_price="12.50"))
    assert isinstance(parsed, list)
    assert "minor units, or decimals in the mapping" in parsed[0].reason


TYPED_HEADERS = [*HEADERS, "channel", "category", "amount"]
_AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
# per column: good typed cells, then cells the typed parser leaves to parse_row
_CELLS: dict[str, tuple[list[Any], list[Any]]] = {
    "external_id": (["INV-1", " INV-2 ", "X"], [None, "", "   ", 17, "x" * 201]),
    "occurred_at": ([_AT, datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))],
                    [None, datetime(2026, 1, 1), "2026-01-01T00:00:00+00:00", "soon"]),
    "member_number": (["M1", "0000042"], [None, "", 42, 4.0]),
    "sku": (["SKU-1", None], ["", 7, "s" * 201]),
    "line_quantity": ([1, 3, None], [0, -1, True, 2.0, "2", 10**16]),
    "unit_price": ([0, 150, 10**15], [-5, 1.5, "150", float("nan"), 10**15 + 1]),
    "channel": (["web", None], ["", 3]),
    "category": (["  tools", None], ["c" * 201]),
    "amount": ([None, 900], [-1, "900"]),
}


def test_the_typed_parser_gives_parse_row_s_row_or_leaves_the_row_to_it() -> None:
    """Over every good typed cell and every cell it does not take, in every column: when the
    typed parser answers, its Row equals parse_row's; when parse_row finds an error, the
    typed parser left the row to it (so the errors are parse_row's, naming row and field)."""
    import random

    p = purchase_plan(headers=TYPED_HEADERS)
    typed = domain.typed_parser(p)
    assert typed is not None
    rng = random.Random(7)
    answered = left = 0
    for n in range(3000):
        raw = {h: rng.choice(_CELLS[h][0]) for h in TYPED_HEADERS}
        if n % 2:
            for h in rng.sample(TYPED_HEADERS, rng.randint(1, 2)):
                raw[h] = rng.choice(_CELLS[h][1])
        slow = domain.parse_row(p, n, raw)
        fast = typed(n, raw)
        if fast is None:
            left += 1
            continue
        answered += 1
        assert fast == slow, raw
        assert list(fast.values) == list(slow.values)  # same fields in the same order
    assert answered > 1000 and left > 1000
    bad = row(occurred_at=_AT, line_quantity=0, unit_price=5)
    assert typed(9, bad) is None
    assert domain.parse_row(p, 9, bad) == [RowError(9, "line_quantity", "0", "must be more than 0")]


@pytest.mark.parametrize("mapping", [ColumnMapping(defaults={"channel": "web"}),
                                     ColumnMapping(decimals=2)])
def test_no_typed_parser_where_parse_row_converts_more(mapping: ColumnMapping) -> None:
    assert domain.typed_parser(purchase_plan(mapping)) is None
    assert domain.typed_parser(purchase_plan(headers=[*HEADERS, "labels"])) is None
    assert domain.typed_parser(domain.plan("returns", ColumnMapping(),
                                           ["external_id", "original_external_id"])) is None
