"""Pages cost a bounded number of queries, whatever the number of members (no query per
row): counted with the engine's cursor events on pages of 50 rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from allegiance import ledger, members, tenants
from tests.web.conftest import Web

MAX_QUERIES = 30  # Member 360, the richest page, runs about 28 (BEGIN included)


@contextmanager
def counting(web: Web) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(web.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(web.db.engine, "before_cursor_execute", count)


def test_no_query_per_row(web: Web) -> None:
    with web.db.transaction() as s:
        unit = tenants.unit_by_code(s, web.tenant_id, web.program(), "tokens").id
        for n in range(60):
            account = members.create_account(s, web.tenant_id, name=f"Many {n:02d}",
                                              actor="test")
            members.enrol(s, web.tenant_id, web.program(), account.id, actor="test")
            ledger.wallet(s, web.tenant_id, web.program(), unit, "account", account.id)
    admin, member = web.admin(), web.member()
    pages = [(admin, p) for p in (
        "/admin/dashboard", "/admin/members", "/admin/redemptions", "/admin/catalogue",
        "/admin/designer", f"/admin/members/{web.demo.accounts['dealer_west']}")]
    pages += [(member, p) for p in ("/portal/home", "/portal/history", "/portal/catalogue",
                                    "/portal/orders")]
    for client, path in pages:
        client.get(path)  # a first visit may record the session's last use
        with counting(web) as seen:
            assert client.get(path).status_code == 200
        assert len(seen) <= MAX_QUERIES, (path, len(seen))
