"""T21, program-admin: a key limited to some programs reaches nothing of another program of
its own tenant — every id-taking route whose object belongs to a program is refused, reads
and writes alike."""

from __future__ import annotations

from typing import Any

from tests.security.conftest import Two
from tests.security.routes import api_routes, body_schema, make_body
from tests.support import figures

# Keys of the id map naming an object that belongs to one program.
PROGRAM_SCOPED = {
    "program_id", "unit_id", "money_unit_id", "enrolment_id", "invitation_id", "ladder_id",
    "wallet_id", "entry_id", "hold_id", "adjustment_id", "reward_id", "redemption_id",
    "event_id", "job_id", "challenge_id", "survey_id", "member_event_id", "menu_id",
    "subscription_id", "segment_id", "campaign_id", "schedule_id", "plan_id", "code_id",
    "referral_id", "claim_id", "mdf_claim_id", "fund_id", "batch_id", "item_id",
}


def _limited_key(two: Two) -> str:
    a = two.a
    other = two.call(a.admin, "POST", "/v1/programs",
                     {"code": "other", "name": "Other", "base_currency": "USD"}).json()
    limited = two.call(a.admin, "POST", "/v1/api-keys", {
        "name": "program admin", "scopes": ["admin"], "program_ids": [other["id"]]}).json()
    assert limited["program_ids"] == [other["id"]]
    secret: str = limited["secret"]
    return secret


def test_a_program_limited_key_reaches_no_other_program(two: Two) -> None:
    a = two.a
    key = _limited_key(two)
    reached: list[str] = []
    tried = 0
    for route in api_routes(two.app):
        if not PROGRAM_SCOPED & set(route.id_names) or route.method != "GET":
            continue
        r = two.call(key, route.method, route.url(a.ids))
        tried += 1
        if 200 <= r.status_code < 300:
            reached.append(f"{route.key}: {r.status_code} {r.text[:150]}")
    figures.record("t21.program_limited_keys", routes=tried, reached_other_program=len(reached))
    assert tried >= 10
    assert reached == [], "\n".join(reached)


def test_a_program_limited_key_writes_nothing_of_another_program(two: Two) -> None:
    """Every write route naming a program's object, in its path or its body (``event_id``,
    ``wallet_id``, ``program_id``…), with the admin's plausible body: refused."""
    a = two.a
    key = _limited_key(two)
    spec = two.app.openapi()
    scoped_ids = {k: v for k, v in a.ids.items() if k in PROGRAM_SCOPED}
    reached: list[str] = []
    tried = 0
    for route in api_routes(two.app):
        if not route.writes:
            continue
        schema = body_schema(spec, route)
        _, names_program_object = make_body(spec, schema, scoped_ids)
        if not PROGRAM_SCOPED & set(route.id_names) and not names_program_object:
            continue
        body: Any = make_body(spec, schema, a.ids)[0]
        if body is None and route.method in ("POST", "PUT", "PATCH"):
            body = {}
        r = two.call(key, route.method, route.url(a.ids), body)
        tried += 1
        assert r.status_code < 500, f"{route.key}: {r.status_code} {r.text}"
        if 200 <= r.status_code < 300:
            reached.append(f"{route.key}: {r.status_code} {r.text[:150]}")
    assert tried >= 50
    assert reached == [], "\n".join(reached)
