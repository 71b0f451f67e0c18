"""Production settings: CORS allow-list, no stack traces in error bodies, and
``allegiance check-settings`` (debug, CORS, rate limit, a database role that skips RLS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from allegiance.api.app import create_app
from allegiance.cli import app as cli_app
from allegiance.kit.db import Database
from allegiance.kit.settings import Settings, get_settings, production_problems
from tests.support import databases


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cors_allows_only_listed_origins(sqlite_db: Database, fresh_settings: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLEGIANCE_CORS_ORIGINS", "https://admin.example.com, *")
    get_settings.cache_clear()
    with TestClient(create_app(sqlite_db, rate_limit_per_minute=0)) as client:
        ok = client.options("/v1/tenant", headers={
            "Origin": "https://admin.example.com", "Access-Control-Request-Method": "GET"})
        evil = client.options("/v1/tenant", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert ok.headers.get("access-control-allow-origin") == "https://admin.example.com"
    assert "access-control-allow-origin" not in evil.headers


def test_errors_carry_no_stack_trace(sqlite_db: Database) -> None:
    app = create_app(sqlite_db, rate_limit_per_minute=0)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/app.py line 42")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text and "line 42" not in r.text
    assert r.json()["error"]["code"] == "internal_error"


def test_production_problems() -> None:
    assert production_problems(Settings(_env_file=None)) == []  # type: ignore[call-arg]
    bad = Settings(_env_file=None, debug=True, cors_origins="*,http://x.example",  # type: ignore[call-arg]
                   rate_limit_per_minute=0)
    problems = production_problems(bad)
    assert len(problems) == 4


def test_check_settings_refuses_a_role_that_skips_rls(pg_db: Database,
                                                      fresh_settings: None) -> None:
    runner = CliRunner()
    as_app = runner.invoke(cli_app, ["check-settings", "--database-url", pg_db.url])
    as_owner = runner.invoke(cli_app, ["check-settings", "--database-url",
                                       databases.admin_url_of(pg_db.url)])
    if not databases.as_superuser():
        assert as_app.exit_code == 0, as_app.output
    assert as_owner.exit_code == 1 and "bypasses RLS" in as_owner.output
