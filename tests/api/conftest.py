"""API fixtures: an app on a fresh database, a tenant with an admin key, and a client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from allegiance import tenants
from allegiance.api.app import create_app
from allegiance.kit.db import Database
from tests.support.invariants import assert_ledger_invariants


@dataclass
class Api:
    client: TestClient
    db: Database
    tenant_id: str
    key: str

    def headers(self, key: str | None = None, idempotency_key: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {key or self.key}"}
        if idempotency_key:
            h["Idempotency-Key"] = idempotency_key
        return h

    def new_tenant(self, name: str = "Other tenant", scopes: list[str] | None = None) -> tuple[str, str]:
        """Another tenant and a key of it: (tenant_id, secret)."""
        with self.db.transaction() as s:
            t = tenants.create_tenant(s, name)
            issued = tenants.create_api_key(s, t.id, name="admin", scopes=scopes or ["admin"])
            return t.id, issued.secret

    def key_with(self, scopes: list[str]) -> str:
        with self.db.transaction() as s:
            return tenants.create_api_key(s, self.tenant_id, name="k", scopes=scopes).secret


@pytest.fixture
def api(db: Database) -> Iterator[Api]:
    app = create_app(db, rate_limit_per_minute=0)
    with db.transaction() as s:
        t = tenants.create_tenant(s, "API tenant")
        secret = tenants.create_api_key(s, t.id, name="admin", scopes=["admin"]).secret
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, db, t.id, secret)
    assert_ledger_invariants(db)
