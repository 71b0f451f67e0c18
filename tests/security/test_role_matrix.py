"""T21: the role × route matrix (``allegiance.api.access``) covers every route of
``create_app()``, agrees with each route's declaration, and is what the API does: each scope
gets exactly what the matrix says on every route."""

from __future__ import annotations

from allegiance.api import access
from allegiance.api.app import create_app
from allegiance.kit.auth import scope_allows
from allegiance.kit.db import Database
from tests.security.conftest import Two
from tests.security.routes import api_routes, declared_scope
from tests.support import figures

SCOPES = ("read", "integration", "admin")


def test_matrix_lists_every_route_and_agrees_with_the_routes() -> None:
    app = create_app(Database("sqlite://"), rate_limit_per_minute=0)
    routes = list(api_routes(app))
    keys = {r.key for r in routes}
    missing = sorted(keys - set(access.MATRIX))
    stale = sorted(set(access.MATRIX) - keys)
    disagree = sorted(r.key for r in routes if access.MATRIX.get(r.key) != declared_scope(r.route)
                      and r.key in access.MATRIX)
    assert missing == [], f"add these routes to allegiance.api.access.MATRIX: {missing}"
    assert stale == [], f"the matrix lists routes that do not exist: {stale}"
    assert disagree == [], f"need() disagrees with the matrix: {disagree}"
    assert all(scope in SCOPES for scope in access.MATRIX.values())
    assert all(declared_scope(r.route) is not None for r in routes), "a route without need()"


def test_each_scope_gets_exactly_what_the_matrix_says(two: Two) -> None:
    spec = two.app.openapi()
    assert spec["paths"]
    routes = list(api_routes(two.app))
    calls = forbidden_ok = allowed_refused = 0
    wrong: list[str] = []
    # Weakest first, so the admin's writes (which may delete the objects) come last.
    for scope in SCOPES:
        key = two.a.key(scope)
        for route in routes:
            required = access.MATRIX[route.key]
            allowed = scope_allows([scope], required)
            body = {} if route.method in ("POST", "PUT", "PATCH") else None
            r = two.call(key, route.method, route.url(two.a.ids), body)
            calls += 1
            refused = r.status_code in (401, 403) and (
                r.json().get("error", {}).get("field") == "Authorization")
            if allowed and refused:
                allowed_refused += 1
                wrong.append(f"{scope} refused on {route.key}: {r.text}")
            if not allowed and not refused:
                forbidden_ok += 1
                wrong.append(f"{scope} not refused on {route.key}: {r.status_code} {r.text}")
            assert r.status_code < 500, f"{scope} {route.key}: {r.status_code} {r.text}"
    figures.record("t21.role_matrix", routes=len(routes), scopes=len(SCOPES), calls=calls,
                   forbidden_calls_succeeding=forbidden_ok, allowed_calls_refused=allowed_refused)
    assert wrong == []
