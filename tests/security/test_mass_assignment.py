"""T22: protected fields (balances, tier, status, tenant, ids, secrets, timestamps) cannot be
written through any request body. Every writable route of ``create_app()`` is tried with each
protected field injected next to a plausible body: the API refuses the unknown field (422
naming it) and nothing of the tenant changes. A route whose schema *declares* a protected
name must be listed in ``DELIBERATE`` (an admin action that exists to change it)."""

from __future__ import annotations

from tests.security.conftest import Two, snapshot
from tests.security.routes import api_routes, body_schema, make_body
from tests.support import figures

PROTECTED = (
    "tenant_id", "id", "balance", "balances", "available", "pending", "lifetime_earned",
    "points", "tier", "tier_id", "tier_level", "level", "status", "secret", "secret_hash",
    "scopes_granted", "revoked_at", "last_used_at", "created_at", "updated_at", "seq", "hash",
    "entry_id", "approved_by", "stock_reserved",
)

# Route → protected names its body declares on purpose (admin actions about exactly that).
DELIBERATE: dict[str, set[str]] = {
    "PATCH /v1/programs/{program_id}": {"status"},
    "PATCH /v1/rewards/{reward_id}": {"status"},
    "PATCH /v1/accounts/{account_id}": {"status"},
    "PATCH /v1/users/{user_id}": {"status"},
    "PATCH /v1/webhook-endpoints/{endpoint_id}": {"status"},
    "POST /v1/programs/{program_id}/accounts/{account_id}/tier-placement": {"level"},
    "POST /v1/entries/{entry_id}/reverse": set(),
    "POST /v1/programs/{program_id}/redemptions": set(),
    "PATCH /v1/challenges/{challenge_id}": {"status"},
    "POST /v1/surveys/{survey_id}/status": {"status"},
    "POST /v1/member-events/{member_event_id}/status": {"status"},
    "POST /v1/programs/{program_id}/accounts/{account_id}/badges": {"level"},
}

# Routes that compute an answer from a free-form program document and write nothing: for them
# the proof is that nothing persisted (the snapshot below), not a refusal.
COMPUTE_ONLY = {
    "POST /v1/definitions/validate",
    "POST /v1/programs/{program_id}/definition/diff",
}


def test_protected_fields_cannot_be_written_by_any_body(two: Two) -> None:
    spec = two.app.openapi()
    a = two.a
    before = snapshot(two.db, a.tenant_id)
    declared: list[str] = []
    tries = refused = 0
    accepted: list[str] = []
    for route in api_routes(two.app):
        schema = body_schema(spec, route)
        if schema is None or not route.writes:
            continue
        properties = set(schema.get("properties", {}))
        for name in sorted(properties & set(PROTECTED)):
            if name not in DELIBERATE.get(route.key, set()):
                declared.append(f"{route.key} declares {name}")
        body, _ = make_body(spec, schema, a.ids)
        for name in PROTECTED:
            if name in properties:
                continue
            injected = {**(body or {}), name: a.ids.get(name, 10**9)}
            r = two.call(a.admin, route.method, route.url(a.ids), injected)
            tries += 1
            payload = r.json() if r.content else {}
            problems = payload.get("error", {}).get("problems", [])
            # Validators of program documents answer 200 {"valid": false, "problems": [...]}
            # naming the unknown section; they write nothing.
            named = {p.get("field") for p in problems} | {
                p.get("path") for p in payload.get("problems", []) if payload.get("valid") is False}
            if route.key in COMPUTE_ONLY or (r.status_code in (200, 422) and name in named and (
                    r.status_code == 422 or payload.get("valid") is False)):
                refused += 1
            else:
                accepted.append(f"{route.key} +{name}: {r.status_code} {r.text[:200]}")
    after = snapshot(two.db, a.tenant_id)
    changed = sorted(t for t in before if before[t] != after[t])
    figures.record("t22.mass_assignment", tries=tries, refused=refused,
                   protected_field_changes_persisted=len(changed) + len(accepted))
    assert declared == [], "protected fields in request schemas:\n" + "\n".join(declared)
    assert accepted == [], "\n".join(accepted[:20])
    assert changed == [], f"tables changed: {changed}"
