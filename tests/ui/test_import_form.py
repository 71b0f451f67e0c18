"""The imports page's mapping form in a real browser: choosing a file lists its columns in a
select per field (the needed ones first, read from the file's header by the server), the
operator maps CDNOW-style columns with amounts in dollars and cents (decimals 2), the import
runs and the stored amounts are in cents. A screenshot of the filled form is kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from allegiance.events import Event
from allegiance.imports import jobs
from allegiance.kit import clock
from tests.ui.conftest import ARTIFACTS, Site, admin_sign_in
from tests.ui.test_accessibility import _violations
from tests.web.test_admin_imports import import_dir  # noqa: F401 (autouse: files under tmp_path, no worker)

CDNOW = Path("/work/shared/data/cdnow/CDNOW_sample.txt")
# The first purchases of the CDNOW sample (customer, id, day, CDs, dollars), kept here so the
# test runs where the shared data set is absent; the demo's dealers stand in for customers.
FIRST_ROWS = [("00004", 2, "29.33"), ("00004", 2, "29.73"), ("00004", 1, "14.96"),
              ("00004", 2, "26.48"), ("00021", 3, "63.34"), ("00021", 1, "11.77")]
DEALERS = {"00004": "R-2001", "00021": "R-2002"}


def _sample() -> list[tuple[str, int, str]]:
    if not CDNOW.exists():
        return FIRST_ROWS
    rows = [line.split() for line in CDNOW.read_text().splitlines()[:len(FIRST_ROWS)]]
    return [(r[0], int(r[3]), r[4]) for r in rows]


def test_the_operator_maps_columns_and_imports_dollars(site: Site, page: Any,
                                                       tmp_path: Path) -> None:
    day = clock.now().isoformat()  # after the demo's definition came into force
    sample = _sample()
    assert sample == FIRST_ROWS
    file = tmp_path / "cdnow-week.csv"
    file.write_text("Invoice,Customer,Date,CDs,Dollars\n" + "".join(
        f"CD{n},{DEALERS[c]},{day},{cds},{dollars}\n"
        for n, (c, cds, dollars) in enumerate(sample, start=1)))
    admin_sign_in(page, site)
    page.goto(f"{site.url}/admin/imports")
    page.get_by_label("It holds", exact=True).select_option("purchases")
    page.get_by_label("Source", exact=True).fill("cdnow")
    page.get_by_label("File", exact=True).set_input_files(str(file))
    needed = page.get_by_label("external_id (needed)", exact=True)
    needed.wait_for()
    assert "cdnow-week.csv has 5 columns" in page.locator("#imp-columns-note").inner_text()
    options = needed.locator("option").all_inner_texts()
    assert options == ["— same name —", "Invoice", "Customer", "Date", "CDs", "Dollars"]
    needed.select_option("Invoice")
    page.get_by_label("member_number (needed, or account_id or account_external_id)",
                      exact=True).select_option("Customer")
    page.get_by_text("Other fields").click()
    page.get_by_label("occurred_at", exact=True).select_option("Date")
    page.get_by_label("quantity", exact=True).select_option("CDs")
    page.get_by_label("amount", exact=True).select_option("Dollars")
    assert page.get_by_label("Amount decimals").input_value() == "2"
    assert not _violations(page)
    site.shot(page, "flow-admin-import-form")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(ARTIFACTS / "flow-admin-import-form.png", "/tmp/quality-import-form.png")

    page.get_by_role("button", name="Upload and import").click()
    assert "cdnow-week.csv is queued" in page.get_by_role("status").inner_text()
    assert jobs.run_pending(site.db) == {"jobs_done": 1, "jobs_failed": 0}
    card = page.locator("article.import-job").first
    card.locator(".badge.done").wait_for(timeout=30_000)
    words = " ".join(card.inner_text().split())
    assert f"{len(sample)} of {len(sample)} rows (100%)" in words
    site.shot(page, "flow-admin-import-form-done")
    shutil.copy(ARTIFACTS / "flow-admin-import-form-done.png",
                "/tmp/quality-import-form-done.png")
    with site.db.read() as s:
        stored = {e.external_id: (e.amount, e.quantity)
                  for e in s.query(Event).filter(Event.source == "cdnow")}
    assert stored == {f"CD{n}": (int(dollars.replace(".", "")), cds)
                      for n, (_, cds, dollars) in enumerate(sample, start=1)}


def test_a_file_type_the_imports_cannot_read_is_named(site: Site, page: Any,
                                                      tmp_path: Path) -> None:
    file = tmp_path / "notes.pdf"
    file.write_bytes(b"%PDF-1.4")
    admin_sign_in(page, site)
    page.goto(f"{site.url}/admin/imports")
    page.get_by_label("File", exact=True).set_input_files(str(file))
    note = page.locator("#imp-columns-note")
    note.filter(has_text="File: unknown file type").wait_for()
    assert page.locator("#imp-columns select").count() == 0


def test_a_saved_source_fills_the_form(site: Site, page: Any, tmp_path: Path) -> None:
    """Choosing a source whose mapping is saved puts its decimals and columns in the form
    (what the form sets goes over that mapping, so it shows what will be used)."""
    from allegiance.imports import mappings

    program_id = next(p.id for p in site.demo.programs if p.code == "partner-rewards")
    with site.db.transaction() as s:
        mappings.save_mapping(s, site.demo.tenant_id, program_id, "shop", "purchases",
                              {"columns": {"external_id": "Invoice", "amount": "Dollars"},
                               "decimals": 3}, actor="t")
    file = tmp_path / "shop.csv"
    file.write_text("Invoice,Customer,Dollars\nA1,R-2001,1.250\n")
    admin_sign_in(page, site)
    page.goto(f"{site.url}/admin/imports")
    page.get_by_label("It holds", exact=True).select_option("purchases")
    page.get_by_label("Source", exact=True).fill("shop")
    page.get_by_label("Source", exact=True).press("Tab")
    assert page.get_by_label("Amount decimals").input_value() == "3"
    page.get_by_label("File", exact=True).set_input_files(str(file))
    external = page.get_by_label("external_id (needed)", exact=True)
    external.wait_for()
    assert external.input_value() == "Invoice"
    assert page.get_by_label("amount", exact=True).input_value() == "Dollars"
