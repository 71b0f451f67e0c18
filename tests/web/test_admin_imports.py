"""The admin's imports page: upload a file to start an import job, watch its progress (the
card polls itself with htmx while the job runs), download the per-row error report."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allegiance.imports import jobs
from allegiance.imports.models import ImportJob
from allegiance.kit import clock
from allegiance.kit.settings import get_settings
from tests.web.conftest import Web, csrf_of


@pytest.fixture(autouse=True)
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Files under the test's directory; no worker thread (the test runs the job itself)."""
    monkeypatch.setenv("ALLEGIANCE_IMPORT_DIR", str(tmp_path / "imports"))
    monkeypatch.setenv("ALLEGIANCE_IMPORT_WORKER", "none")
    get_settings.cache_clear()
    yield tmp_path / "imports"
    get_settings.cache_clear()


def sales_csv() -> bytes:
    day = clock.now().isoformat()  # after the demo's definition came into force
    return ("external_id,occurred_at,member_number,amount,currency\n"
            f"W1,{day},R-2001,150000,USD\n"
            f"W2,{day},R-2002,lots,USD\n"
            f"W3,{day},R-2002,20000,USD\n").encode()


def upload(client: Any, content: bytes, name: str = "sales.csv", kind: str = "purchases",
           source: str = "erp", mapping: str = "") -> Any:
    token = csrf_of(client.get("/admin/imports").text)
    return client.post("/admin/imports", data={"csrf_token": token, "kind": kind,
                                               "source": source, "mapping": mapping},
                       files={"file": (name, content, "text/csv")}, follow_redirects=False)


def test_upload_progress_and_error_report(web: Web, import_dir: Path) -> None:
    client = web.admin("program_manager")
    response = upload(client, sales_csv())
    assert response.status_code == 303
    page = client.get("/admin/imports").text
    assert "sales.csv is queued for import" in page
    with web.db.read() as s:
        job = s.query(ImportJob).one()
        job_id = job.id
    card = client.get(f"/admin/imports/{job_id}/progress").text
    assert "queued" in card and 'hx-trigger="every 1s"' in card  # polls while it waits
    assert jobs.run_pending(web.db) == {"jobs_done": 1, "jobs_failed": 0}
    card = client.get(f"/admin/imports/{job_id}/progress").text
    assert "done" in card and "hx-trigger" not in card  # stops polling once finished
    words = " ".join(re.sub(r"<[^>]+>", " ", card).split())
    assert "3 of 3 rows (100%)" in words and "created 2" in words
    assert "rejected rows 1" in words
    assert f"/admin/imports/{job_id}/errors" in card
    report = client.get(f"/admin/imports/{job_id}/errors")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(r["row"], r["column"], r["value"]) for r in rows] == [("2", "amount", "lots")]
    # The same file again: every row replays, nothing counts twice.
    upload(client, sales_csv(), name="again.csv")
    jobs.run_pending(web.db)
    with web.db.read() as s:
        again = s.query(ImportJob).filter(ImportJob.file_name == "again.csv").one()
        assert (again.created, again.replayed) == (0, 2)


def test_refused_uploads_leave_nothing(web: Web, import_dir: Path) -> None:
    client = web.admin()
    for kwargs, message in (({"name": "sales.pdf"}, "unknown file type"),
                            ({"kind": "planets"}, "choose what the file holds"),
                            ({"mapping": "{not json"}, "must be JSON"),
                            ({"source": " "}, "name the file&#39;s source")):
        response = upload(client, sales_csv(), **kwargs)
        assert message in client.get(response.headers["location"]).text, kwargs
    broken = upload(client, b"\x00\x01not,a\ncsv\xff\xfe", name="broken.xlsx")
    assert "cannot read" in client.get(broken.headers["location"]).text
    with web.db.read() as s:
        assert s.query(ImportJob).count() == 0
    assert not any(import_dir.glob("*")) if import_dir.exists() else True


def test_import_roles(web: Web, import_dir: Path) -> None:
    upload(web.admin(), sales_csv())
    jobs.run_pending(web.db)
    with web.db.read() as s:
        job_id = s.query(ImportJob).one().id
    for role in ("read_only", "finance", "support"):
        client = web.admin(role)
        page = client.get("/admin/imports").text
        assert "sales.csv" in page and 'action="/admin/imports"' not in page
        assert client.get(f"/admin/imports/{job_id}/errors").status_code == 403
        refused = upload(client, sales_csv())
        assert refused.status_code == 403
    with web.db.read() as s:
        assert s.query(ImportJob).count() == 1


