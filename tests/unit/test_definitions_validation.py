"""Validation of program definitions: every problem, each at its exact path; the diff."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from allegiance.definitions import diff, normalise, render, validate


def good() -> dict[str, Any]:
    return {
        "program": {"code": "demo", "name": "Demo", "base_currency": "USD",
                    "time_zone": "Europe/Paris", "eligible_regions": ["US-CA", "FR"]},
        "units": [{"code": "points", "kind": "points"},
                  {"code": "cash", "kind": "money", "currency": "EUR"}],
        "product_lists": {"genuine": ["SKU-1", "SKU-2"]},
        "rules": [
            {"code": "base", "effects": [{"type": "points_per_amount", "unit": "points",
                                          "rate": "0.01"}]},
            {"code": "genuine", "condition": 'in_list(line.sku, "genuine")',
             "effects": [{"type": "fixed", "unit": "points", "points": 5}]},
            {"code": "gold-bonus", "condition": 'member.tier == "gold"',
             "effects": [{"type": "percent", "unit": "cash", "percent": "2"}]},
        ],
        "tiers": [{"code": "status", "metric": "points_earned",
                   "levels": [{"code": "silver", "threshold": 0},
                              {"code": "gold", "threshold": 1000}]}],
    }


def paths(document: Any) -> list[str]:
    return [p.path for p in validate(document)]


def test_a_good_document_has_no_problem() -> None:
    assert validate(good()) == []


def test_every_problem_is_collected_with_its_path() -> None:
    doc = good()
    doc["program"]["time_zone"] = "Mars/Olympus"
    doc["program"]["base_currency"] = "EURO"
    doc["program"]["eligible_regions"] = ["US-CA", "usa"]
    doc["units"][1].pop("currency")
    doc["units"].append({"code": "points", "kind": "points", "value_in_base": -1,
                         "negative_floor": 5, "expiry": {"kind": "after_months"}})
    doc["tiers"][0]["levels"][1]["threshold"] = 0
    doc["extra"] = 1
    found = paths(doc)
    assert found == [
        "extra", "program.time_zone", "program.base_currency",
        "program.eligible_regions[1]", "units[1].currency", "units[2].code",
        "units[2].value_in_base", "units[2].negative_floor", "units[2].expiry",
        "tiers[0].levels[1].threshold",
    ]


def test_rule_problems_name_the_exact_path() -> None:
    doc = good()
    doc["rules"][0]["effects"][0]["rate"] = "lots"
    problems = validate(doc)
    assert [(p.path, p.message) for p in problems] == [
        ("rules[0].effects[0].rate", "'lots' is not a number")]


def test_unknown_product_list_unit_and_tier_are_rejected() -> None:
    doc = good()
    doc["rules"][1]["condition"] = 'in_list(line.sku, "fake")'
    assert paths(doc) == ["rules[1].condition"]
    doc = good()
    doc["rules"][0]["effects"][0]["unit"] = "miles"
    assert paths(doc) == ["rules[0].effects[0].unit"]
    doc = good()
    doc["rules"][2]["condition"] = 'member.tier in ["gold", "platinum"]'
    problems = validate(doc)
    assert [p.path for p in problems] == ["rules[2].condition"]
    assert "'platinum'" in problems[0].message


def test_tier_ladders_are_checked_by_the_tiers_domain() -> None:
    doc = good()
    doc["tiers"].append(copy.deepcopy(good()["tiers"][0]))  # the same code again
    doc["tiers"].append({"code": "x", "metric": "spend", "levels": [], "colour": "red"})
    doc["tiers"].append({"code": "y", "metric": "spend",
                         "levels": [{"code": "Silver!", "threshold": 1}]})
    assert paths(doc) == ["tiers[1].code", "tiers[2].colour", "tiers[3].levels[0].code"]


def test_points_earned_needs_a_points_unit() -> None:
    doc = good()
    doc["units"] = [{"code": "cash", "kind": "money", "currency": "EUR"}]
    doc["rules"] = [doc["rules"][2]]
    assert "tiers[0].metric" in paths(doc)


def test_not_a_mapping_and_missing_sections() -> None:
    assert paths([1, 2]) == ["$"]
    assert paths({}) == ["program", "units"]


def test_counters_name_known_activity_types() -> None:
    doc = good()
    doc["counters"] = {"courses": {"trigger": "activity:course"}}
    assert paths(doc) == ["counters.courses.trigger"]


def test_distinct_counter_names_the_field_path() -> None:
    doc = good()
    doc["activity_types"] = {"course": {"attributes": {"course_id": "str"}}}
    doc["counters"] = {"courses": {"trigger": "activity:course",
                                   "distinct": "event.attributes.course_id"}}
    assert validate(doc) == []
    for bad in ("event.attributes.colour", "member.tier", "line.sku", 7):
        doc["counters"]["courses"]["distinct"] = bad
        assert paths(doc) == ["counters.courses.distinct"], bad
    doc["counters"]["courses"].update(distinct="event.attributes.course_id", measure="amount")
    assert paths(doc) == ["counters.courses.distinct"]


def test_normalise_turns_yaml_dates_into_text() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert normalise({"a": [moment]}) == {"a": ["2026-01-01T00:00:00+00:00"]}


def test_diff_matches_rules_and_units_by_code() -> None:
    old = good()
    new = copy.deepcopy(old)
    new["rules"].reverse()  # moving rules is not a change
    new["rules"][0]["effects"][0]["percent"] = "3"
    new["units"].append({"code": "miles", "kind": "points"})
    del new["product_lists"]
    new["program"]["eligible_regions"] = ["US"]
    changes = {c.path: c for c in diff(old, new)}
    assert set(changes) == {
        "rules[code=gold-bonus].effects[0].percent", "units[code=miles]", "product_lists",
        "program.eligible_regions",
    }
    assert changes["rules[code=gold-bonus].effects[0].percent"].old == "2"
    assert changes["units[code=miles]"].kind == "added"
    assert changes["product_lists"].kind == "removed"
    text = render(diff(old, new))
    assert "~ rules[code=gold-bonus].effects[0].percent: \"2\" -> \"3\"" in text
    assert render([]) == "no differences"
    assert diff(old, copy.deepcopy(old)) == []


def test_names_and_numbers_that_cannot_be_stored_are_refused() -> None:
    doc = good()
    doc["program"]["name"] = None
    doc["units"][0]["name"] = ["not", "text"]
    assert paths(doc) == ["program.name", "units[0].name"]
    doc = good()
    doc["rules"][0]["budget"] = 10**20
    assert paths(doc) == ["rules[0].budget"]
