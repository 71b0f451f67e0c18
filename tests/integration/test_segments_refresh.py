"""The segments job's membership diff (SQLite and PostgreSQL): after every refresh the stored
members of each segment are exactly the active members its condition holds for, what entered
and left is the difference with the refresh before, and a refresh with nothing changed
writes nothing — through attribute changes, closed and reopened enrolments, an erased member
(out of every segment at once, never back) and an account's own re-evaluation between
refreshes (segment memberships have no foreign keys since migration 0027: nothing else keeps
them consistent). Also the bulk insert of ``kit.frames`` with values COPY's text format would
have to escape."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select, text, update

from allegiance import campaigns, members, privacy
from allegiance.kit import clock, frames
from allegiance.kit.db import Database
from allegiance.kit.frames import insert_frame, insert_rows, read_frame
from tests.integration.events_support import Shop, definition
from tests.integration.segments_support import attribute_shop, stored

NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
REGIONS = ("ES", "ES-MD", "PT", "FR")
KINDS = ("retailer", "distributor")
CONDITIONS = {
    "iberia": 'member.country == "ES" or member.country == "PT"',
    "distributors": 'member.attributes.kind == "distributor"',
    "es-retail": 'member.country == "ES" and member.attributes.kind == "retailer"',
}


def holds(code: str, region: str | None, kind: str | None) -> bool:
    country = None if region is None else region.split("-")[0]
    return {"iberia": country in ("ES", "PT"), "distributors": kind == "distributor",
            "es-retail": country == "ES" and kind == "retailer"}[code]


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with attribute_shop(db, NOW) as made:
        yield made


def test_refresh_diff_follows_every_change(shop: Shop) -> None:
    rng = random.Random(5)
    state: dict[str, tuple[str, str, bool]] = {}  # account → region, kind, active
    with clock.frozen(NOW):
        for _ in range(40):
            region, kind = rng.choice(REGIONS), rng.choice(KINDS)
            acc = shop.account(region=region, attributes={"kind": kind})
            with shop.db.transaction() as s:
                members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
            state[acc] = (region, kind, True)
        with shop.db.transaction() as s:
            for code, condition in CONDITIONS.items():
                campaigns.create_segment(s, shop.tenant_id, shop.program_id, code=code,
                                         name=code, condition=condition)
        before: dict[str, set[str]] = {code: set() for code in CONDITIONS}
        erased: set[str] = set()
        for round_ in range(6):
            if round_:
                for acc in rng.sample(sorted(state), 12):
                    region, kind, active = state[acc]
                    change = rng.choice(("kind", "region", "status"))
                    with shop.db.transaction() as s:
                        if change == "kind" and acc not in erased:
                            kind = rng.choice(KINDS)
                            members.update_account(s, shop.tenant_id, acc,
                                                   {"attributes": {"kind": kind}},
                                                   actor="test")
                        elif change == "region" and acc not in erased:
                            region = rng.choice(REGIONS)
                            members.update_account(s, shop.tenant_id, acc,
                                                   {"region": region}, actor="test")
                        elif change == "status":
                            active = not active
                            s.execute(update(members.Enrolment).where(
                                members.Enrolment.tenant_id == shop.tenant_id,
                                members.Enrolment.account_id == acc).values(
                                status="active" if active else "closed"))
                    state[acc] = (region, kind, active)
            if round_ == 3:  # an erased member leaves every segment at once, for good
                acc = next(a for a, (_, k, on) in sorted(state.items())
                           if on and k == "distributor")
                with shop.db.transaction() as s:
                    privacy.erase_member(s, shop.tenant_id, acc, actor="test", reason="gdpr")
                state[acc] = (state[acc][0], "", True)
                erased.add(acc)
                before = {code: held - {acc} for code, held in before.items()}
                assert stored(shop) == before  # not left to the refresh below
            with shop.db.transaction() as s:
                done = campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
            want = {code: {a for a, (region, kind, active) in state.items()
                           if active and a not in erased and holds(code, region, kind or None)}
                    for code in CONDITIONS}
            got = stored(shop)
            assert got == want
            assert done["entered"] == sum(len(want[c] - before[c]) for c in CONDITIONS)
            assert done["left"] == sum(len(before[c] - want[c]) for c in CONDITIONS)
            before = want
            with shop.db.transaction() as s:  # nothing changed: nothing written
                again = campaigns.refresh_program(s, shop.tenant_id, shop.program_id)
            assert (again["entered"], again["left"]) == (0, 0) and stored(shop) == want
        # one account re-evaluated between refreshes finds the memberships it holds
        acc = next(a for a, (r, k, on) in sorted(state.items())
                   if on and holds("es-retail", r, k))
        with shop.db.transaction() as s:
            members.update_account(s, shop.tenant_id, acc, {"attributes": {"kind": "distributor"}},
                                   actor="test")
            entered, left = campaigns.refresh_account(s, shop.tenant_id, shop.program_id, acc)
            assert (entered, left) == (["distributors"], ["es-retail"])
            codes = campaigns.segment_codes(s, shop.tenant_id, shop.program_id, acc)
        assert codes == ["distributors", "iberia"]  # es-retail held: its country is ES


def test_bulk_insert_with_values_to_escape(db: Database,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [(f"a\t{i}", "back\\slash", f"line\nbreak {i}", i) for i in range(3)] + [
        (f"plain {i}", "x", "y", i) for i in range(1000)]
    with db.transaction() as s:
        s.execute(text("CREATE TEMPORARY TABLE staged_probe (a text, b text, c text, n bigint)"))
        insert_rows(s, "staged_probe", ("a", "b", "c", "n"), rows,
                    ("text", "text", "text", "bigint"))
        got = read_frame(s, "SELECT a, b, c, n FROM staged_probe ORDER BY n, a", {},
                         {"a": pl.Utf8, "b": pl.Utf8, "c": pl.Utf8, "n": pl.Int64})
        assert sorted(got.iter_rows()) == sorted(rows)
        texts: list[pl.DataFrame | None] = []  # read as one text per column, not row by row
        def counted(*args: Any) -> pl.DataFrame | None:
            texts.append(read(*args))
            return texts[-1]
        read = frames._text_read
        with monkeypatch.context() as patch:
            patch.setattr(frames, "_text_read", counted)
            again = read_frame(s, "SELECT a, b, c, n FROM staged_probe WHERE a LIKE 'plain%'",
                               {}, {"a": pl.Utf8, "b": pl.Utf8, "c": pl.Utf8, "n": pl.Int64})
        assert len(texts) == 1 and texts[0] is not None
        assert sorted(again.iter_rows()) == sorted(r for r in rows if r[0].startswith("plain"))
        # read_frame's texts of the columns (separator \x1e; '=' before a text value):
        # values holding a separator or '=', NULLs and empty texts read back as they are
        odd = [("unit\x1fsep", "=", None, 5000), ("rec\x1esep", "", "", 5001),
               (None, "==x", "=", None)]
        s.execute(text("INSERT INTO staged_probe VALUES (:a, :b, :c, :n)"),
                  [dict(zip("abcn", row, strict=True)) for row in odd])
        got = read_frame(s, "SELECT a, b, c, n FROM staged_probe WHERE n IS NULL OR n >= 5000",
                         {}, {"a": pl.Utf8, "b": pl.Utf8, "c": pl.Utf8, "n": pl.Int64})
        assert sorted(got.iter_rows(), key=str) == sorted(odd, key=str)
        got = read_frame(s, "SELECT b, n FROM staged_probe WHERE n IS NULL OR n = 5001",
                         {}, {"b": pl.Utf8, "n": pl.Int64})
        assert sorted(got.iter_rows(), key=str) == [("", 5001), ("==x", None)]
        s.execute(text("DELETE FROM staged_probe WHERE n IS NULL OR n >= 5000"))
        plain = [(f"p{i}", "q", "r", i) for i in range(500)]
        insert_rows(s, "staged_probe", ("a", "b", "c", "n"), plain,
                    ("text", "text", "text", "bigint"))
        n = s.execute(select(text("count(*)")).select_from(text("staged_probe"))).scalar()
        assert n == len(rows) + len(plain)


@pytest.mark.parametrize("varying", [
    [f"acc {i:05d} é" for i in range(2000)],  # SQLite: one INSERT from json_each
    ['quote "', "back\\slash", "tab\t", "ctl\x01", "plain"],  # JSON would escape these
    ["{brace}", "com,ma", " space ", "NULL", "", "\\\"", "plain"],  # array literal's marks
    list(range(-5, 3000, 7)),  # integers
    ["only"],  # one row
])
def test_insert_frame_with_one_varying_column(db: Database, varying: list[object]) -> None:
    """``insert_frame`` of constant columns and one varying column (a segment's new members)
    stores exactly those rows, in order, whatever the values hold."""
    frame = pl.DataFrame({"a": ["t1"] * len(varying), "v": varying}).with_columns(
        n=pl.lit(7, dtype=pl.Int64))
    kind = "bigint" if isinstance(varying[0], int) else "text"
    with db.transaction() as s:
        s.execute(text(f"CREATE TEMPORARY TABLE one_probe (a text, v {kind}, n bigint, "
                       "k integer PRIMARY KEY)" if db.engine.dialect.name == "sqlite" else
                       f"CREATE TEMPORARY TABLE one_probe (a text, v {kind}, n bigint, "
                       "k serial PRIMARY KEY)"))
        insert_frame(s, "one_probe", frame, ("text", kind, "bigint"))
        got = s.execute(text("SELECT a, v, n FROM one_probe ORDER BY k")).all()
    assert [tuple(r) for r in got] == list(frame.iter_rows())


@pytest.mark.parametrize("varying", [
    [f"acc {i:05d}" for i in range(2000, 0, -1)],  # SQLite: json_each, not sorted first
    ['quote "', "back\\slash", "plain"],  # the other paths
])
def test_insert_frame_not_in_order_stores_the_same_rows(db: Database,
                                                        varying: list[str]) -> None:
    """``insert_frame(in_order=False)`` (a keyed table: the memberships) stores exactly the
    frame's rows, every one once, whatever order they go in."""
    frame = pl.DataFrame({"a": ["t1"] * len(varying), "v": varying})
    with db.transaction() as s:
        s.execute(text("CREATE TEMPORARY TABLE keyed_probe (a text, v text, "
                       "PRIMARY KEY (a, v))"))
        insert_frame(s, "keyed_probe", frame, ("text", "text"), in_order=False)
        got = s.execute(text("SELECT a, v FROM keyed_probe")).all()
    assert sorted(tuple(r) for r in got) == sorted(frame.iter_rows())


ODD_ATTRIBUTES: list[dict[str, object]] = [
    {"kind": "retailer", "employees": 250, "ratio": 1.5, "vip": True},
    {"kind": "true", "employees": "300", "ratio": "2", "vip": "true"},
    {"kind": True, "employees": True, "ratio": False, "vip": False},
    {"kind": None, "employees": None, "ratio": None, "vip": None},
    {"kind": 7, "employees": 2.5, "ratio": 1e20, "vip": 1},
    {"kind": {"a": [1, "x"]}, "employees": [1], "ratio": {"b": 2}, "vip": "yes"},
    {"kind": "tab\there \"quoted\" é\\", "employees": -3, "ratio": -0.25, "vip": "false"},
    {"kind": "", "employees": "", "ratio": [], "vip": {}},
    {"kind": 2.5, "employees": 10**20, "ratio": 12, "vip": "é"},
    {"kind": "ünï", "employees": "-0", "ratio": "1.5e3", "vip": "TRUE"},
    {"kind": -12, "employees": 0, "ratio": 0, "vip": 0},
    {},
]


def test_attributes_extracted_by_the_database_equal_polars(db: Database,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """The full refresh reads declared attributes through the engine's JSON functions
    (segments._json_text); one account's re-evaluation parses the JSON text in Polars. Both
    give the same typed values, odd values included (a bool where an int is declared, a
    number as text, nested values, nulls, a missing key)."""
    with clock.frozen(NOW):
        doc = definition()
        doc["member_attributes"] = {"kind": "str", "employees": "int", "ratio": "float",
                                    "vip": "bool"}
        shop = Shop(db, doc)
        accounts = []
        for attributes in ODD_ATTRIBUTES:
            acc = shop.account(region="ES", attributes=attributes)
            with db.transaction() as s:
                members.ensure_enrolled(s, shop.tenant_id, shop.program_id, acc, "test")
            accounts.append(acc)
        types = {"member.attributes.kind": "str", "member.attributes.employees": "int",
                 "member.attributes.ratio": "float", "member.attributes.vip": "bool"}
        with db.read() as s:
            whole = campaigns.segments.member_frame(s, shop.tenant_id, shop.program_id,
                                                    types, NOW)
            ones = pl.concat([campaigns.segments.member_frame(
                s, shop.tenant_id, shop.program_id, types, NOW, account_id=acc)
                for acc in accounts])
        monkeypatch.setattr(campaigns.segments, "_REREAD_ALL", 1)  # every text read again
        with db.read() as s:
            again = campaigns.segments.member_frame(s, shop.tenant_id, shop.program_id,
                                                    types, NOW)
    assert whole.sort("account_id").to_dicts() == ones.sort("account_id").to_dicts()
    assert again.sort("account_id").to_dicts() == ones.sort("account_id").to_dicts()
    first = whole.filter(pl.col("account_id") == accounts[0]).row(0, named=True)
    assert (first["member.attributes.kind"], first["member.attributes.employees"],
            first["member.attributes.ratio"], first["member.attributes.vip"]) \
        == ("retailer", 250, 1.5, True)
