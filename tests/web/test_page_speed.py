"""Every main admin and portal page renders on 10,000 members with a bounded number of SQL statements
(counted with an engine event listener; no clock: the time of each page is measured by
``python -m bench web`` and written in docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from bench.web import PORTAL_PAGES, build, pages, signed_in
from sqlalchemy import event

from allegiance.api.app import create_app
from allegiance.kit.db import Database
from tests.support import databases
from tests.support.invariants import assert_ledger_invariants
from tests.web.admin_support import seed_queues

MAX_STATEMENTS = 30  # Member 360, the richest page, runs about 30 (BEGIN included)


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Any, list[str]]]:
    """One SQLite database for the module: the build (~10 s) is the expensive part."""
    db = Database(databases.sqlite_url(Path(tmp_path_factory.mktemp("big"))))
    built = build(db, n_members=10_000)
    seed_queues(db, built.demo)
    try:
        yield db, create_app(db, rate_limit_per_minute=0), pages(built)
    finally:
        assert_ledger_invariants(db)
        db.dispose()


def test_pages_on_ten_thousand_members(big: tuple[Database, Any, list[str]]) -> None:
    db, app, paths = big
    client, member = signed_in(app), signed_in(app, "portal")
    counts = {}
    for path in [*paths, *PORTAL_PAGES]:
        browser = member if path.startswith("/portal") else client
        browser.get(path)  # a first visit may record the session's last use
        with counting(db) as seen:
            response = browser.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "Cannot compute" not in response.text, path
        counts[path] = len(seen)
    over = {p: n for p, n in counts.items() if n > MAX_STATEMENTS}
    assert not over, (over, counts)
    # The pages list what they should at this size.
    members_page = client.get("/admin/members").text
    assert members_page.count('href="/admin/members/acc_') == 50
    assert "Dealer 09999" in client.get("/admin/applications").text  # the newest applied
