"""T20: every id-taking route of ``create_app()``, called by tenant A with tenant B's ids (in
the path, in the body, or both) and with ids that do not exist: no success, nothing of B
changed, nothing of B shown. The routes come from the app, so new routes are covered."""

from __future__ import annotations

from urllib.parse import urlencode

from allegiance.kit.ids import new_id
from tests.security.conftest import Two, snapshot
from tests.security.routes import api_routes, body_schema, id_query, make_body
from tests.support import figures


def _nonexistent(ids: dict[str, str]) -> dict[str, str]:
    return {name: new_id(value.partition("_")[0]) for name, value in ids.items()}


def test_no_route_reaches_another_tenant(two: Two) -> None:
    a, b = two.a, two.b
    spec = two.app.openapi()
    before = snapshot(two.db, b.tenant_id)
    attempts: list[str] = []
    successes: list[str] = []
    leaks: list[str] = []
    unknown_params: set[str] = set()
    # Ids only: the map also holds codes and names that are the same in both tenants.
    b_secret_values = {v for k, v in b.ids.items() if k.endswith("_id") and k != "program_id"}
    b_name = "Tenant B"  # in the names of B's tenant and objects (tests/security/conftest.py)
    for route in api_routes(two.app):
        unknown_params |= {p for p in route.id_names if p not in a.ids}
        if unknown_params:
            continue
        schema = body_schema(spec, route)
        variants: list[tuple[str, dict[str, str], dict[str, str]]] = []
        if route.params:
            variants.append(("other-tenant path", b.ids, b.ids))
            variants.append(("other-tenant path, own body", b.ids, a.ids))
            variants.append(("nonexistent path", _nonexistent(a.ids), a.ids))
        if schema is not None:
            variants.append(("other-tenant body", a.ids, b.ids))
        for label, path_ids, body_ids in variants:
            body, used = make_body(spec, schema, body_ids)
            if label == "other-tenant body" and not used:
                continue  # the body names no object: nothing of B to reach
            if route.method in ("POST", "PUT", "PATCH") and body is None:
                body = {}
            r = two.call(a.admin, route.method, route.url(path_ids), body)
            name = f"{route.key} [{label}]"
            attempts.append(name)
            assert r.status_code < 500, f"{name}: {r.status_code} {r.text}"
            if 200 <= r.status_code < 300:
                successes.append(f"{name}: {r.status_code} {r.text[:300]}")
            text = r.text
            if b.tenant_id in text or b_name in text or any(
                    v in text for v in b_secret_values if v not in route.url(path_ids)
                    and v not in str(body)):
                leaks.append(name)
        # Filters naming B's objects (``?account_id=``) on A's own routes: an empty answer
        # or a refusal, never anything of B.
        query = id_query(spec, route, b.ids)
        if route.method == "GET" and query:
            url = route.url(a.ids)
            url += ("&" if "?" in url else "?") + urlencode(query)
            r = two.call(a.admin, "GET", url)
            name = f"{route.key} [other-tenant query]"
            attempts.append(name)
            assert r.status_code < 500, f"{name}: {r.status_code} {r.text}"
            if b.tenant_id in r.text or b_name in r.text or any(
                    v in r.text for v in b_secret_values if v not in url):
                leaks.append(name)
    assert not unknown_params, f"give the security world objects for {sorted(unknown_params)}"
    after = snapshot(two.db, b.tenant_id)
    changed = sorted(t for t in before if before[t] != after[t])
    figures.record("t20.bola", attempts=len(attempts), cross_tenant_successes=len(successes),
                   leaks=len(leaks), tables_of_b_changed=len(changed))
    assert successes == [], "\n".join(successes)
    assert leaks == [], "\n".join(leaks)
    assert changed == [], f"tenant B's data changed in {changed}"
    # The matrix must have tried something on every id-taking route.
    assert len(attempts) >= 3 * sum(1 for r in api_routes(two.app) if r.params)


def test_own_ids_work_on_every_read_route(two: Two) -> None:
    """The id map is right: with its own ids, tenant A reads every id-taking GET route (so the
    cross-tenant refusals above are refusals, not typos)."""
    failures = []
    for route in api_routes(two.app):
        if route.method != "GET" or not route.params:
            continue
        r = two.call(two.a.admin, "GET", route.url(two.a.ids))
        if r.status_code != 200:
            failures.append(f"{route.key}: {r.status_code} {r.text[:200]}")
    assert failures == []
