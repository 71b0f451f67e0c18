"""Web app fixtures: the demo tenant on a fresh database (SQLite and PostgreSQL), operators of
every role, and TestClients signed in to the admin app or the portal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from allegiance import operators
from allegiance.api.app import create_app
from allegiance.demo import DEMO_MEMBERS, DEMO_OPERATOR, DemoResult, build_demo
from allegiance.kit.db import Database
from allegiance.operators import passwords
from tests.support.invariants import assert_ledger_invariants

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with its production cost (64 MiB, 3 passes) takes up to a second a check on a
    busy CI machine; these tests use the same algorithm with small parameters
    (tests/unit/test_operators.py checks the production ones)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)
    monkeypatch.setattr(passwords, "_DUMMY", cheap.hash("nobody's password"))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


@dataclass
class Web:
    db: Database
    app: object
    demo: DemoResult
    operators: dict[str, str] = field(default_factory=dict)  # role -> e-mail

    @property
    def tenant_id(self) -> str:
        return self.demo.tenant_id

    def program(self, code: str = "partner-rewards") -> str:
        return next(p.id for p in self.demo.programs if p.code == code)

    def client(self) -> TestClient:
        return TestClient(self.app, raise_server_exceptions=True)  # type: ignore[arg-type]

    def admin(self, role: str = "owner") -> TestClient:
        email = DEMO_OPERATOR[0] if role == "owner" else self.operators[role]
        password = DEMO_OPERATOR[1] if role == "owner" else PASSWORD
        return self.sign_in("admin", email, password)

    def member(self, which: int = 0) -> TestClient:
        return self.sign_in("portal", *DEMO_MEMBERS[which])

    def sign_in(self, app: str, email: str, password: str) -> TestClient:
        client = self.client()
        token = csrf_of(client.get(f"/{app}/sign-in").text)
        response = client.post(f"/{app}/sign-in", data={
            "email": email, "password": password, "csrf_token": token},
            follow_redirects=False)
        assert response.status_code == 303, response.text
        return client


def post(client: TestClient, path: str, data: dict[str, str] | None = None,
         page: str | None = None) -> object:
    """POST a form the way a browser does: with the CSRF token of a page of the same app."""
    source = page or ("/admin/dashboard" if path.startswith("/admin") else "/portal/home")
    token = csrf_of(client.get(source).text)
    return client.post(path, data={**(data or {}), "csrf_token": token}, follow_redirects=False)


@pytest.fixture
def web(db: Database) -> Iterator[Web]:
    demo = build_demo(db)
    app = create_app(db, rate_limit_per_minute=0)
    made = {}
    with db.transaction() as s:
        for role in ("program_manager", "finance", "support", "read_only"):
            email = f"{role.replace('_', '-')}@demo.example"
            operators.create_operator(s, demo.tenant_id, email=email, name=role, role=role,
                                      password=PASSWORD, actor="test")
            made[role] = email
    yield Web(db, app, demo, made)
    assert_ledger_invariants(db)
