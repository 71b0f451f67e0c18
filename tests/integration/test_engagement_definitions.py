"""Engagement objects in program definitions (the ``engagement`` section): validation with
paths, apply by code, diff, export → apply round trip, retirement instead of deletion, and a
challenge defined in YAML earning through the ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from allegiance import definitions, engagement, rewards
from allegiance.engagement.models import SuperTicket
from allegiance.kit import clock
from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from tests.integration.events_support import Shop, definition
from tests.support.invariants import assert_ledger_invariants

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
SEQ = itertools.count(1)

ENGAGEMENT_YAML = """
badges:
  - {code: buyer, name: Regular buyer, levels: [Bronze, Silver]}
courses:
  - {code: basics, name: Basics, hours: 2}
certifications:
  - {code: pro, name: Pro, courses: [basics], valid_days: 365, badge: buyer}
challenges:
  - code: three-buys
    name: Three purchases a month
    trigger: purchase
    period: month
    target: 3
    effects: [{type: points, unit: points, amount: 500}, {type: badge, badge: buyer}]
  - code: genuine-spend
    name: Spend 100 on genuine parts
    trigger: purchase
    metric: amount
    target: 10000
    product_list: genuine
    effects: [{type: points, unit: points, amount: 50}]
surveys:
  - code: pulse
    name: Monthly pulse
    questions: [{code: nps, kind: nps, text: "Would you recommend us?"}]
    reward: {unit: points, points: 25}
member_events:
  - code: summit
    name: Partner summit
    starts_at: 2026-06-01T09:00:00+02:00
    ends_at: 2026-06-01T18:00:00+02:00
    capacity: 100
    attendance: {unit: points, points: 200}
