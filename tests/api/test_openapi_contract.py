"""The OpenAPI document describes what the API answers (found by T23, schemathesis): the bearer
scheme and the error answers on every /v1 operation, and 405 answers naming every method of
the path in ``Allow``."""

from __future__ import annotations

from fastapi.testclient import TestClient

from allegiance.api.app import create_app
from allegiance.kit.db import Database

ERRORS = ("400", "401", "403", "404", "409", "422", "429")


def test_every_operation_declares_the_key_and_the_error_answers() -> None:
    spec = create_app(Database("sqlite://"), rate_limit_per_minute=0).openapi()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`"}
    problems = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            if operation.get("security") != [{"apiKey": []}]:
                problems.append(f"{method} {path}: no security")
            for status in ERRORS:
                schema = operation["responses"].get(status, {}).get("content", {}).get(
                    "application/json", {}).get("schema", {})
                if schema.get("$ref") != "#/components/schemas/ErrorResponse":
                    problems.append(f"{method} {path}: {status} is not the error shape")
    assert problems == []
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_405_names_every_method_of_the_path() -> None:
    client = TestClient(create_app(Database("sqlite://"), rate_limit_per_minute=0))
    for path, allowed in (("/v1/accounts", "GET, POST"), ("/v1/accounts/acc_1", "GET, PATCH"),
                          ("/v1/referrals/attribute", "POST"), ("/health", "GET")):
        r = client.delete(path)
        assert r.status_code == 405, path
        assert r.headers["Allow"] == allowed, path
        assert r.json()["error"]["code"] == "method_not_allowed"
