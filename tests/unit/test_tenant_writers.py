"""``Ctx.write(..., queued=True)``: at most ``ALLEGIANCE_API_TENANT_WRITERS`` queued writes of one
tenant run at once in a process; other tenants are not held up by them; 0 means no limit."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from allegiance.kit import web


def _most_at_once(tenants: list[str], limit: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    monkeypatch.setattr(web, "get_settings", lambda: SimpleNamespace(api_tenant_writers=limit))
    monkeypatch.setattr(web, "_writers", {})
    guard = threading.Lock()
    inside: dict[str, int] = dict.fromkeys(tenants, 0)
    most: dict[str, int] = dict.fromkeys(tenants, 0)

    def writer(tenant: str) -> None:
        with web._tenant_writer(tenant):
            with guard:
                inside[tenant] += 1
                most[tenant] = max(most[tenant], inside[tenant])
            time.sleep(0.02)
            with guard:
                inside[tenant] -= 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in tenants for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return most


def test_at_most_the_limit_of_one_tenants_queued_writes_run_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _most_at_once(["t1", "t2"], 2, monkeypatch) == {"t1": 2, "t2": 2}


def test_zero_is_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _most_at_once(["t1"], 0, monkeypatch)["t1"] > 2
