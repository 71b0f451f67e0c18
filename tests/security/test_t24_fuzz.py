"""T24: the parsers of hostile input do not crash. Each target gets generated input and may only
answer with a value or with its documented validation error; anything else (a crash, an
``AttributeError``, an ``InvalidOperation``, a ``RecursionError``, a hang caught by the test
timeout) fails the test.

Targets: import rows (mapping files, header resolution, row parsing and grouping), money
parsing (``kit.money.to_minor``, FX rates and rate files, rule rates), rule definitions
(``definitions.validate`` + compile, and the condition language), webhook signature headers
(``webhooks.domain.verify`` and ``Retry-After``), the claims invoice-number normaliser.

Hypothesis, not atheris: atheris needs coverage instrumentation and runs until stopped, while a
CI test must be deterministic. ``derandomize=True`` makes every run try the same inputs (no
flaky failures); ``ALLEGIANCE_T24_EXAMPLES`` (default 400 per target, a few seconds each in CI)
raises the budget for the nightly run. The figures are executions and executions per second
per target.
"""

from __future__ import annotations

import copy
import os
import string
import time
from collections.abc import Iterator
from datetime import UTC
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from allegiance import definitions
from allegiance.claims import domain as claims
from allegiance.definitions.errors import InvalidDefinition
from allegiance.fx import domain as fx
from allegiance.imports import domain as imports
from allegiance.kit import money
from allegiance.rules.columnar import to_polars
from allegiance.rules.domain import Ratio, RuleError
from allegiance.rules.language import ExpressionError, compile_expression, to_python
from allegiance.rules.program import EVENT_FIELDS, LINE_FIELDS, MEMBER_FIELDS
from allegiance.webhooks import domain as webhooks
from tests.integration.money_support import money_definition
from tests.support import figures