def test_parquet_and_xlsx_uploads(web: Web, import_dir: Path) -> None:
    """The page takes the other two formats the imports feature reads."""
    import openpyxl
    import polars as pl

    day = clock.now()  # after the demo's definition came into force
    frame = pl.DataFrame({"external_id": ["P1", "P2"], "occurred_at": [day.isoformat()] * 2,
                          "member_number": ["R-2001", "R-2002"], "amount": [5_000, 7_000],
                          "currency": ["USD", "USD"]})
    parquet, xlsx = io.BytesIO(), io.BytesIO()
    frame.write_parquet(parquet)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(frame.columns)
    for row in frame.with_columns(pl.Series("external_id", ["X1", "X2"])).iter_rows():
        sheet.append(list(row))
    book.save(xlsx)
    client = web.admin()
    for name, content in (("sales.parquet", parquet.getvalue()),
                          ("sales.xlsx", xlsx.getvalue())):
        response = upload(client, content, name=name)
        assert f"{name} is queued" in client.get(response.headers["location"]).text
    assert jobs.run_pending(web.db) == {"jobs_done": 2, "jobs_failed": 0}
    with web.db.read() as s:
        done = {j.file_name: (j.status, j.created, j.rejected_rows)
                for j in s.query(ImportJob).all()}
    assert done == {"sales.parquet": ("done", 2, 0), "sales.xlsx": ("done", 2, 0)}


# ---------------------------------------------------------------------------------------------
# The mapping form


def dollars_csv() -> bytes:
    """CDNOW-like rows: the file's own headers, amounts in dollars with cents."""
    day = clock.now().isoformat()
    return ("Invoice,Customer,Date,CDs,Dollars\n"
            f"C1,R-2001,{day},2,29.33\n"
            f"C2,R-2002,{day},1,14.96\n"
            f"C3,R-2002,{day},5,77\n").encode()


FORM = {"col.external_id": "Invoice", "col.member_number": "Customer",
        "col.occurred_at": "Date", "col.quantity": "CDs", "col.amount": "Dollars",
        "decimals": "2"}


def post_form(client: Any, content: bytes, fields: dict[str, str], name: str = "cd.csv",
              kind: str = "purchases", source: str = "cdnow", mapping: str = "") -> str:
    """Post the upload form; returns the page it leads to."""
    token = csrf_of(client.get("/admin/imports").text)
    response = client.post("/admin/imports", data={
        "csrf_token": token, "kind": kind, "source": source, "mapping": mapping, **fields},
        files={"file": (name, content, "text/csv")}, follow_redirects=False)
    assert response.status_code == 303
    return str(client.get(response.headers["location"]).text)


def amounts(web: Web, source: str) -> dict[str, int]:
    from allegiance.events import Event

    with web.db.read() as s:
        return {e.external_id: e.amount for e in s.query(Event).filter(Event.source == source)}


def test_the_form_maps_the_files_columns_and_reads_dollars(web: Web, import_dir: Path) -> None:
    client = web.admin("program_manager")
    page = client.get("/admin/imports").text
    assert 'name="decimals"' in page and 'value="2"' in page and "/static/imports.js" in page
    assert "cd.csv is queued" in post_form(client, dollars_csv(), FORM)
    with web.db.read() as s:
        job = s.query(ImportJob).one()
        assert job.mapping == {"columns": {"external_id": "Invoice", "member_number": "Customer",
                                           "occurred_at": "Date", "quantity": "CDs",
                                           "amount": "Dollars"}, "decimals": 2}
    assert jobs.run_pending(web.db) == {"jobs_done": 1, "jobs_failed": 0}
    assert amounts(web, "cdnow") == {"C1": 2933, "C2": 1496, "C3": 7700}


