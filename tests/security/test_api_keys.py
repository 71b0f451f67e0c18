"""T26/T27: API keys — expiry, rotation with and without a grace period, last use shown,
revocation refused at once — and the per-key rate limit (429 with Retry-After)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from allegiance import tenants
from allegiance.api.app import create_app
from allegiance.kit import clock
from allegiance.kit.db import Database
from tests.api.conftest import Api
from tests.support import figures


def _h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _status(api: Api, secret: str) -> int:
    return api.client.get("/v1/tenant", headers=_h(secret)).status_code


def test_rotation_without_grace_refuses_the_old_secret_at_once(api: Api) -> None:
    old = api.key_with(["read"])
    key_id = old.partition(".")[0]
    assert _status(api, old) == 200
    r = api.client.post(f"/v1/api-keys/{key_id}/rotate", headers=api.headers(), json={})
    assert r.status_code == 200, r.text
    issued = r.json()
    new = issued["secret"]
    assert issued["id"] == key_id and new != old and issued["rotated_at"]
    assert issued["previous_secret_expires_at"] is None
    assert _status(api, old) == 401 and _status(api, new) == 200
    listed = api.client.get("/v1/api-keys", headers=api.headers()).json()["items"]
    row = next(k for k in listed if k["id"] == key_id)
    assert "secret" not in row and row["rotated_at"] and row["scopes"] == ["read"]


def test_rotation_with_grace_keeps_the_old_secret_until_it_ends(api: Api,
                                                              frozen_clock: clock.FrozenClock) -> None:
    old = api.key_with(["read"])
    key_id = old.partition(".")[0]
    r = api.client.post(f"/v1/api-keys/{key_id}/rotate", headers=api.headers(),
                        json={"grace_seconds": 3600})
    new = r.json()["secret"]
    assert _status(api, old) == 200 and _status(api, new) == 200
    frozen_clock.advance(timedelta(seconds=3601))
    assert _status(api, old) == 401 and _status(api, new) == 200
    too_long = api.client.post(f"/v1/api-keys/{key_id}/rotate", headers=api.headers(),
                               json={"grace_seconds": 8 * 24 * 3600})
    assert too_long.status_code == 422
    assert api.client.post(f"/v1/api-keys/{key_id}/rotate", headers=api.headers(),
                           json={"grace_seconds": 10, "secret": "mine"}).status_code == 422


def test_revoked_keys_are_refused_at_once_even_mid_run(api: Api) -> None:
    secret = api.key_with(["integration"])
    key_id = secret.partition(".")[0]
    rotated = api.client.post(f"/v1/api-keys/{key_id}/rotate", headers=api.headers(),
                              json={"grace_seconds": 600}).json()["secret"]
    accepted_after_revoke = 0
    for i in range(40):
        if i == 20:
            r = api.client.post(f"/v1/api-keys/{key_id}/revoke", headers=api.headers())
            assert r.status_code == 200 and r.json()["revoked_at"]
        for candidate in (secret, rotated):
            status = _status(api, candidate)
            if i >= 20 and status != 401:
                accepted_after_revoke += 1
    figures.record("t26.api_key_revocation", requests_after_revoke=40,
                   revoked_key_accepted=accepted_after_revoke)
    assert accepted_after_revoke == 0
    again = api.client.post(f"/v1/api-keys/{key_id}/rotate", headers=api.headers())
    assert again.status_code == 409 and again.json()["error"]["code"] == "api_key_not_usable"


def test_expired_keys_are_refused(api: Api, frozen_clock: clock.FrozenClock) -> None:
    expires = clock.now() + timedelta(hours=1)
    r = api.client.post("/v1/api-keys", headers=api.headers(),
                        json={"name": "temp", "scopes": ["read"],
                              "expires_at": expires.isoformat()})
    secret = r.json()["secret"]
    assert _status(api, secret) == 200
    frozen_clock.advance(timedelta(hours=1))
    r = api.client.get("/v1/tenant", headers=_h(secret))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_last_use_is_shown(api: Api) -> None:
    secret = api.key_with(["read"])
    key_id = secret.partition(".")[0]
    assert _status(api, secret) == 200
    listed = api.client.get("/v1/api-keys", headers=api.headers()).json()["items"]
    assert next(k for k in listed if k["id"] == key_id)["last_used_at"] is not None


def test_other_tenants_keys_cannot_be_rotated_or_revoked(api: Api) -> None:
    _, other = api.new_tenant()
    other_id = other.partition(".")[0]
    for action in ("rotate", "revoke"):
        r = api.client.post(f"/v1/api-keys/{other_id}/{action}", headers=api.headers())
        assert r.status_code == 404, r.text
    assert _status(api, other) == 200


def test_rate_limit_per_key_answers_429_with_retry_after(db: Database) -> None:
    limit = 60  # per minute; the bucket holds a sixth of it
    app = create_app(db, rate_limit_per_minute=limit)
    with db.transaction() as s:
        t = tenants.create_tenant(s, "Limited")
        first = tenants.create_api_key(s, t.id, name="a", scopes=["read"]).secret
        second = tenants.create_api_key(s, t.id, name="b", scopes=["read"]).secret
    burst = 2 * (limit // 6)
    with TestClient(app, raise_server_exceptions=False) as client:
        answers = [client.get("/v1/tenant", headers=_h(first)) for _ in range(burst)]
        other = client.get("/v1/tenant", headers=_h(second))
    accepted = sum(1 for r in answers if r.status_code == 200)
    limited = [r for r in answers if r.status_code == 429]
    with_retry_after = [r for r in limited if int(r.headers.get("Retry-After", "0")) >= 1]
    figures.record("t27.rate_limit", burst=burst, limit=limit // 6, accepted=accepted,
                   refused=len(limited), refused_with_retry_after=len(with_retry_after))
    assert accepted <= limit // 6 + 1
    assert len(limited) == burst - accepted and len(with_retry_after) == len(limited)
    assert limited[0].json()["error"]["code"] == "rate_limited"
    assert other.status_code == 200  # the limit is per key