"""


def document(**changes: Any) -> dict[str, Any]:
    doc = definition()
    doc["engagement"] = definitions.normalise(yaml.safe_load(ENGAGEMENT_YAML))
    for kind, items in changes.items():
        doc["engagement"][kind] = items
    return doc


@pytest.fixture
def shop(db: Database) -> Iterator[Shop]:
    with clock.frozen(NOW):
        yield Shop(db, document())
    assert_ledger_invariants(db)


def codes(shop: Shop, model: Any) -> dict[str, Any]:
    with shop.db.read() as s:
        rows = s.scalars(select(model).where(model.tenant_id == shop.tenant_id,
                                             model.program_id == shop.program_id)).all()
        for row in rows:
            s.expunge(row)
        return {row.code: row for row in rows}


def apply(shop: Shop, doc: dict[str, Any]) -> definitions.Version:
    with clock.frozen(NOW), shop.db.transaction() as s:
        return definitions.apply(s, shop.tenant_id, doc, actor="test")


def buy(shop: Shop, account: str, amount: int = 1000, sku: str | None = None) -> None:
    with clock.frozen(NOW):
        shop.event(external_id=f"p{next(SEQ)}", account_id=account, occurred_at=NOW,
                   amount=amount, lines=[{"sku": sku, "amount": amount}] if sku else ())


def test_apply_creates_every_engagement_object(shop: Shop) -> None:
    challenges = codes(shop, engagement.Challenge)
    assert sorted(challenges) == ["genuine-spend", "three-buys"]
    assert challenges["genuine-spend"].product_list == "genuine"
    assert challenges["three-buys"].effects[1] == {"type": "badge", "badge": "buyer",
                                                   "level": None}
    assert codes(shop, engagement.Badge)["buyer"].levels == ["Bronze", "Silver"]
    survey = codes(shop, engagement.Survey)["pulse"]
    assert (survey.reward_points, survey.reward_unit_id) == (25, shop.unit_id)
    event = codes(shop, engagement.MemberEvent)["summit"]
    assert (event.capacity, event.attendance_points) == (100, 200)
    assert event.starts_at == datetime(2026, 6, 1, 7, tzinfo=UTC)


def test_a_challenge_defined_in_yaml_earns_through_the_ledger(shop: Shop) -> None:
    acc = shop.account()
    for _ in range(3):
        buy(shop, acc)
    # 3 purchases of 10 dollars: 30 base points, plus the challenge's 500 points and badge
    assert shop.wallet(acc).posted == 30 + 500
    with shop.db.read() as s:
        held = engagement.badges_of(s, shop.tenant_id, shop.program_id, acc)
        assert [(b.code, b.level) for b in held] == [("buyer", 1)]


def test_export_then_apply_changes_nothing(shop: Shop) -> None:
    with shop.db.read() as s:
        exported = definitions.export(s, shop.tenant_id, shop.program_id).document
    before = {model.__name__: {c: (r.id, r.name) for c, r in codes(shop, model).items()}
              for model in (engagement.Challenge, engagement.Badge, engagement.Survey,
                            engagement.MemberEvent)}
    with clock.frozen(NOW), shop.db.read() as s:
        _, changes = definitions.diff_draft(s, shop.tenant_id, shop.program_id,
                                            copy.deepcopy(exported))
    assert changes == []
    apply(shop, copy.deepcopy(exported))
    after = {model.__name__: {c: (r.id, r.name) for c, r in codes(shop, model).items()}
             for model in (engagement.Challenge, engagement.Badge, engagement.Survey,
                           engagement.MemberEvent)}
    assert after == before


def test_the_diff_names_changed_engagement_items(shop: Shop) -> None:
    draft = document()
    draft["engagement"]["challenges"][0]["name"] = "Three buys a month"
    del draft["engagement"]["surveys"]
    with clock.frozen(NOW), shop.db.read() as s:
        _, changes = definitions.diff_draft(s, shop.tenant_id, shop.program_id, draft)
    found = {(c.path, c.kind) for c in changes}
    assert found == {("engagement.challenges[code=three-buys].name", "changed"),
                     ("engagement.surveys", "removed")}


def test_update_by_code_keeps_the_object_and_its_id(shop: Shop) -> None:
    old = codes(shop, engagement.Challenge)["three-buys"]
    changed = document()
    changed["engagement"]["challenges"][0]["name"] = "Three buys a month"
    changed["engagement"]["challenges"][0]["target"] = 4  # nobody has progress yet
    apply(shop, changed)
    new = codes(shop, engagement.Challenge)["three-buys"]
    assert (new.id, new.name, new.target) == (old.id, "Three buys a month", 4)


def test_what_members_have_progress_in_cannot_change(shop: Shop) -> None:
    acc = shop.account()
    buy(shop, acc)
    changed = document()
    changed["engagement"]["challenges"][0]["target"] = 4
    with pytest.raises(AllegianceError) as caught:
        apply(shop, changed)
    assert caught.value.field == "engagement.challenges[0].target"
    assert "progress" in caught.value.message
    assert codes(shop, engagement.Challenge)["three-buys"].target == 3
    # the name may still change
    changed["engagement"]["challenges"][0]["target"] = 3
    changed["engagement"]["challenges"][0]["name"] = "Renamed"
    apply(shop, changed)
    assert codes(shop, engagement.Challenge)["three-buys"].name == "Renamed"


def test_removed_objects_are_retired_not_deleted(shop: Shop) -> None:
    acc = shop.account()
    buy(shop, acc)
    challenges = document()["engagement"]["challenges"]
    apply(shop, document(challenges=[c for c in challenges if c["code"] != "three-buys"],
                         surveys=[], member_events=[]))
    rows = codes(shop, engagement.Challenge)
    assert rows["three-buys"].status == "retired"
    assert rows["genuine-spend"].status == "active"
    assert "pulse" not in codes(shop, engagement.Survey)  # nobody answered: deleted
    assert "summit" not in codes(shop, engagement.MemberEvent)


def test_a_held_badge_cannot_be_dropped(shop: Shop) -> None:
    acc = shop.account()
    for _ in range(3):
        buy(shop, acc)
    doc = document(badges=[], certifications=[])
    for item in doc["engagement"]["challenges"]:
        item["effects"] = [e for e in item["effects"] if e["type"] != "badge"]
    with pytest.raises(AllegianceError) as caught:
        apply(shop, doc)
    assert caught.value.field == "engagement.badges[code=buyer]"
    assert "members hold badge buyer" in caught.value.message
    assert "buyer" in codes(shop, engagement.Badge)


@pytest.mark.parametrize(("change", "path"), [
    ({"challenges": [{"code": "x", "name": "X", "trigger": "purchase", "target": 0,
                      "effects": [{"type": "points", "unit": "points", "amount": 1}]}]},
     "engagement.challenges[0].target"),
    ({"challenges": [{"code": "x", "name": "X", "trigger": "purchase", "target": 1,
                      "effects": [{"type": "points", "unit": "miles", "amount": 1}]}]},
     "engagement.challenges[0].effects[0].unit"),
    ({"challenges": [{"code": "x", "name": "X", "trigger": "purchase", "target": 1,
                      "effects": [{"type": "badge", "badge": "nope"}]}]},
     "engagement.challenges[0].effects[0].badge"),
    ({"challenges": [{"code": "x", "name": "X", "trigger": "purchase", "target": 1,
                      "effects": [{"type": "coupon"}]}]},
     "engagement.challenges[0].effects[0].reward"),
    ({"challenges": [{"code": "x", "name": "X", "trigger": "purchase", "target": 1,
                      "product_list": "unknown",
                      "effects": [{"type": "points", "unit": "points", "amount": 1}]}]},
     "engagement.challenges[0].product_list"),
    ({"challenges": [{"code": "x", "name": "X", "trigger": "purchase", "target": 1,
                      "colour": "red",
                      "effects": [{"type": "points", "unit": "points", "amount": 1}]}]},
     "engagement.challenges[0].colour"),
    ({"certifications": [{"code": "c", "name": "C", "courses": ["missing"]}]},
     "engagement.certifications[0].courses[0]"),
    ({"surveys": [{"code": "s", "name": "S", "questions": [{"code": "q", "kind": "essay"}]}]},
     "engagement.surveys[0].questions[0].kind"),
    ({"member_events": [{"code": "e", "name": "E", "starts_at": "2026-06-02T09:00:00+00:00",
                         "ends_at": "2026-06-01T09:00:00+00:00"}]},
     "engagement.member_events[0].ends_at"),
    ({"badges": [{"code": "b", "name": "B"}, {"code": "b", "name": "B again"}]},
     "engagement.badges[1].code"),
    ({"quests": []}, "engagement.quests"),
])
def test_invalid_engagement_items_are_refused_with_their_path(change: dict[str, Any],
                                                              path: str) -> None:
    doc = definition()
    doc["engagement"] = change
    problems = definitions.validate(doc)
    assert path in [p.path for p in problems], problems


def test_apply_refuses_an_invalid_engagement_section(shop: Shop) -> None:
    doc = document(badges=[{"code": "buyer", "name": "Buyer", "levels": "gold"}])
    with pytest.raises(definitions.InvalidDefinition) as caught:
        apply(shop, doc)
    assert caught.value.field == "engagement.badges[0].levels"


def test_reward_menus_and_super_tickets_name_catalogue_rewards_by_code(shop: Shop) -> None:
    menu = {"code": "monthly", "name": "Monthly", "period": "month", "rewards": ["music"]}
    ticket = {"code": "garden", "name": "Garden", "reward": "music", "mode": "first_come",
              "opens_at": "2026-04-01T10:00:00-04:00", "closes_at": "2026-04-02T10:00:00-04:00"}
    with pytest.raises(AllegianceError) as caught:
        apply(shop, document(reward_menus=[menu]))
    assert caught.value.field == "engagement.reward_menus[0].rewards[0]"
    with clock.frozen(NOW), shop.db.transaction() as s:
        reward = rewards.create_reward(s, shop.tenant_id, shop.program_id, code="music",
                                       name="Music", kind="service", unit_id=shop.unit_id,
                                       cost=10)
        reward_id = reward.id
    apply(shop, document(reward_menus=[menu], super_tickets=[ticket]))
    assert codes(shop, engagement.RewardMenu)["monthly"].reward_ids == [reward_id]
    assert codes(shop, SuperTicket)["garden"].reward_id == reward_id
    apply(shop, document(reward_menus=[], super_tickets=[]))  # nobody picked or entered
    assert codes(shop, engagement.RewardMenu) == {}
    assert codes(shop, SuperTicket) == {}
