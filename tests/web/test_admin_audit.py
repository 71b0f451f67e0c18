"""The admin audit-log page: newest first, filters, the chain verified on request, tampering
shown; read-only operators may look; another tenant's rows never appear."""

from __future__ import annotations

from sqlalchemy import func, select

from allegiance import audit, tenants
from tests.security.test_audit import _tamper
from tests.web.conftest import Web


def test_audit_page_lists_filters_and_verifies(web: Web) -> None:
    with web.db.transaction() as s:  # another tenant's row must never show
        other = tenants.create_tenant(s, "Other Co").id
        audit.record(s, other, actor="intruder", action="secret.changed", object_type="x",
                     object_id="x1")
    with web.db.read() as s:
        rows = s.scalar(select(func.count()).select_from(audit.AuditRecord).where(
            audit.AuditRecord.tenant_id == web.tenant_id))
        action, object_id = s.execute(select(
            audit.AuditRecord.action, audit.AuditRecord.object_id).where(
            audit.AuditRecord.tenant_id == web.tenant_id).order_by(
            audit.AuditRecord.seq.desc()).limit(1)).one()
    assert rows
    client = web.admin("read_only")
    page = client.get("/admin/audit")
    assert page.status_code == 200
    assert action in page.text and "intruder" not in page.text
    assert "Verify the hash chain" in page.text
    filtered = client.get("/admin/audit", params={"action": action})
    assert filtered.status_code == 200 and object_id in filtered.text
    assert "No audit rows match" in client.get("/admin/audit",
                                               params={"actor": "nobody"}).text
    checked = client.get("/admin/audit", params={"verify": "true"})
    assert "chain intact" in checked.text and f"{rows:,} rows verified" in checked.text
    _tamper(web.db, web.tenant_id)
    tampered = client.get("/admin/audit", params={"verify": "true"})
    assert "tampered" in tampered.text and "Row 2 does not match" in tampered.text