def test_the_raw_json_wins_and_an_empty_form_keeps_the_saved_mapping(
        web: Web, import_dir: Path) -> None:
    from allegiance.imports import mappings

    client = web.admin()
    raw = ('{"columns": {"external_id": "Invoice", "member_number": "Customer", '
           '"occurred_at": "Date", "amount": "Dollars"}, "decimals": 3}')
    post_form(client, dollars_csv(), {**FORM, "decimals": "2"}, name="raw.csv", mapping=raw)
    saved = {"columns": {"external_id": "Invoice", "member_number": "Customer",
                         "occurred_at": "Date", "amount": "Dollars"}, "decimals": 1}
    with web.db.transaction() as s:
        program_id = s.query(ImportJob).one().program_id
        mappings.save_mapping(s, web.demo.tenant_id, program_id, "shop", "purchases", saved,
                              actor="t")
    post_form(client, dollars_csv(), {}, name="saved.csv", source="shop")
    # the form over the saved mapping: its columns stay, the form's decimals win
    post_form(client, dollars_csv(), {"decimals": "2"}, name="over.csv", source="shop2")
    post_form(client, dollars_csv(), {"decimals": "0", "col.quantity": "CDs"},
              name="over-saved.csv", source="shop")
    with web.db.read() as s:
        got = {j.file_name: j.mapping for j in s.query(ImportJob).all()}
    assert got["raw.csv"]["decimals"] == 3 and "quantity" not in got["raw.csv"]["columns"]
    assert got["saved.csv"] == saved
    assert got["over-saved.csv"] == {"columns": {**saved["columns"], "quantity": "CDs"},
                                     "decimals": 0}
    assert "over.csv" not in got  # no saved mapping for shop2: the file lacks its columns


def test_form_errors_name_the_field_and_keep_nothing(web: Web, import_dir: Path) -> None:
    client = web.admin()
    for fields, message in (
            ({**FORM, "decimals": "two"}, "Amount decimals: a whole number from 0 to 6"),
            ({**FORM, "decimals": "9"}, "Amount decimals: a whole number from 0 to 6"),
            ({**FORM, "col.amount": "Total"},
             "Column for amount: the file has no column &#39;Total&#39;"),
            ({**FORM, "col.planet": "Dollars"}, "Column for planet: planet is not a field"),
            ({"decimals": "2"}, "Column for external_id: the file needs an external_id"),
            ({**FORM, "time_zone": "Mars/Olympus"}, "Time zone: unknown time zone")):
        assert message in post_form(client, dollars_csv(), fields), fields
    with web.db.read() as s:
        assert s.query(ImportJob).count() == 0
    assert not any(import_dir.glob("*")) if import_dir.exists() else True


def test_the_columns_of_a_chosen_file(web: Web, import_dir: Path) -> None:
    import polars as pl

    client = web.admin()
    token = csrf_of(client.get("/admin/imports").text)
    parquet = io.BytesIO()
    pl.DataFrame({"Invoice": ["P1"], "Dollars": [1.5]}).write_parquet(parquet)
    half = dollars_csv()[:40]  # the page sends only the start of a CSV
    for name, content, columns in (
            ("cd.csv", half, ["Invoice", "Customer", "Date", "CDs", "Dollars"]),
            ("cd.tsv", b"Invoice\tDollars\nC1\t2.50\n", ["Invoice", "Dollars"]),
            ("cd.parquet", parquet.getvalue(), ["Invoice", "Dollars"])):
        response = client.post("/admin/imports/columns", data={"csrf_token": token},
                               files={"file": (name, content)})
        assert response.status_code == 200 and response.json() == {"columns": columns}, name
    refused = client.post("/admin/imports/columns", data={"csrf_token": token},
                          files={"file": ("cd.pdf", b"%PDF")})
    assert refused.status_code == 422
    assert refused.json()["error"].startswith("File: unknown file type")
    assert client.post("/admin/imports/columns", files={"file": ("cd.csv", half)}
                       ).status_code == 403  # no CSRF token
    reader_client = web.admin("read_only")
    assert reader_client.post("/admin/imports/columns", data={
        "csrf_token": csrf_of(reader_client.get("/admin/imports").text)},
        files={"file": ("cd.csv", half)}).status_code == 403
    assert not any(import_dir.glob("*")) if import_dir.exists() else True


def test_a_tab_separated_file_through_the_form(web: Web, import_dir: Path) -> None:
    client = web.admin()
    tsv = dollars_csv().replace(b",", b"\t")
    assert "cd.tsv is queued" in post_form(client, tsv, FORM, name="cd.tsv")
    assert jobs.run_pending(web.db) == {"jobs_done": 1, "jobs_failed": 0}
    assert amounts(web, "cdnow") == {"C1": 2933, "C2": 1496, "C3": 7700}
