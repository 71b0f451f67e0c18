"""The routes of ``create_app()`` and request bodies generated from their OpenAPI schemas, so
the security tests cover every route, including ones added later."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

PARAM = re.compile(r"{(\w+)}")
# Body fields that name an object of the id map under another name.
ALIASES = {
    "into_account_id": "account_id", "from_wallet_id": "wallet_id", "to_wallet_id": "wallet_id",
    "owner_id": "account_id", "parent_id": "account_id", "parent_account_id": "account_id",
    "target_account_id": "account_id", "source_wallet_id": "wallet_id",
    "reward_unit_id": "unit_id", "attendance_unit_id": "unit_id",
    "bounty_unit_id": "money_unit_id", "commission_unit_id": "money_unit_id",
}
# Path parameters that take different kinds of value on different routes: (route path,
# parameter) → the key of the id map that fills it (default: the parameter's own name).
PARAM_KEYS = {
    ("/v1/programs/{program_id}/reports/{kind}", "kind"): "report_kind",
    **{(f"/v1/mdf-claims/{{claim_id}}/{action}", "claim_id"): "mdf_claim_id"
       for action in ("preapprove", "approve", "reject")},
}
# Required query parameters, by route path (checked: a GET route that needs one fails
# test_own_ids_work_on_every_read_route until it is listed here).
QUERY = {
    "/v1/programs/{program_id}/statements": "from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    route: APIRoute

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    @property
    def id_names(self) -> list[str]:
        """The keys of the id map that fill the path parameters."""
        return [PARAM_KEYS.get((self.path, p), p) for p in self.params]

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, ids: dict[str, str]) -> str:
        path = PARAM.sub(lambda m: ids[PARAM_KEYS.get((self.path, m.group(1)), m.group(1))],
                         self.path)
        return f"{path}?{QUERY[self.path]}" if self.path in QUERY else path

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


def _flatten(routes: list[Any]) -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, route
        elif hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
            for context in route.effective_route_contexts():
                if isinstance(context.original_route, APIRoute):
                    yield context.path, context.original_route


def api_routes(app: FastAPI) -> Iterator[Route]:
    """Every /v1 route with its full path; checked against the OpenAPI document's paths."""
    found: list[Route] = []
    for path, route in _flatten(list(app.routes)):
        if path.startswith("/v1/"):
            found.extend(Route(method, path, route) for method in sorted(route.methods))
    documented = {f"{m.upper()} {p}" for p, ops in app.openapi()["paths"].items()
                  for m in ops if p.startswith("/v1/")}
    assert {r.key for r in found} == documented, "route walk and OpenAPI disagree"
    yield from found


def declared_scope(route: APIRoute) -> str | None:
    """The scope the route passes to ``need()`` (found in the dependency's closure)."""
    for dependency in route.dependant.dependencies:
        call = dependency.call
        if call is None:
            continue
        scope = inspect.getclosurevars(call).nonlocals.get("scope")
        if isinstance(scope, str):
            return scope
    return None


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            options = [o for o in schema[combinator] if o.get("type") != "null"]
            if options:
                return _resolve(spec, options[0])
    return schema


def body_schema(spec: dict[str, Any], route: Route) -> dict[str, Any] | None:
    operation = spec["paths"].get(route.path, {}).get(route.method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    return _resolve(spec, content["schema"])


def id_query(spec: dict[str, Any], route: Route, ids: dict[str, str]) -> dict[str, str]:
    """The route's query parameters that name an object of ``ids``, filled from it."""
    operation = spec["paths"].get(route.path, {}).get(route.method.lower(), {})
    out = {}
    for parameter in operation.get("parameters", []):
        target = id_key(parameter["name"]) if parameter.get("in") == "query" else None
        if target is not None and target in ids:
            out[parameter["name"]] = ids[target]
    return out


def id_key(name: str) -> str | None:
    if name in ALIASES:
        return ALIASES[name]
    return name if name.endswith("_id") else None


def placeholder(spec: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    schema = _resolve(spec, schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object" or "properties" in schema:
        if depth > 2:
            return {}
        return {name: placeholder(spec, sub, depth + 1)
                for name, sub in schema.get("properties", {}).items()
                if name in schema.get("required", [])}
    return "x" * max(1, int(schema.get("minLength", 1)))


def make_body(spec: dict[str, Any], schema: dict[str, Any] | None,
              ids: dict[str, str]) -> tuple[dict[str, Any] | None, bool]:
    """A body with every required field and every id field it knows filled from ``ids``;
    the flag says whether any id of ``ids`` went in."""
    if schema is None:
        return None, False
    body: dict[str, Any] = {}
    used = False
    for name, sub in schema.get("properties", {}).items():
        target = id_key(name)
        many = id_key(name[:-1]) if name.endswith("_ids") else None
        if target is not None and target in ids:
            body[name] = ids[target]
            used = True
        elif many is not None and many in ids:  # a list of ids: one of the map's
            body[name] = [ids[many]]
            used = True
        elif name in schema.get("required", []):
            body[name] = placeholder(spec, sub)
    return body, used
