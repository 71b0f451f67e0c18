"""The served app keeps its long-lived objects out of the garbage collector's full passes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from allegiance.api.app import serve_app
from allegiance.cli import serve
from allegiance.kit.settings import get_settings


@pytest.fixture
def frozen_app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALLEGIANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    get_settings.cache_clear()
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process goes on collecting as before
    get_settings.cache_clear()


def test_serve_app_freezes_what_it_built(frozen_app_env: None) -> None:
    assert gc.get_freeze_count() == 0
    app = serve_app()
    frozen = gc.get_freeze_count()
    # Everything built so far (modules, routes, validators) is frozen: a full collection
    # no longer walks it, and what the requests allocate later is collected as usual.
    assert frozen > 50_000
    assert any(getattr(route, "path", None) == "/health" for route in app.routes)
    garbage: list[object] = []
    garbage.append(garbage)  # a cycle made after the freeze is still collected
    del garbage
    assert gc.collect() >= 1
    assert gc.get_freeze_count() == frozen


def test_allegiance_serve_runs_the_frozen_factory(frozen_app_env: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    serve.serve(host="127.0.0.1", port=8765, workers=1, reload=False, access_log=False,
                database_url=None)
    [(args, kwargs)] = calls
    assert args == ("allegiance.api.app:serve_app",)
    assert kwargs["factory"] is True
