"""Two tenants with one of everything, on a fresh database, behind one app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from allegiance.api.app import create_app
from allegiance.kit.db import Database
from allegiance.kit.settings import get_settings
from allegiance.registry import metadata
from tests.api.conftest import api  # noqa: F401  (the API fixture, for security tests)
from tests.security.world import TenantWorld, build_tenant
from tests.support.invariants import assert_ledger_invariants

# Columns that change on reads (the key's last use) are not part of a tenant's data.
VOLATILE = {("api_key", "last_used_at")}


@dataclass
class Two:
    app: FastAPI
    client: TestClient
    db: Database
    a: TenantWorld
    b: TenantWorld

    def call(self, key: str, method: str, path: str, body: Any = None) -> Any:
        return self.client.request(method, path, json=body,
                                   headers={"Authorization": f"Bearer {key}"})


def snapshot(db: Database, tenant_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tenant, table by table (as the administrator, in system context)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.read() as s:
        for table in metadata.sorted_tables:
            column = table.c.get("tenant_id")
            if column is None:
                continue
            cols = [c for c in table.c if (table.name, c.name) not in VOLATILE]
            rows = s.execute(select(*cols).where(column == tenant_id)).all()
            out[table.name] = sorted(tuple(repr(v) for v in row) for row in rows)
    return out


@pytest.fixture
def two(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Two]:
    # Uploaded import files go to a temporary folder; the world runs the import jobs itself.
    monkeypatch.setenv("ALLEGIANCE_IMPORT_DIR", str(tmp_path / "imports"))
    monkeypatch.setenv("ALLEGIANCE_IMPORT_WORKER", "none")
    get_settings.cache_clear()
    app = create_app(db, rate_limit_per_minute=0)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            a = build_tenant(client, db, "Tenant A")
            b = build_tenant(client, db, "Tenant B")
            yield Two(app, client, db, a, b)
        assert_ledger_invariants(db)
    finally:
        get_settings.cache_clear()
