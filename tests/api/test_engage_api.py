"""The API of courses and certifications (completions by API and by a learning platform's
file), account managers and custom requests, super tickets and the leavers' survey: scopes,
validation naming the field, replays that never count twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from allegiance import definitions, ledger, members, operators, tenants
from allegiance.imports import jobs as import_jobs
from allegiance.kit import clock
from tests.api.conftest import Api

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 14, 12, tzinfo=UTC)

DOC: dict[str, Any] = {
    "program": {"code": "academy", "name": "Academy Rewards", "base_currency": "USD"},
    "units": [{"code": "points", "name": "Points", "kind": "points", "value_in_base": "0.01"}],
    "activity_types": {"course_completed": {"attributes": {"course": "str"}}},
    "rules": [{"code": "course", "trigger": "activity:course_completed",
               "effects": [{"type": "fixed", "unit": "points", "points": 100}]}],
}


def _call(api: Api, method: str, path: str, body: Any = None, status: int = 200,
          key: str | None = None, **kw: Any) -> Any:
    r = api.client.request(method, f"/v1{path}", json=body, headers=api.headers(key, **kw))
    assert r.status_code == status, r.text
    return r.json()


def _setup(api: Api, n: int = 2) -> tuple[str, str, list[str]]:
    with api.db.transaction() as s:
        pid = definitions.apply(s, api.tenant_id, DOC, actor="test",
                                effective_from=EPOCH).program_id
        accounts = [members.create_account(s, api.tenant_id, name=f"Partner {i}",
                                           member_number=f"P-{i}").id for i in range(n)]
        unit = tenants.unit_by_code(s, api.tenant_id, pid, "points").id
    return pid, unit, accounts


def _available(api: Api, pid: str, unit: str, account: str) -> int:
    with api.db.read() as s:
        return ledger.balance_of(ledger.wallet(s, api.tenant_id, pid, unit, "account",
                                               account)).available


def test_courses_by_api_and_by_file_make_a_certification(api: Api) -> None:
    with clock.frozen(NOW):
        pid, unit, (ann, bob) = _setup(api)
        for code in ("inbound", "seo"):
            _call(api, "POST", f"/programs/{pid}/courses", {"code": code, "name": code}, 201)
        _call(api, "POST", f"/programs/{pid}/badges",
              {"code": "pro", "name": "Pro", "levels": ["Certified"]}, 201)
        bad = _call(api, "POST", f"/programs/{pid}/certifications",
                    {"code": "pro", "name": "Pro", "courses": ["nope"]}, 422)
        assert bad["error"]["field"] == "courses[0]"
        cert = _call(api, "POST", f"/programs/{pid}/certifications",
                     {"code": "pro", "name": "Pro", "courses": ["inbound", "seo"],
                      "valid_days": 730, "badge": "pro"}, 201)
        courses = {c["code"]: c["id"] for c in
                   _call(api, "GET", f"/programs/{pid}/courses")["items"]}
        done = _call(api, "POST", f"/courses/{courses['inbound']}/completions",
                     {"account_id": ann}, 201)
        again = _call(api, "POST", f"/courses/{courses['inbound']}/completions",
                      {"account_id": ann}, 201)
        assert again["id"] == done["id"]  # the same completion: points paid once
        assert _available(api, pid, unit, ann) == 100
        # the learning platform's export: one row per completion, imported as activities
        _call(api, "PUT", f"/programs/{pid}/import-mappings/lms/activities", {"mapping": {
            "columns": {"external_id": "Completion ID", "member_number": "Partner",
                        "occurred_at": "Completed"},
            "attributes": {"course": "Course"},
            "defaults": {"activity_type": "course_completed"}}})
        csv = ("Completion ID,Partner,Course,Completed\n"
               "LMS-1,P-0,seo,2026-04-13T09:00:00+00:00\n"
               "LMS-2,P-1,inbound,2026-04-13T10:00:00+00:00\n"
               "LMS-3,P-9,seo,2026-04-13T11:00:00+00:00\n")
        for _ in range(2):  # a re-imported file completes nothing twice
            r = api.client.post(f"/v1/programs/{pid}/imports", headers=api.headers(),
                                files={"file": ("lms.csv", csv.encode(), "text/csv")},
                                data={"kind": "activities", "source": "lms"})
            assert r.status_code == 202, r.text
            import_jobs.run_pending(api.db)
        assert _available(api, pid, unit, ann) == 200
        transcript = _call(api, "GET", f"/programs/{pid}/accounts/{ann}/academy")
        assert [c["course"] for c in transcript["courses"]] == ["seo", "inbound"]
        assert [(c["certification"], c["status"]) for c in transcript["certifications"]] == [
            ("pro", "active")]
        badges = _call(api, "GET", f"/programs/{pid}/accounts/{ann}/badges")["items"]
        assert [b["code"] for b in badges] == ["pro"]
        bob_t = _call(api, "GET", f"/programs/{pid}/accounts/{bob}/academy")
        assert (len(bob_t["courses"]), bob_t["certifications"]) == (1, [])
        read = api.key_with(["read"])
        _call(api, "POST", f"/certifications/{cert['id']}/grants", {"account_id": bob}, 403,
              key=read)
        held = _call(api, "POST", f"/certifications/{cert['id']}/grants",
                     {"account_id": bob, "source": "exam passed"})
        assert held["status"] == "active"
        _call(api, "POST", f"/certifications/{cert['id']}/revocations", {"account_id": bob},
              403, key=api.key_with(["integration"]))


def test_custom_request_through_the_api(api: Api) -> None:
    with clock.frozen(NOW):
        pid, unit, (corp, _) = _setup(api)
        with api.db.transaction() as s:
            mia = operators.create_operator(s, api.tenant_id, email="mia@utinet.example",
                                            name="Mia", role="support",
                                            password="a long enough password 42",
                                            actor="t").id
            ledger.post_entry(s, api.tenant_id, ledger.EntryRequest(
                program_id=pid, kind="earn", lines=(
                    ledger.Line(ledger.program_account(s, api.tenant_id, pid, unit,
                                                       "issued").id,
                                unit, ledger.Side.DEBIT, 5000),
                    ledger.Line(ledger.wallet(s, api.tenant_id, pid, unit, "account",
                                              corp).id, unit, ledger.Side.CREDIT, 5000))))
        integration = api.key_with(["integration"])
        body = {"account_id": corp, "description": "Asset-accounting cloud service"}
        assert _call(api, "POST", f"/programs/{pid}/custom-requests", body, 409,
                     key=integration)["error"]["code"] == "no_account_manager"
        _call(api, "PUT", f"/accounts/{corp}/manager", {"operator_id": mia}, 403,
              key=integration)
        _call(api, "PUT", f"/accounts/{corp}/manager", {"operator_id": mia})
        assert _call(api, "GET", f"/accounts/{corp}/manager")["operator_id"] == mia
        assert [a["account_id"] for a in
                _call(api, "GET", f"/operators/{mia}/accounts")["items"]] == [corp]
        req = _call(api, "POST", f"/programs/{pid}/custom-requests", body, 201,
                    key=integration, idempotency_key="req-1")
        replay = _call(api, "POST", f"/programs/{pid}/custom-requests", body, 201,
                       key=integration, idempotency_key="req-1")
        assert replay["id"] == req["id"]
        quote = {"operator_id": mia, "unit_id": unit, "price": 3000}
        _call(api, "POST", f"/custom-requests/{req['id']}/quote", quote, 403, key=integration)
        assert _call(api, "POST", f"/custom-requests/{req['id']}/quote",
                     dict(quote, price=0), 422)["error"]["field"] == "price"
        _call(api, "POST", f"/custom-requests/{req['id']}/quote", quote)
        accepted = _call(api, "POST", f"/custom-requests/{req['id']}/accept", key=integration)
        assert accepted["status"] == "accepted"
        assert _available(api, pid, unit, corp) == 2000
        _call(api, "POST", f"/custom-requests/{req['id']}/fulfil", {"operator_id": mia})
        listed = _call(api, "GET", f"/programs/{pid}/custom-requests?status=fulfilled")
        assert [r["id"] for r in listed["items"]] == [req["id"]]
        _, other_key = api.new_tenant()
        _call(api, "GET", f"/custom-requests/{req['id']}", status=404, key=other_key)


def test_super_ticket_and_leavers_survey_through_the_api(api: Api) -> None:
    with clock.frozen(NOW) as c:
        pid, unit, (ann, bob) = _setup(api)
        reward = _call(api, "POST", f"/programs/{pid}/rewards", {
            "code": "concert", "name": "Concert", "kind": "experience", "unit_id": unit,
            "cost": 1, "stock": 1}, 201)
        window = {"opens_at": NOW.isoformat(), "closes_at": NOW.isoformat()}
        bad = _call(api, "POST", f"/programs/{pid}/super-tickets", {
            "code": "t", "name": "T", "reward_id": reward["id"], "mode": "lottery", **window},
            422)
        assert bad["error"]["field"] == "closes_at"
        ticket = _call(api, "POST", f"/programs/{pid}/super-tickets", {
            "code": "t", "name": "T", "reward_id": reward["id"], "mode": "lottery",
            "opens_at": NOW.isoformat(), "closes_at": (NOW + timedelta(hours=1)).isoformat()},
            201)
        for account in (ann, bob):  # 100 points each for an activity, then an entry
            _call(api, "POST", f"/programs/{pid}/events", {
                "kind": "activity", "activity_type": "course_completed",
                "external_id": f"x-{account}", "account_id": account,
                "attributes": {"course": "none"}}, 201)
            _call(api, "POST", f"/super-tickets/{ticket['id']}/entries",
                  {"account_id": account}, 201)
        c.set(NOW + timedelta(hours=1))
        drawn = _call(api, "POST", f"/super-tickets/{ticket['id']}/draw")["items"]
        assert sorted(e["status"] for e in drawn) == ["lost", "won"]
        # the leavers' survey
        survey = _call(api, "POST", f"/programs/{pid}/surveys", {
            "code": "exit", "name": "Exit", "audience": "leavers",
            "questions": [{"code": "nps", "text": "Recommend us?", "kind": "nps"}]}, 201)
        enrolment = _call(api, "GET", f"/programs/{pid}/enrolments?account_id={ann}")[
            "items"][0]["id"]
        _call(api, "POST", f"/enrolments/{enrolment}/status", {"to_status": "closed"})
        assert _call(api, "POST", f"/surveys/{survey['id']}/leavers")["invited"] == 1
        assert _call(api, "POST", f"/surveys/{survey['id']}/leavers")["invited"] == 0
        _call(api, "POST", f"/surveys/{survey['id']}/responses",
              {"account_id": bob, "answers": {"nps": 10}}, 409)
        _call(api, "POST", f"/surveys/{survey['id']}/responses",
              {"account_id": ann, "answers": {"nps": 6}}, 201)
        nps = _call(api, "GET", f"/programs/{pid}/nps")
        assert (nps["overall"]["responses"], nps["leavers"]["score"]) == (0, -100)


def test_a_leavers_answers_are_recorded_as_an_activity(api: Api) -> None:
    """Answers to the leavers' survey become an activity of the survey's type (so rules and
    analytics see them) although the enrolment is closed; answering again counts nothing."""
    doc = {**DOC, "activity_types": {**DOC["activity_types"], "exit_survey": {"attributes": {}}},
           "rules": [*DOC["rules"], {"code": "exit", "trigger": "activity:exit_survey",
                                     "effects": [{"type": "fixed", "unit": "points",
                                                  "points": 30}]}]}
    with clock.frozen(NOW):
        with api.db.transaction() as s:
            pid = definitions.apply(s, api.tenant_id, doc, actor="test",
                                    effective_from=EPOCH).program_id
            ann = members.create_account(s, api.tenant_id, name="Ann").id
            unit = tenants.unit_by_code(s, api.tenant_id, pid, "points").id
        survey = _call(api, "POST", f"/programs/{pid}/surveys", {
            "code": "exit", "name": "Exit", "audience": "leavers", "activity_type": "exit_survey",
            "questions": [{"code": "nps", "text": "Recommend us?", "kind": "nps"}]}, 201)
        _call(api, "POST", f"/programs/{pid}/events", {
            "kind": "activity", "activity_type": "course_completed", "external_id": "c-1",
            "account_id": ann, "attributes": {"course": "x"}}, 201)
        enrolment = _call(api, "GET", f"/programs/{pid}/enrolments?account_id={ann}")[
            "items"][0]["id"]
        _call(api, "POST", f"/enrolments/{enrolment}/status", {"to_status": "closed"})
        # an ordinary activity of the closed enrolment is still refused
        refused = _call(api, "POST", f"/programs/{pid}/events", {
            "kind": "activity", "activity_type": "exit_survey", "external_id": "x-1",
            "account_id": ann}, 422)
        assert refused["error"]["field"] == "account_id"
        assert _call(api, "POST", f"/surveys/{survey['id']}/leavers")["invited"] == 1
        answered = _call(api, "POST", f"/surveys/{survey['id']}/responses",
                         {"account_id": ann, "answers": {"nps": 4}}, 201)
        assert answered["event_id"] is not None
        event = _call(api, "GET", f"/events/{answered['event_id']}")
        assert (event["kind"], event["activity_type"], event["account_id"],
                event["status"]) == ("activity", "exit_survey", ann, "processed")
        assert _available(api, pid, unit, ann) == 100 + 30
        _call(api, "POST", f"/surveys/{survey['id']}/responses",
              {"account_id": ann, "answers": {"nps": 9}}, 409)
        assert _available(api, pid, unit, ann) == 100 + 30
        listed = _call(api, "GET", f"/programs/{pid}/events?account_id={ann}")
        assert sum(1 for e in listed["items"] if e["activity_type"] == "exit_survey") == 1
