"""T29: every successful API write leaves an audit row (the route's own, or the generic one
of ``Ctx.write``); the log is append-only for the application; tampering is detected by the
API and by ``allegiance audit verify``."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from allegiance.audit.models import AuditRecord
from allegiance.cli import app as cli_app
from allegiance.kit.db import Database
from tests.security.conftest import Two
from tests.security.world import build_tenant
from tests.support import databases, figures


class Recording:
    """A TestClient that counts the audit rows each successful write added."""

    def __init__(self, two: Two) -> None:
        self.two = two
        self.writes: list[tuple[str, int]] = []

    def _rows(self) -> int:
        with self.two.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(AuditRecord)) or 0)

    def request(self, method: str, url: str, **kw: Any) -> Any:
        before = self._rows()
        response = self.two.client.request(method, url, **kw)
        if method != "GET" and 200 <= response.status_code < 300:
            self.writes.append((f"{method} {url}", self._rows() - before))
        return response


def test_every_successful_write_leaves_an_audit_row(two: Two) -> None:
    recording = Recording(two)
    world = build_tenant(recording, two.db, "Audited")  # type: ignore[arg-type]
    extra = [("POST", f"/v1/holds/{world.ids['hold_id']}/void", None),
             ("POST", f"/v1/api-keys/{world.ids['key_id']}/rotate", {}),
             ("DELETE", f"/v1/webhook-endpoints/{world.ids['endpoint_id']}", None),
             ("PATCH", f"/v1/units/{world.ids['unit_id']}", {"name": "Pts"})]
    for method, url, body in extra:
        r = recording.request(method, url, json=body,
                              headers={"Authorization": f"Bearer {world.admin}"})
        assert r.status_code < 300, r.text
    missing = [name for name, rows in recording.writes if rows < 1]
    exactly_one = sum(1 for _, rows in recording.writes if rows == 1)
    figures.record("t29.audit_coverage", writes=len(recording.writes),
                   with_audit_row=len(recording.writes) - len(missing), exactly_one=exactly_one)
    assert len(recording.writes) >= 18
    assert missing == []
    r = two.call(world.admin, "GET", "/v1/audit-log?limit=5")
    page = r.json()
    assert r.status_code == 200 and len(page["items"]) == 5 and page["next_cursor"]
    seqs = [i["seq"] for i in page["items"]]
    assert seqs == sorted(seqs, reverse=True)
    later = two.call(world.admin, "GET", f"/v1/audit-log?limit=5&cursor={page['next_cursor']}")
    assert max(i["seq"] for i in later.json()["items"]) < min(seqs)
    assert two.call(world.read, "GET", "/v1/audit-log").status_code == 403


def _tamper(db: Database, tenant_id: str) -> None:
    """Change one audit row behind the application's back, as the database owner would."""
    if db.is_sqlite:
        with db.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("UPDATE audit_log SET actor = 'someone else' "
                              "WHERE tenant_id = :t AND seq = 2"), {"t": tenant_id})
        return
    admin = databases.admin_url_of(db.url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        conn.execute("UPDATE audit_log SET actor = 'someone else' WHERE tenant_id = %s "
                     "AND seq = 2", (tenant_id,))
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


def test_the_log_is_append_only_and_tampering_is_detected(two: Two) -> None:
    db, a = two.db, two.a
    refused = 0
    for sql in ("UPDATE audit_log SET actor = 'x' WHERE tenant_id = :t",
                "DELETE FROM audit_log WHERE tenant_id = :t"):
        with pytest.raises(Exception) as refusal, db.transaction(a.tenant_id) as s:
            s.execute(text(sql), {"t": a.tenant_id})
        assert "append-only" in str(refusal.value) or "permission denied" in str(refusal.value)
        refused += 1
    ok = two.call(a.admin, "GET", "/v1/audit-log/verify").json()
    assert ok["ok"] is True and ok["rows"] > 5
    runner = CliRunner()
    clean = runner.invoke(cli_app, ["audit", "verify", "--database-url", db.url, "--json"])
    assert clean.exit_code == 0, clean.output
    _tamper(db, a.tenant_id)
    bad = two.call(a.admin, "GET", "/v1/audit-log/verify").json()
    other = two.call(two.b.admin, "GET", "/v1/audit-log/verify").json()
    result = runner.invoke(cli_app, ["audit", "verify", "--database-url", db.url])
    figures.record("t29.audit_tamper", update_delete_permitted=2 - refused,
                   tamper_detected=bad["ok"] is False)
    assert bad == {"rows": bad["rows"], "ok": False, "first_bad_seq": 2}
    assert other["ok"] is True
    assert result.exit_code == 1 and "breaks at row #2" in result.output
