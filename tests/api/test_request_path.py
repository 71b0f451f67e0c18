"""The request path under load (issue 7's api.* figures): the balance read in one statement,
a busy database answered 503 with Retry-After (not 500), and the server options the
benchmark uses (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from allegiance.cli import app as cli_app
from allegiance.kit.db import Database
from allegiance.ledger import queries
from tests.api.conftest import Api
from tests.api.test_ledger_api import make_shop


def test_balance_read_is_one_select(api: Api) -> None:
    shop = make_shop(api)
    wallet = shop.wallet("acc-1")
    assert shop.points(wallet, 40).status_code == 201
    assert shop.balance(wallet)["posted"] == 40  # the key is checked and cached
    selects: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "set_config" not in statement:
            selects.append(statement)

    event.listen(api.db.engine, "before_cursor_execute", seen)
    try:
        r = api.client.get(f"/v1/wallets/{wallet}", headers=shop.h())
    finally:
        event.remove(api.db.engine, "before_cursor_execute", seen)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == wallet and body["unit_code"] == "points" and body["balance"]["posted"] == 40
    assert len(selects) == 1, selects


def test_balance_read_keeps_its_refusals(api: Api) -> None:
    shop = make_shop(api)
    wallet = shop.wallet("acc-1")
    missing = api.client.get("/v1/wallets/wal_nothing", headers=shop.h())
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "ledger_account_not_found", "field": "wallet_id",
        "message": "ledger account wal_nothing not found"}
    _, other_key = api.new_tenant()
    assert api.client.get(f"/v1/wallets/{wallet}",
                          headers=api.headers(key=other_key)).status_code == 404
    other = api.client.post("/v1/programs", headers=api.headers(), json={
        "code": "other", "name": "Other", "base_currency": "USD"}).json()
    limited = api.client.post("/v1/api-keys", headers=api.headers(), json={
        "name": "limited", "scopes": ["read"], "program_ids": [other["id"]]})
    assert limited.status_code == 201, limited.text
    refused = api.client.get(f"/v1/wallets/{wallet}",
                             headers=api.headers(key=limited.json()["secret"]))
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "program_id"


def _raise(error: Exception) -> Any:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error
    return fail


def test_a_busy_database_answers_503_with_retry_after(api: Api,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    shop = make_shop(api)
    wallet = shop.wallet("acc-1")
    locked = OperationalError("BEGIN IMMEDIATE", None,
                              sqlite3.OperationalError("database is locked"))
    monkeypatch.setattr(queries, "account_with_unit_code", _raise(locked))
    r = api.client.get(f"/v1/wallets/{wallet}", headers=shop.h())
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "busy"


def test_other_database_failures_stay_internal_errors(api: Api,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    shop = make_shop(api)
    wallet = shop.wallet("acc-1")
    broken = OperationalError("SELECT", None, sqlite3.OperationalError("disk I/O error"))
    monkeypatch.setattr(queries, "account_with_unit_code", _raise(broken))
    r = api.client.get(f"/v1/wallets/{wallet}", headers=shop.h())
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"


@pytest.mark.parametrize(("given", "expected"), [(None, 2), ("FULL", 2), ("NORMAL", 1)])
def test_sqlite_synchronous_setting(tmp_path: Path, given: str | None, expected: int) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    db = Database(url) if given is None else Database(url, synchronous=given)
    try:
        with db.read() as s:
            assert s.execute(text("PRAGMA synchronous")).scalar() == expected
    finally:
        db.dispose()


def test_sqlite_synchronous_refuses_other_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FULL or NORMAL"):
        Database(f"sqlite:///{tmp_path / 'sync.db'}", synchronous="OFF")


def test_serve_passes_workers_and_access_log(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_a, **kw: calls.append(kw))
    monkeypatch.setenv("ALLEGIANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    runner = CliRunner()
    first = runner.invoke(cli_app, ["serve", "--database-url", url, "--port", "8123"])
    second = runner.invoke(cli_app, ["serve", "--database-url", url, "--port", "8123",
                                     "--workers", "2", "--no-access-log"])
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    assert calls[0]["access_log"] is True and calls[0]["workers"] is None
    assert calls[1]["access_log"] is False and calls[1]["workers"] == 2


def test_a_non_durable_sqlite_is_a_production_problem() -> None:
    from allegiance.kit.settings import Settings, production_problems

    relaxed = Settings(_env_file=None, sqlite_synchronous="NORMAL")  # type: ignore[call-arg]
    assert any("SQLITE_SYNCHRONOUS" in p for p in production_problems(relaxed))
    assert production_problems(Settings(_env_file=None)) == []  # type: ignore[call-arg]