EXAMPLES = int(os.environ.get("ALLEGIANCE_T24_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
RUNS: dict[str, list[float]] = {}  # target -> [executions, seconds]


@pytest.fixture(autouse=True)
def _figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each target: merge its executions, executions per second and outcome into the
    T24 figures (a failed test is a crash or an unexpected exception of its target)."""
    RUNS.clear()
    failed_before = request.session.testsfailed
    yield
    crashed = request.session.testsfailed > failed_before
    entry = figures.read("T24") or {}
    targets = dict(entry.get("targets") or {})
    for name, (runs, seconds) in RUNS.items():
        targets[name] = {"executions": int(runs), "crashed": crashed,
                         "exec_per_s": round(runs / seconds, 1) if seconds > 0 else None}
    figures.record("T24", examples_per_target=EXAMPLES, targets=targets,
                   crashes=sum(1 for t in targets.values() if t.get("crashed")))


class _Count:
    def __init__(self, target: str) -> None:
        self.target = target
        self.started = time.perf_counter()

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        run = RUNS.setdefault(self.target, [0.0, 0.0])
        run[0] += 1
        run[1] += time.perf_counter() - self.started


# ---------------------------------------------------------------------------------------------
# Hostile text: any unicode, numbers in odd spellings, separators, huge exponents.

NUMBERISH = st.one_of(
    st.from_regex(r"\A[+-]?\d{0,30}(\.\d{0,30})?([eE][+-]?\d{1,12})?\Z"),
    st.sampled_from(["nan", "NaN", "-inf", "Infinity", "sNaN", "1e999999999", "1e-999999999",
                     "0e-99999999", "1_000", "١٢٣", "²", "0x10", " 12.5 ", "12,50", "", " ",
                     "9" * 5000, "1" + "0" * 30]),
    st.text(alphabet=string.digits + ".,-+eE _x", max_size=40),
    st.text(max_size=40),
)
CELL = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), NUMBERISH, st.text(max_size=300),
    st.datetimes(timezones=st.none() | st.just(UTC)), st.dates(),
)
# Time-zone names that are folders, paths or too long for the zone database.
ZONES = st.sampled_from(["Europe", "Europe/Paris", "UTC", "../../etc/passwd", "a" * 300,
                         "Europe/Paris\x00", "America/"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | NUMBERISH | st.text(max_size=20)
    | ZONES,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


# ---------------------------------------------------------------------------------------------
# Import rows


@FUZZ
@given(data=JSON | st.dictionaries(st.sampled_from(["columns", "attributes", "types", "defaults",
                                                    "account_source", "time_zone"]),
                                   JSON, max_size=6),
       kind=st.sampled_from(imports.KINDS))
def test_import_mapping_files(data: Any, kind: str) -> None:
    with _Count("imports.mapping"):
        try:
            mapping = imports.mapping_from(data, kind)
        except imports.MappingInvalid:
            return
        assert isinstance(mapping, imports.ColumnMapping)


def _row_plans() -> Iterator[imports.Plan]:
    for kind in imports.KINDS:
        headers = list(imports.FIELDS[kind])
        if kind in imports.ATTRIBUTE_KINDS:
            headers += ["attributes.size", "attributes.ok", "Score"]
        mapping = imports.mapping_from(
            {"types": {"size": "int", "ok": "bool", "score": "float"},
             "attributes": {"score": "Score"}, "account_source": "erp"}
            if kind in imports.ATTRIBUTE_KINDS else {"account_source": "erp"}, kind)
        yield imports.plan(kind, mapping, headers)
        zoned = imports.ColumnMapping(time_zone="Europe/Paris", account_source="crm",
                                      defaults={"channel": "pos", "currency": "EUR"}
                                      if kind in imports.EVENT_KINDS else {})
        yield imports.plan(kind, zoned, imports.FIELDS[kind])


PLANS = list(_row_plans())


@FUZZ
@given(plan=st.sampled_from(PLANS), data=st.data())
def test_import_rows(plan: imports.Plan, data: st.DataObject) -> None:
    headers = [*plan.fields.values(), *plan.attributes.values()]
    rows = data.draw(st.lists(st.dictionaries(st.sampled_from(headers), CELL, max_size=12),
                              max_size=6))
    # Neighbouring rows often share an external id (one purchase over several rows).
    key = plan.fields.get(imports.KEY_FIELD.get(plan.kind, "external_id"))
    if key is not None and data.draw(st.booleans()):
        for raw in rows:
            raw[key] = "INV-1"
    with _Count("imports.rows"):
        for number, raw in enumerate(rows, start=2):
            parsed = imports.parse_row(plan, number, raw)
            if isinstance(parsed, list):
                assert parsed and all(isinstance(e, imports.RowError) and e.row == number
                                      for e in parsed)
            else:
                assert isinstance(parsed, imports.Row)
        groups = imports.group_rows(plan, enumerate(rows, start=2))
    assert sum(len(g.row_numbers) for g in groups) == len(rows)


@FUZZ
@given(kind=st.sampled_from(imports.KINDS),
       columns=st.dictionaries(st.text(max_size=15), st.text(max_size=15), max_size=4),
       headers=st.lists(st.text(max_size=15), max_size=8))
def test_import_header_resolution(kind: str, columns: dict[str, str], headers: list[str]) -> None:
    with _Count("imports.plan"):
        try:
            mapping = imports.mapping_from({"columns": columns}, kind)
            imports.plan(kind, mapping, headers)
        except imports.MappingInvalid:
            pass


# ---------------------------------------------------------------------------------------------
# Money


@FUZZ
@given(amount=NUMBERISH | st.integers() | st.decimals(allow_nan=True, allow_infinity=True),
       currency=st.sampled_from(["USD", "JPY", "KWD", "usd", "EUR"]))
def test_money_to_minor(amount: Any, currency: str) -> None:
    with _Count("money.to_minor"):
        try:
            minor = money.to_minor(amount, currency)
        except ValueError:
            return
    assert isinstance(minor, int)
    assert money.from_minor(minor, currency) == Decimal(str(amount).strip())


@FUZZ
@given(value=NUMBERISH | st.floats() | st.integers() | st.none())
@example(value="1E+12")  # the largest rate, written with an exponent: precision ran out
@example(value="1e-999999999")  # hung the exact fraction of a rule rate
def test_rates_and_ratios(value: Any) -> None:
    with _Count("money.rates"):
        try:
            rate = fx.check_rate(value)
        except ValueError:
            pass
        else:
            assert rate.is_finite() and rate > 0
            # A valid rate converts any amount without error.
            assert isinstance(fx.convert(10**15, "JPY", "KWD", rate), int)
        try:
            ratio = Ratio.parse(value, "rules[0].effects[0].rate")
        except RuleError:
            pass
        else:
            assert ratio.den > 0 and ratio.num >= 0
            assert isinstance(ratio.apply(10**15, money.Rounding.HALF_EVEN), int)


CSV_CELL = st.one_of(NUMBERISH, st.text(max_size=12), st.sampled_from(
    ["USD", "eur", "2026-01-31", "2026-02-30", "0.9", '"quoted, cell"', "\x00"]))


@FUZZ
@given(header=st.lists(st.sampled_from(["currency", "date", "rate", "base_currency", "",
                                        " rate ", "extra"]), max_size=5),
       rows=st.lists(st.lists(CSV_CELL, max_size=6), max_size=5),
       separator=st.sampled_from([",", ";", "\t"]), ending=st.sampled_from(["\n", "\r\n", "\r"]))
def test_rate_files(header: list[str], rows: list[list[str]], separator: str,
                    ending: str) -> None:
    text = ending.join(separator.join(r) for r in [header, *rows])
    with _Count("money.rate_files"):
        try:
            parsed = fx.parse_rates_csv(text)
        except fx.RateProblem:
            return
    assert all(r.rate > 0 for r in parsed)


# ---------------------------------------------------------------------------------------------
# Rule definitions and the condition language

TYPES = {**EVENT_FIELDS, **MEMBER_FIELDS, **LINE_FIELDS}
TOKENS = [*TYPES, "and", "or", "not", "in", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*",
          "//", "/", "%", "**", "(", ")", "[", "]", ",", "'x'", '"gold"', "1", "0", "-1",
          "1.5", "True", "None", "in_list", "contains", "lower", "coalesce", "lambda", "__import__",
          "x.__class__", "{", "}", ":", "if", "else", "@", "1e999", "9" * 400]


def _frame() -> pl.DataFrame:
    """Two rows over every field a condition may use: one with values, one all null."""
    dtypes = {"int": pl.Int64, "float": pl.Float64, "str": pl.Utf8, "bool": pl.Boolean,
              "list": pl.List(pl.Utf8)}
    values = {"int": 3, "float": 1.5, "str": "gold", "bool": True, "list": ["A"]}
    return pl.DataFrame({name: pl.Series(name, [values[kind], None], dtype=dtypes[kind])
                         for name, kind in TYPES.items()})


FRAME = _frame()


@FUZZ
@example(source="None")  # a null condition: Polars cannot filter on it
@example(source="1 // None")  # Polars panicked on integer division by a null literal
@example(source='lower(None) == "a"')
@given(source=st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join),
    st.text(max_size=200),
    st.builds(lambda n, op, tail: op * n + tail, st.integers(0, 1400),
              st.sampled_from(["(", "-", "not ", "+", "~", "1 + ", "[", "lower("]),
              st.sampled_from(["1", "event.amount", ")", "1 > 0"])),
))
def test_condition_language(source: str) -> None:
    with _Count("rules.condition"):
        try:
            node = compile_expression(source, TYPES, {"vip": frozenset({"A"})})
        except ExpressionError:
            return
        # A condition that compiles runs in both evaluators, with the same answer.
        by_rows = [bool(to_python(node)(row)) for row in FRAME.to_dicts()]
        by_columns = FRAME.with_columns(to_polars(node).fill_null(False).alias("x"))[
            "x"].to_list()  # with_columns: a constant condition is broadcast to every row
    assert node.type == "bool"
    assert [bool(v) for v in by_columns] == by_rows, source


VALID = money_definition({"code": "fuzz", "trigger": "purchase", "condition": "event.amount > 0",
                          "effects": [{"type": "points", "unit": "points", "rate": "0.01"}]})
VALID["program"]["time_zone"] = "Europe/Paris"


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


PATHS = [p for p in _paths(VALID) if p]


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(document)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _check_document(document: Any, target: str) -> None:
    with _Count(target):
        problems = definitions.validate(document)
        assert all(p.path is not None and p.message for p in problems)
        if problems:
            return
        try:
            definitions.compile_document(document)
        except InvalidDefinition:
            pytest.fail("validate() found no problem but compiling failed")


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), JSON), min_size=1, max_size=3))
@example(changes=[(("program", "time_zone"), "Europe")])  # a folder of the zone database
@example(changes=[(("rules", len(VALID["rules"]) - 1, "effects", 0, "rate"), "1e-999999999")])
def test_rule_definitions_mutated(changes: list[tuple[tuple[Any, ...], Any]]) -> None:
    document: Any = VALID
    for path, value in changes:
        try:
            document = _replace(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the path
    _check_document(document, "definitions.mutated")


@FUZZ
@given(document=JSON)
def test_rule_definitions_arbitrary(document: Any) -> None:
    _check_document(document, "definitions.arbitrary")


# ---------------------------------------------------------------------------------------------
# Webhook signature headers

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"type":"points.earned"}'
SIGNED = webhooks.headers([SECRET], "msg_1", 1_700_000_000, BODY)
HEADER_TEXT = st.one_of(
    st.text(max_size=80), NUMBERISH,
    st.builds(lambda parts: " ".join(parts), st.lists(st.one_of(
        st.just(SIGNED["webhook-signature"]), st.text(max_size=50).map(lambda s: "v1," + s),
        st.sampled_from(["v1,", "v2,abc", ",", "v1", "v1,é", "v1,\udcff"])), max_size=4)),
)


@FUZZ
@given(received=st.dictionaries(
    st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "webhook-timestamp",
                     "other"]), HEADER_TEXT, max_size=5),
    keep=st.sets(st.sampled_from(list(SIGNED))), body=st.binary(max_size=64) | st.just(BODY),
    now=st.integers(min_value=0, max_value=2**40))
def test_webhook_signature_headers(received: dict[str, str], keep: set[str], body: bytes,
                                   now: int) -> None:
    headers = {**{k: SIGNED[k] for k in keep}, **received}
    with _Count("webhooks.verify"):
        try:
            webhooks.verify([SECRET], headers, body, now)
        except webhooks.SignatureError:
            return
    # Only the genuine signature of this body, at a time near now, verifies.
    assert body == BODY
    assert abs(now - 1_700_000_000) <= webhooks.TOLERANCE_SECONDS
    assert any(k.lower() == "webhook-signature" and SIGNED["webhook-signature"][3:] in v
               for k, v in headers.items())


@FUZZ
@given(value=st.none() | HEADER_TEXT,
       status=st.sampled_from([None, 200, 204, 301, 410, 429, 500, 503]),
       attempts=st.integers(min_value=1, max_value=webhooks.MAX_ATTEMPTS + 2))
def test_retry_after_headers(value: str | None, status: int | None, attempts: int) -> None:
    with _Count("webhooks.retry_after"):
        delay = webhooks.parse_retry_after(value)
        outcome = webhooks.outcome(attempts, status, value)
    assert delay is None or 0 <= delay <= webhooks.MAX_RETRY_AFTER
    assert outcome.retry_in is None or 0 <= outcome.retry_in <= webhooks.MAX_RETRY_AFTER


# ---------------------------------------------------------------------------------------------
# Invoice numbers of partner sales claims


@FUZZ
@given(number=st.text(max_size=200) | st.from_regex(r"\A[#A-Za-z .:/-]{0,12}\d{1,12}\Z"),
       seller=st.text(max_size=100))
def test_invoice_number_normaliser(number: str, seller: str) -> None:
    with _Count("claims.invoice_key"):
        key = claims.invoice_number_key(number)
        full = claims.invoice_key(seller, number)
    assert key == "" or (key.isascii() and key.isalnum() and key == key.upper())
    assert full.endswith("|" + key)
    # Formatting never matters: separators and case give the same key.
    assert claims.invoice_number_key(number.lower().replace("-", " ")) == key or not key
