"""Helpers of the portal feature tests: proof files in a temporary folder, multipart posts
with the page's CSRF token, portal users of any demo role, and the flash of a redirect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from allegiance import members, operators
from allegiance.kit.settings import get_settings
from tests.web.conftest import Web, csrf_of

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def proof_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "proofs"
    monkeypatch.setenv("ALLEGIANCE_PROOF_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def stored(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def send(client: TestClient, path: str, data: dict[str, Any] | None = None,
         files: dict[str, tuple[str, bytes, str]] | None = None, page: str | None = None,
         ) -> Any:
    """POST a form (multipart when ``files``) with the CSRF token of a page of its app."""
    source = page or ("/admin/dashboard" if path.startswith("/admin") else "/portal/home")
    token = csrf_of(client.get(source).text)
    return client.post(path, data={**(data or {}), "csrf_token": token}, files=files,
                       follow_redirects=False)


def landed(client: TestClient, response: Any) -> str:
    """The page a form's redirect leads to (with its flash message)."""
    assert response.status_code == 303, response.text[:500]
    return str(client.get(response.headers["location"]).text)


def portal_user(web: Web, email: str, *, account: str | None = None, role: str = "rep",
                name: str = "Test User") -> TestClient:
    """Signed in to the portal as the demo user with ``email`` (or a new user of ``account``
    with ``role``)."""
    password = "a portal password"
    with web.db.transaction() as s:
        if account is not None:
            user = members.add_user(s, web.tenant_id, account, name=name, email=email,
                                    role=role, actor="test")
        else:
            user = next(u for u in s.query(members.User).filter(members.User.email == email))
        operators.portal.set_password(s, web.tenant_id, user.id, password, actor="test")
    return web.sign_in("portal", email, password)
