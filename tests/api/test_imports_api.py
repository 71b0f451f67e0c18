"""The imports API: saved column mappings, uploads that start an import job (worker thread
or `jobs run imports`), status and progress, the error report download."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from allegiance import definitions, members, tenants
from allegiance.imports import jobs
from allegiance.imports.models import ImportJob
from allegiance.kit import clock
from allegiance.kit.settings import get_settings
from tests.api.conftest import Api
from tests.integration.events_support import DEFINITION, EPOCH, NOW

CSV = ("Invoice,Date,Dealer,Article,Qty,Price\n"
       f"I1,{NOW.isoformat()},D1,SKU-1,2,1000\n"
       f"I1,{NOW.isoformat()},D1,SKU-9,1,500\n"
       f"I2,{NOW.isoformat()},D1,SKU-2,many,100\n"
       f"I3,{NOW.isoformat()},D2,SKU-2,1,100\n")
MAPPING = {"columns": {"external_id": "Invoice", "occurred_at": "Date",
                       "member_number": "Dealer", "sku": "Article", "line_quantity": "Qty",
                       "unit_price": "Price"}}


@pytest.fixture(autouse=True)
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ALLEGIANCE_IMPORT_DIR", str(tmp_path / "imports"))
    get_settings.cache_clear()
    yield tmp_path / "imports"
    get_settings.cache_clear()


def program(api: Api) -> str:
    with api.db.transaction() as s:
        version = definitions.apply(s, api.tenant_id, DEFINITION, actor="test",
                                    effective_from=EPOCH)
        for number in ("D1", "D2"):
            members.create_account(s, api.tenant_id, name=number, member_number=number)
        return version.program_id


def wait(api: Api, job_id: str) -> dict[str, Any]:
    for _ in range(300):  # at most 30 s
        body: dict[str, Any] = api.client.get(f"/v1/imports/{job_id}",
                                              headers=api.headers()).json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {body}")


def upload(api: Api, program_id: str, content: str = CSV, name: str = "sales.csv",
           **form: Any) -> Any:
    return api.client.post(f"/v1/programs/{program_id}/imports", headers=api.headers(),
                           files={"file": (name, content.encode(), "text/csv")},
                           data={"kind": "purchases", "source": "erp", **form})


def test_saved_mapping_upload_job_progress_and_error_report(api: Api) -> None:
    program_id = program(api)
    url = f"/v1/programs/{program_id}/import-mappings/erp/purchases"
    saved = api.client.put(url, json={"mapping": MAPPING}, headers=api.headers())
    assert saved.status_code == 200, saved.text
    assert api.client.get(url, headers=api.headers()).json()["mapping"] == MAPPING
    listed = api.client.get(f"/v1/programs/{program_id}/import-mappings",
                            headers=api.headers()).json()["items"]
    assert [(m["source"], m["kind"]) for m in listed] == [("erp", "purchases")]
    bad = api.client.put(url, json={"mapping": {"columns": {"nope": "X"}}},
                         headers=api.headers())
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_mapping"

    started = upload(api, program_id)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] in ("queued", "running", "done") and job["file_name"] == "sales.csv"
    done = wait(api, job["id"])
    assert done["status"] == "done", done
    assert (done["rows_total"], done["rows_done"], done["progress"]) == (4, 4, 1.0)
    assert (done["created"], done["rejected_events"], done["rejected_rows"]) == (2, 1, 1)
    assert done["has_error_report"] is True
    report = api.client.get(f"/v1/imports/{job['id']}/errors", headers=api.headers())
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    lines = report.text.splitlines()
    assert lines[0] == "row,column,value,reason" and lines[1].startswith("3,Qty,many,")
    page = api.client.get(f"/v1/programs/{program_id}/imports",
                          headers=api.headers()).json()
    assert [j["id"] for j in page["items"]] == [job["id"]]

    # the same file again: nothing new
    again = wait(api, upload(api, program_id).json()["id"])
    assert (again["created"], again["replayed"]) == (0, 2)
    # another tenant sees nothing
    _, other = api.new_tenant()
    assert api.client.get(f"/v1/imports/{job['id']}",
                          headers=api.headers(other)).status_code == 404
    assert api.client.delete(url, headers=api.headers()).status_code == 204
    assert api.client.get(url, headers=api.headers()).status_code == 404


def test_refused_uploads(api: Api) -> None:
    program_id = program(api)
    assert upload(api, program_id, name="sales.pdf").status_code == 422
    assert upload(api, program_id, mapping="{not json").status_code == 422
    unknown_kind = upload(api, program_id, kind="planets")
    assert unknown_kind.status_code == 422
    read_only = api.key_with(["read"])
    assert api.client.post(f"/v1/programs/{program_id}/imports",
                           headers=api.headers(read_only),
                           files={"file": ("a.csv", CSV.encode(), "text/csv")},
                           data={"kind": "purchases", "source": "erp"}).status_code == 403


def test_jobs_run_imports_and_a_stale_job_is_taken_over(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLEGIANCE_IMPORT_WORKER", "none")
    get_settings.cache_clear()
    program_id = program(api)
    job = upload(api, program_id, mapping=json.dumps(MAPPING)).json()
    assert api.client.get(f"/v1/imports/{job['id']}",
                          headers=api.headers()).json()["status"] == "queued"
    assert jobs.run_pending(api.db) == {"jobs_done": 1, "jobs_failed": 0}
    assert wait(api, job["id"])["created"] == 2
    # a job left running by a worker that died is claimed again after the stale delay
    with api.db.transaction() as s:
        s.execute(update(ImportJob).where(ImportJob.id == job["id"]).values(
            status="running", heartbeat_at=clock.now() - timedelta(hours=1)))
    assert jobs.run_pending(api.db) == {"jobs_done": 1, "jobs_failed": 0}
    final = wait(api, job["id"])
    assert (final["attempts"], final["created"], final["replayed"]) == (2, 0, 2)
    # a job whose file is gone fails with its reason
    with api.db.transaction() as s:
        s.execute(update(ImportJob).where(ImportJob.id == job["id"]).values(
            status="queued", path="/nonexistent/file.csv"))
    assert jobs.run_pending(api.db)["jobs_failed"] == 1
    assert "cannot read" in wait(api, job["id"])["error"]
    with api.db.read() as s:
        assert tenants.get_program(s, api.tenant_id, program_id).code == "main"


def test_a_tab_separated_upload_is_read_as_tab_separated(api: Api) -> None:
    """A .tsv file is stored as .tsv (its suffix is what says the cells are tab-separated),
    not as .csv, where its header would be one column."""
    program_id = program(api)
    tsv = CSV.replace(",", "\t")
    job = upload(api, program_id, content=tsv, name="sales.tsv",
                 mapping=json.dumps(MAPPING)).json()
    done = wait(api, job["id"])
    assert (done["status"], done["created"], done["rejected_rows"]) == ("done", 2, 1), done
