"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium) against a real
uvicorn server on 127.0.0.1 and a free port, with a SQLite database holding the demo data.

Without Chromium the tests skip with a reason, unless ALLEGIANCE_REQUIRE_BROWSER=1 (then they
fail; ``make test`` installs Chromium first in that case). ``playwright install`` is never
needed: the system browser is used. Screenshots go to tests/ui/artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from argon2 import PasswordHasher

from allegiance.api.app import create_app
from allegiance.demo import DEMO_MEMBERS, DEMO_OPERATOR, DemoResult, build_demo
from allegiance.kit.db import Database
from allegiance.operators import passwords
from tests.support import databases
from tests.support.invariants import assert_ledger_invariants

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"


def _need_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("ALLEGIANCE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ALLEGIANCE_REQUIRE_BROWSER=1 but {CHROMIUM} is missing "
                    "(make install-browser)")
    pytest.skip(f"{CHROMIUM} is missing (make install-browser; "
                "ALLEGIANCE_REQUIRE_BROWSER=1 makes this a failure)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Site:
    url: str
    db: Database
    demo: DemoResult

    def shot(self, page: Any, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A real server on a free port with the demo data; stops only that server."""
    _need_browser()
    # Argon2id with small parameters (the production cost is checked in tests/unit).
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)
    monkeypatch.setattr(passwords, "_DUMMY", cheap.hash("nobody's password"))
    db = Database(databases.sqlite_url(tmp_path))
    demo = build_demo(db)
    app = create_app(db, rate_limit_per_minute=0)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield Site(f"http://127.0.0.1:{port}", db, demo)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert_ledger_invariants(db)
        db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def admin_sign_in(page: Any, site: Site) -> None:
    email, password, _ = DEMO_OPERATOR
    page.goto(f"{site.url}/admin/sign-in")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/dashboard")


def portal_sign_in(page: Any, site: Site, which: int = 0) -> None:
    email, password = DEMO_MEMBERS[which]
    page.goto(f"{site.url}/portal/sign-in")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/home")
