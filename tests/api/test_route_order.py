"""The app tries routes in order and mounts the busiest routers first; that is only safe while
no route can be reached by another route's template. For every route, a concrete path (each
path parameter filled in) with each of its methods must resolve to that route itself."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import compile_path

from allegiance.api.app import create_app
from allegiance.kit.db import Database


def _routes(app: Any) -> list[tuple[str, set[str]]]:
    found: list[tuple[str, set[str]]] = []
    for route in app.router.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        pairs = ([(c.path, c.original_route) for c in contexts()] if contexts is not None
                 else [(getattr(route, "path", None), route)])
        for path, original in pairs:
            methods = getattr(original, "methods", None)
            if isinstance(path, str) and methods:
                found.append((path, set(methods)))
    return found


def test_every_route_is_reached_by_its_own_paths() -> None:
    db = Database("sqlite://")
    try:
        routes = _routes(create_app(db, rate_limit_per_minute=0))
    finally:
        db.dispose()
    table = [(path, methods, compile_path(path)[0]) for path, methods in routes]
    assert len(table) > 200
    shadowed = []
    for path, methods, _ in table:
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        for method in methods:
            first = next(p for p, ms, pattern in table
                         if method in ms and pattern.match(concrete))
            if first != path:
                shadowed.append(f"{method} {path} -> {first}")
    assert shadowed == []
