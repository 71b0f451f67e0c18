"""T18: Standard Webhooks signatures, cross-verified with the reference ``standardwebhooks``
package: agreement 100%, tampered id / timestamp / body accepted 0, timestamps 301 s off
accepted 0, and both signatures valid while a secret rotates."""

from __future__ import annotations

import base64
import random
import time
from datetime import UTC, datetime

import pytest

from allegiance.webhooks import domain

standardwebhooks = pytest.importorskip("standardwebhooks")
Webhook = standardwebhooks.Webhook
WebhookVerificationError = standardwebhooks.WebhookVerificationError

CASES = 200


def _cases(seed: int = 18) -> list[tuple[str, str, bytes]]:
    rng = random.Random(seed)
    out = []
    for i in range(CASES):
        secret = "whsec_" + base64.b64encode(rng.randbytes(rng.choice([16, 24, 32, 64]))).decode()
        msg_id = f"msg_{i:04d}{rng.getrandbits(40):x}"
        text = "é✓" * rng.randint(0, 5)
        body = f'{{"type":"points.earned","data":{{"n":{i},"s":"{text}"}}}}'.encode()
        out.append((secret, msg_id, body))
    return out


def _lib_accepts(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def _ours_accepts(secrets: list[str], headers: dict[str, str], body: bytes, now: int) -> bool:
    try:
        domain.verify(secrets, headers, body, now)
    except domain.SignatureError:
        return False
    return True


def test_generated_secret_is_whsec_base64_and_accepted_by_the_library() -> None:
    secret = domain.generate_secret()
    assert secret.startswith("whsec_")
    assert len(domain.secret_key(secret)) == domain.SECRET_BYTES
    Webhook(secret)  # parses


def test_signatures_agree_with_the_reference_library() -> None:
    now = int(time.time())
    agree = 0
    for secret, msg_id, body in _cases():
        ours = domain.sign(secret, msg_id, now, body)
        theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now, UTC), body.decode())
        headers = domain.headers([secret], msg_id, now, body)
        lib_headers = {"webhook-id": msg_id, "webhook-timestamp": str(now),
                       "webhook-signature": theirs}
        if (ours == theirs and _lib_accepts(secret, headers, body)
                and _ours_accepts([secret], lib_headers, body, now)):
            agree += 1
    assert agree == CASES  # library agreement = 100%


def _flip(text: str, index: int) -> str:
    ch = text[index]
    repl = "1" if ch != "1" else "2"
    return text[:index] + repl + text[index + 1:]


def test_one_byte_tampering_of_id_timestamp_or_body_is_refused() -> None:
    now = int(time.time())
    rng = random.Random(7)
    accepted = 0
    tried = 0
    for secret, msg_id, body in _cases():
        headers = domain.headers([secret], msg_id, now, body)
        tampered_id = dict(headers, **{"webhook-id": _flip(msg_id, rng.randrange(len(msg_id)))})
        stamp = headers["webhook-timestamp"]
        tampered_ts = dict(headers, **{"webhook-timestamp": _flip(stamp, len(stamp) - 1)})
        position = rng.randrange(len(body))
        tampered_body = body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1:]
        for h, b in ((tampered_id, body), (tampered_ts, body), (headers, tampered_body)):
            tried += 1
            check_now = int(h["webhook-timestamp"])  # inside the tolerance: only the MAC decides
            if _ours_accepts([secret], h, b, check_now):
                accepted += 1
            try:
                b.decode()
            except UnicodeDecodeError:
                continue  # the library only takes text bodies
            if _lib_accepts(secret, h, b):
                accepted += 1
    assert tried == 3 * CASES
    assert accepted == 0  # tampered accepted = 0


@pytest.mark.parametrize("skew", [-301, 301, -3600, 3600])
def test_timestamps_outside_the_tolerance_are_refused(skew: int) -> None:
    now = int(time.time())
    secret, msg_id, body = _cases()[0]
    headers = domain.headers([secret], msg_id, now + skew, body)
    assert not _ours_accepts([secret], headers, body, now)
    assert not _lib_accepts(secret, headers, body)


@pytest.mark.parametrize("skew", [-299, 0, 299])
def test_timestamps_inside_the_tolerance_are_accepted(skew: int) -> None:
    now = int(time.time())
    secret, msg_id, body = _cases()[1]
    headers = domain.headers([secret], msg_id, now + skew, body)
    assert _ours_accepts([secret], headers, body, now)
    assert _lib_accepts(secret, headers, body)


def test_during_rotation_both_secrets_verify_and_no_other_does() -> None:
    now = int(time.time())
    new, old, stranger = (domain.generate_secret() for _ in range(3))
    body = b'{"type":"tier.changed","data":{}}'
    headers = domain.headers([new, old], "msg_rot", now, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert _lib_accepts(secret, headers, body)
        assert _ours_accepts([secret], headers, body, now)
    assert not _lib_accepts(stranger, headers, body)
    assert not _ours_accepts([stranger], headers, body, now)


def test_missing_headers_and_unknown_versions_are_refused() -> None:
    secret = domain.generate_secret()
    body = b"{}"
    headers = domain.headers([secret], "msg_1", 1_800_000_000, body)
    for name in headers:
        partial = {k: v for k, v in headers.items() if k != name}
        assert not _ours_accepts([secret], partial, body, 1_800_000_000)
    v2 = dict(headers, **{"webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")})
    assert not _ours_accepts([secret], v2, body, 1_800_000_000)
    assert not _ours_accepts([secret], dict(headers, **{"webhook-timestamp": "1.8e9"}), body,
                             1_800_000_000)


def test_retry_schedule_is_the_standard_one() -> None:
    assert domain.RETRY_DELAYS == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    delays = [domain.outcome(n, 500).retry_in for n in range(1, domain.MAX_ATTEMPTS + 1)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]


def test_outcomes() -> None:
    assert domain.outcome(1, 204).succeeded
    assert domain.outcome(1, 302).retry_in == 5  # a redirect is a failure, never followed
    assert domain.outcome(1, None).retry_in == 5  # timeout or connection error
    gone = domain.outcome(1, 410)
    assert gone.disable_endpoint and gone.retry_in is None and not gone.succeeded
    assert domain.outcome(1, 429, "120").retry_in == 120  # Retry-After longer than the schedule
    assert domain.outcome(3, 429, "120").retry_in == 1800  # the schedule is longer
    assert domain.outcome(1, 429, "999999").retry_in == domain.MAX_RETRY_AFTER
    assert domain.outcome(1, 429, "Wed, 21 Oct 2015 07:28:00 GMT").retry_in == 5
