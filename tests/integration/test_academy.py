"""Courses and certifications (HubSpot Academy, Philips CVAP) and the leavers' survey
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance import engagement, members, tenants, tiers
from allegiance.engagement import academy, leavers
from allegiance.kit import clock
from allegiance.kit.errors import AllegianceError
from allegiance.kit.models import OutboxMessage
from tests.conftest import World

NOW = datetime(2026, 2, 10, 12, tzinfo=UTC)


def _fails(w: World, fn: Callable[[Session], object]) -> str:
    with pytest.raises(AllegianceError) as err, w.db.transaction() as s:
        fn(s)
    return err.value.code


def _complete(w: World, account: str, course: str, event_id: str, at: datetime) -> bool:
    with w.db.transaction() as s:
        program = tenants.get_program(s, w.tenant_id, w.program_id)
        done = academy.on_activity(s, w.tenant_id, program, engagement.Occurrence(
            event_id=event_id, program_id=w.program_id, account_id=account, kind="activity",
            activity_type="course_completed", occurred_at=at, amount=0, quantity=1,
            attributes={"course": course}), actor="t")
        return done is not None


def _level(w: World, account: str, at: datetime) -> str | None:
    with w.db.read() as s:
        (state,) = tiers.status(s, w.tenant_id, w.program_id, account, at)
        return state.level


def test_certification_from_courses_is_a_tier_condition_and_a_badge(world: World) -> None:
    w = world
    with clock.frozen(NOW) as c, w.db.transaction() as s:
        partner = members.create_account(s, w.tenant_id, name="Partner").id
        members.enrol(s, w.tenant_id, w.program_id, partner, actor="t")
        for code in ("inbound", "content"):
            academy.create_course(s, w.tenant_id, w.program_id, code=code, name=code.title())
        engagement.create_badge(s, w.tenant_id, w.program_id, code="certified",
                                name="Certified", levels=["Certified"])
        cert = academy.create_certification(
            s, w.tenant_id, w.program_id, code="cvap", name="Certified partner",
            courses=["inbound", "content"], valid_days=365, badge="certified").id
        tiers.create_ladder(s, w.tenant_id, w.program_id, {
            "code": "partner", "metric": "certification:cvap",
            "levels": [{"code": "vap", "name": "VAP", "threshold": 0},
                       {"code": "cvap", "name": "CVAP", "threshold": 1}]})
    with clock.frozen(NOW) as c:
        assert _fails(w, lambda s: academy.create_certification(
            s, w.tenant_id, w.program_id, code="x", name="X",
            courses=["nope"])) == "invalid_certification"
        assert _fails(w, lambda s: academy.create_certification(
            s, w.tenant_id, w.program_id, code="Bad Code", name="X",
            courses=[])) == "invalid_certification"
        assert _complete(w, partner, "inbound", "evt_1", NOW)
        assert not _complete(w, partner, "inbound", "evt_1", NOW)  # once per event
        assert not _complete(w, partner, "unknown", "evt_2", NOW)
        with w.db.read() as s:
            assert academy.transcript(s, w.tenant_id, w.program_id,
                                      partner).certifications == []
        later = NOW + timedelta(days=30)
        c.set(later)
        assert _complete(w, partner, "content", "evt_3", later)
        assert _level(w, partner, later) == "cvap"
        with w.db.read() as s:
            t = academy.transcript(s, w.tenant_id, w.program_id, partner)
            assert [co.code for co, _ in t.completions] == ["inbound", "content"]
            ((_, held),) = t.certifications
            assert (held.status, held.expires_at) == ("active", later + timedelta(days=365))
            assert [b.code for b in engagement.badges_of(
                s, w.tenant_id, w.program_id, partner)] == ["certified"]
        # the job expires it a year after the grant; the tier condition goes with it
        c.set(later + timedelta(days=365))
        assert academy.run(w.db) == {"expired": 1}
        assert academy.run(w.db) == {"expired": 0}
        assert _level(w, partner, later + timedelta(days=366)) == "vap"
        # retaking both courses renews it (completions older than valid_days do not count)
        renew = later + timedelta(days=400)
        c.set(renew)
        assert _complete(w, partner, "inbound", "evt_4", renew)
        assert _level(w, partner, renew) == "vap"  # content was done 400 days ago
        assert _complete(w, partner, "content", "evt_5", renew)
        assert _level(w, partner, renew) == "cvap"
        with w.db.transaction() as s:
            academy.revoke(s, w.tenant_id, cert, partner, reason="audit failed", actor="t")
        assert _level(w, partner, renew) == "vap"
        with w.db.read() as s:
            kinds = [m.event_type for m in s.scalars(select(OutboxMessage).where(
                OutboxMessage.event_type.like("certification.%")))]
        assert sorted(kinds) == ["certification.expired", "certification.granted",
                                 "certification.granted", "certification.revoked"]


def test_leavers_survey_sent_once_and_reported_apart(world: World) -> None:
    w = world
    with clock.frozen(NOW) as c:
        with w.db.transaction() as s:
            stay, leave, other = (members.create_account(s, w.tenant_id, name=n).id
                                  for n in ("Stays", "Leaves", "Other"))
            enrolments = {a: members.enrol(s, w.tenant_id, w.program_id, a, actor="t").id
                          for a in (stay, leave, other)}
            q = [{"code": "nps", "text": "Recommend us?", "kind": "nps"},
                 {"code": "why", "text": "Why did you leave?", "kind": "text",
                  "required": False}]
            members_survey = engagement.create_survey(s, w.tenant_id, w.program_id,
                                                      code="nps", name="NPS", questions=q).id
            survey = engagement.create_survey(
                s, w.tenant_id, w.program_id, code="leavers", name="Leavers",
                questions=q, reward_unit_id=w.unit_id, reward_points=50,
                audience="leavers").id
        c.set(NOW + timedelta(days=1))
        with w.db.transaction() as s:
            members.change_enrolment_status(s, w.tenant_id, enrolments[leave], "closed",
                                            actor="t", reason="switched supplier")
            members.change_enrolment_status(s, w.tenant_id, enrolments[other], "suspended",
                                            actor="t")
        assert leavers.run(w.db) == {"surveys": 1, "invited": 1}
        assert leavers.run(w.db) == {"surveys": 1, "invited": 0}
        with w.db.read() as s:
            (inv,) = leavers.invitations(s, w.tenant_id, survey)
            assert (inv.account_id, inv.enrolment_id) == (leave, enrolments[leave])
        assert _fails(w, lambda s: engagement.submit(s, w.tenant_id, survey, stay, {"nps": 9},
                                                     actor="t")) == "not_invited"
        assert _fails(w, lambda s: leavers.send(s, w.tenant_id,
                                                members_survey)) == "invalid_survey"
        with w.db.transaction() as s:
            engagement.submit(s, w.tenant_id, survey, leave, {"nps": 3, "why": "price"},
                              actor="t")
            engagement.submit(s, w.tenant_id, members_survey, stay, {"nps": 10}, actor="t")
        assert w.balance(w.wallet(leave)).posted == 50
        with w.db.read() as s:
            report = engagement.nps_report(s, w.tenant_id, w.program_id)
            assert (report.overall.responses, report.overall.score) == (1, 100)
            assert (report.leavers.responses, report.leavers.score) == (1, -100)
            assert list(report.by_segment_attribute) == ["none"]
            sent = [m.payload for m in s.scalars(select(OutboxMessage).where(
                OutboxMessage.event_type == "survey.invited"))]
        assert [p["account_id"] for p in sent] == [leave]
