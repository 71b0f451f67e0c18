"""The engagement API: challenges progressing from ingested events, progress visible per
account, badges, leaderboards with opt-out, surveys recorded as activities with NPS; tenant
isolation, scopes and validation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from allegiance import definitions, ledger, members, tenants
from allegiance.kit import clock
from tests.api.conftest import Api

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)

DOC: dict[str, Any] = {
    "program": {"code": "vip", "name": "VIP", "base_currency": "USD",
                "time_zone": "America/New_York"},
    "units": [{"code": "points", "name": "Points", "kind": "points", "value_in_base": "0.01"}],
    "activity_types": {"forum_answer": {"attributes": {}}, "survey_done": {"attributes": {}}},
    "rules": [{"code": "answer", "trigger": "activity:forum_answer",
               "effects": [{"type": "fixed", "unit": "points", "points": 10}]}],
}


def _setup(api: Api) -> tuple[str, str, list[str]]:
    with api.db.transaction() as s:
        version = definitions.apply(s, api.tenant_id, DOC, actor="test", effective_from=EPOCH)
        program_id = version.program_id
        accounts = [members.create_account(s, api.tenant_id, name=n,
                                           attributes={"segment": seg}).id
                    for n, seg in (("Ann", "us"), ("Bob", "us"), ("Cy", "eu"))]
        unit_id = tenants.unit_by_code(s, api.tenant_id, program_id, "points").id
    return program_id, unit_id, accounts


def _available(api: Api, program_id: str, account_id: str) -> int:
    with api.db.transaction() as s:
        unit = tenants.unit_by_code(s, api.tenant_id, program_id, "points")
        return ledger.balance_of(ledger.wallet(s, api.tenant_id, program_id, unit.id,
                                               "account", account_id)).available


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200,
          key: str | None = None, **kw: Any) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers(key, **kw))
    assert r.status_code == status, r.text
    return r.json()


def _answer(api: Api, pid: str, account: str, ext: str, at: datetime) -> None:
    _call(api, "POST", f"/programs/{pid}/events",
          {"kind": "activity", "activity_type": "forum_answer", "external_id": ext,
           "account_id": account, "occurred_at": at.isoformat()}, 201)


def test_challenge_badge_and_progress(api: Api) -> None:
    with clock.frozen(NOW):
        pid, _, (ann, bob, _cy) = _setup(api)
        _call(api, "POST", f"/programs/{pid}/badges",
              {"code": "helper", "name": "Helper", "levels": ["Bronze", "Silver"]}, 201)
        body = {"code": "daily", "name": "Answer 3 days in a row",
                "trigger": "activity:forum_answer", "period": "day", "target": 1, "streak": 3,
                "effects": [{"type": "points", "unit": "points", "amount": 100},
                            {"type": "badge", "badge": "helper"}]}
        ch = _call(api, "POST", f"/programs/{pid}/challenges", body, 201)
        assert _call(api, "POST", f"/programs/{pid}/challenges", body, 409)["error"][
            "code"] == "duplicate_code"
        bad = dict(body, code="x", effects=[{"type": "badge", "badge": "nope"}])
        assert _call(api, "POST", f"/programs/{pid}/challenges", bad, 404)["error"][
            "field"] == "badge"
        for day in (18, 19, 20):
            _answer(api, pid, ann, f"a{day}", datetime(2026, 3, day, 15, tzinfo=UTC))
        _answer(api, pid, bob, "b1", datetime(2026, 3, 20, 15, tzinfo=UTC))
        progress = _call(api, "GET", f"/programs/{pid}/accounts/{ann}/challenges")["items"]
        assert len(progress) == 1 and progress[0]["challenge"]["id"] == ch["id"]
        assert (progress[0]["completions"], progress[0]["period"]) == (1, "2026-03-20")
        assert progress[0]["history"][0]["effects"][0]["paid"] is True
        bob_progress = _call(api, "GET", f"/programs/{pid}/accounts/{bob}/challenges")["items"]
        assert (bob_progress[0]["streak"], bob_progress[0]["period_value"]) == (1, 1)
        held = _call(api, "GET", f"/programs/{pid}/accounts/{ann}/badges")["items"]
        assert [(b["code"], b["level_name"]) for b in held] == [("helper", "Bronze")]
        up = _call(api, "POST", f"/programs/{pid}/accounts/{ann}/badges", {"badge": "helper"})
        assert up["items"][0]["level"] == 2
        assert _available(api, pid, ann) == 3 * 10 + 100
        retired = _call(api, "PATCH", f"/challenges/{ch['id']}", {"status": "retired"})
        assert retired["status"] == "retired"
        assert _call(api, "PATCH", f"/challenges/{ch['id']}", {"target": 5}, 422)
        board = _call(api, "GET", f"/programs/{pid}/leaderboards/points_earned?period=month"
                                  f"&account_id={bob}")
        assert [(e["name"], e["score"], e["rank"]) for e in board["entries"]] == [
            ("Ann", 130, 1), ("Bob", 10, 2)]
        assert board["me"]["rank"] == 2 and board["label"] == "2026-03"
        _call(api, "POST", f"/programs/{pid}/accounts/{ann}/leaderboard-opt-out",
              {"opted_out": True})
        board = _call(api, "GET", f"/programs/{pid}/leaderboards/activities?period=week")
        assert [(e["name"], e["rank"]) for e in board["entries"]] == [("Bob", 1)]
        assert _call(api, "GET", f"/programs/{pid}/leaderboards/karma", None, 422)["error"][
            "code"] == "invalid_leaderboard"


def test_survey_as_activity_and_nps(api: Api) -> None:
    with clock.frozen(NOW):
        pid, uid, accounts = _setup(api)
        _call(api, "POST", f"/programs/{pid}/challenges", {
            "code": "surveys", "name": "Answer a survey", "trigger": "activity:survey_done",
            "target": 1, "effects": [{"type": "points", "unit": "points", "amount": 5}]}, 201)
        survey = _call(api, "POST", f"/programs/{pid}/surveys", {
            "code": "nps-q1", "name": "Q1", "reward_unit_id": uid, "reward_points": 20,
            "activity_type": "survey_done",
            "questions": [{"code": "nps", "text": "Recommend us?", "kind": "nps"},
                          {"code": "best", "text": "Best part?", "kind": "choice",
                           "options": ["rewards", "service"], "required": False}]}, 201)
        for account, score in zip(accounts, (10, 4, 9), strict=True):
            out = _call(api, "POST", f"/surveys/{survey['id']}/responses",
                        {"account_id": account, "answers": {"nps": score}}, 201)
            assert out["event_id"] and out["entry_id"]
        err = _call(api, "POST", f"/surveys/{survey['id']}/responses",
                    {"account_id": accounts[0], "answers": {"nps": 3}}, 409)
        assert err["error"]["code"] == "already_answered"
        err = _call(api, "POST", f"/surveys/{survey['id']}/responses",
                    {"account_id": accounts[0], "answers": {"nps": 5, "best": "price"}}, 422)
        assert err["error"]["field"] == "answers.best"
        report = _call(api, "GET", f"/programs/{pid}/nps")
        assert report["overall"] == {"responses": 3, "promoters": 2, "passives": 0,
                                     "detractors": 1, "score": 33}
        assert report["by_segment_attribute"]["us"]["score"] == 0 \
            and report["by_segment_attribute"]["eu"][
            "score"] == 100
        assert _available(api, pid, accounts[0]) == 20 + 5
        _call(api, "POST", f"/surveys/{survey['id']}/status", {"status": "closed"})
        other = members_account(api)
        assert _call(api, "POST", f"/surveys/{survey['id']}/responses",
                     {"account_id": other, "answers": {"nps": 3}}, 409)["error"][
            "code"] == "survey_closed"


def members_account(api: Api) -> str:
    with api.db.transaction() as s:
        return members.create_account(s, api.tenant_id, name="Late").id


def test_isolation_scopes_and_validation(api: Api) -> None:
    with clock.frozen(NOW):
        pid, _, (ann, _, _) = _setup(api)
        _, other_key = api.new_tenant()
        assert _call(api, "GET", f"/programs/{pid}/challenges", key=other_key,
                     status=404)["error"]["code"] == "program_not_found"
        reader = api.key_with(["read"])
        _call(api, "POST", f"/programs/{pid}/badges", {"code": "b", "name": "B"}, 403,
              key=reader)
        _call(api, "POST", f"/programs/{pid}/challenges", {
            "code": "c", "name": "C", "trigger": "purchase", "target": 1, "unknown": 1,
            "effects": [{"type": "points", "unit": "points", "amount": 5}]}, 422)
        err = _call(api, "POST", f"/programs/{pid}/challenges", {
            "code": "c", "name": "C", "trigger": "purchases", "target": 1,
            "effects": [{"type": "points", "unit": "points", "amount": 5}]}, 422)
        assert err["error"]["field"] == "trigger"
        err = _call(api, "POST", f"/programs/{pid}/challenges", {
            "code": "c", "name": "C", "trigger": "purchase", "target": 1, "streak": 2,
            "effects": [{"type": "points", "unit": "points", "amount": 5}]}, 422)
        assert err["error"]["field"] == "streak"
        assert _call(api, "GET", f"/programs/{pid}/accounts/acc_nope/challenges",
                     status=404)
        assert _call(api, "GET", f"/programs/{pid}/accounts/{ann}/challenges",
                     key=reader)["items"] == []


def test_member_event_flow(api: Api) -> None:
    with clock.frozen(NOW):
        pid, uid, (ann, bob, cy) = _setup(api)
        ev = _call(api, "POST", f"/programs/{pid}/member-events", {
            "code": "awards", "name": "Print Week Awards", "capacity": 1,
            "invitation_only": True, "starts_at": "2026-04-01T18:00:00+00:00",
            "ends_at": "2026-04-01T23:00:00+00:00", "attendance_unit_id": uid,
            "attendance_points": 75}, 201)
        assert _call(api, "POST", f"/member-events/{ev['id']}/invitations",
                     {"account_ids": [ann, bob]}) == {"invited": 2, "not_invited": []}
        reg = _call(api, "POST", f"/member-events/{ev['id']}/registrations",
                    {"account_id": ann}, 201)
        assert reg["status"] == "registered" and reg["invited"]
        assert _call(api, "POST", f"/member-events/{ev['id']}/registrations",
                     {"account_id": bob}, 409)["error"]["code"] == "event_full"
        assert _call(api, "POST", f"/member-events/{ev['id']}/registrations",
                     {"account_id": cy}, 409)["error"]["code"] == "not_invited"
        done = _call(api, "POST", f"/member-events/{ev['id']}/check-ins", {"account_id": ann})
        assert done["status"] == "attended" and done["entry_id"]
        _call(api, "POST", f"/member-events/{ev['id']}/sponsors",
              {"name": "Inks Ltd", "contribution": 100_000}, 201)
        summary = _call(api, "GET", f"/member-events/{ev['id']}")
        assert (summary["attended"], summary["seats_left"]) == (1, 0)
        assert summary["sponsors"][0]["currency"] == "USD"
        assert len(_call(api, "GET", f"/member-events/{ev['id']}/attendees")["items"]) == 2
        assert _available(api, pid, ann) == 75
        _, other = api.new_tenant()
        _call(api, "GET", f"/member-events/{ev['id']}", key=other, status=404)


def test_reward_menu(api: Api) -> None:
    with clock.frozen(NOW):
        pid, uid, (ann, _, _) = _setup(api)
        for n in range(2):
            _answer(api, pid, ann, f"x{n}", NOW)  # 20 points
        ids = [_call(api, "POST", f"/programs/{pid}/rewards",
                     {"code": f"r{i}", "name": f"R{i}", "kind": "experience", "unit_id": uid,
                      "cost": 5}, 201)["id"] for i in range(3)]
        menu = _call(api, "POST", f"/programs/{pid}/reward-menus",
                      {"code": "monthly", "name": "Pick one", "reward_ids": ids}, 201)
        got = _call(api, "POST", f"/reward-menus/{menu['id']}/picks",
                    {"account_id": ann, "reward_id": ids[1]}, 201)
        assert got["number"] == 1 and got["redemption_id"]
        assert _call(api, "POST", f"/reward-menus/{menu['id']}/picks",
                     {"account_id": ann, "reward_id": ids[0]}, 409)["error"][
            "code"] == "already_picked"
        state = _call(api, "GET", f"/reward-menus/{menu['id']}/accounts/{ann}")
        assert (state["period"], state["picks_left"], len(state["picked"])) == ("2026-03", 0, 1)
        assert _available(api, pid, ann) == 15
        assert [m["code"] for m in _call(api, "GET", f"/programs/{pid}/reward-menus")[
            "items"]] == ["monthly"]


def test_an_invitation_list_with_an_erased_account_invites_the_others(api: Api) -> None:
    """One erased partner in the list is left out and named; the others are invited. An
    unknown account still refuses the whole list."""
    with clock.frozen(NOW):
        pid, _, (ann, bob, cy) = _setup(api)
        with api.db.transaction() as s:
            gone = members.create_account(s, api.tenant_id, name="Gone").id
        _call(api, "POST", f"/accounts/{gone}/erase", {"reason": "gdpr request"})
        ev = _call(api, "POST", f"/programs/{pid}/member-events", {
            "code": "gala", "name": "Gala", "invitation_only": True,
            "starts_at": "2026-04-01T18:00:00+00:00",
            "ends_at": "2026-04-01T23:00:00+00:00"}, 201)
        path = f"/member-events/{ev['id']}/invitations"
        assert _call(api, "POST", path, {"account_ids": [ann, gone, bob]}) == {
            "invited": 2, "not_invited": [{"account_id": gone, "reason": "account_erased"}]}
        attendees = _call(api, "GET", f"/member-events/{ev['id']}/attendees")["items"]
        assert sorted(a["account_id"] for a in attendees) == sorted([ann, bob])
        assert _call(api, "POST", f"/member-events/{ev['id']}/registrations",
                     {"account_id": gone}, 409)["error"]["code"] == "account_erased"
        err = _call(api, "POST", path, {"account_ids": [cy, "acc_nope"]}, 404)["error"]
        assert err["code"] == "account_not_found" and "acc_nope" in err["message"]
        assert len(_call(api, "GET", f"/member-events/{ev['id']}/attendees")["items"]) == 2
