"""Pure webhook logic: Standard Webhooks signing and verification, the retry schedule, and the
classification of IP addresses for the SSRF guard. Stdlib only.

Signing (https://www.standardwebhooks.com/): ``webhook-signature`` carries one or more
space-separated ``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``; secrets are
``whsec_<base64 of the key bytes>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
TOLERANCE_SECONDS = 300

# Standard Webhooks: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_DELAYS: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_DELAYS)
# A Retry-After longer than this is capped (a receiver cannot park a delivery for days).
MAX_RETRY_AFTER = 36000


class SignatureError(ValueError):
    """The headers or the signature do not verify."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret (the prefix is optional)."""
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("secret is not base64") from exc
    if not key:
        raise ValueError("secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``<id>.<timestamp>.<body>``."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given (rotation)."""
    if not secrets_:
        raise ValueError("at least one secret is needed")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
    }


def verify(secrets_: Iterable[str], received: Mapping[str, str], body: bytes, now: int,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise :class:`SignatureError` unless one v1 signature matches one of the secrets and the
    timestamp lies within ``tolerance`` seconds of ``now``."""
    lower = {k.lower(): v for k, v in received.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signature = lower.get("webhook-signature")
    if not (msg_id and stamp and signature):
        raise SignatureError("missing webhook headers")
    if not _is_number(stamp, 12):
        raise SignatureError("webhook-timestamp is not an integer")
    timestamp = int(stamp)
    try:
        signed_prefix = f"{msg_id}.{timestamp}.".encode()
    except UnicodeEncodeError:
        raise SignatureError("webhook-id is not valid text") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp outside the tolerance")
    offered = []
    for part in signature.split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and value and value.isascii():  # compare_digest needs ASCII text
            offered.append(value)
    for secret in secrets_:
        digest = hmac.new(secret_key(secret), signed_prefix + body, hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()
        if any(hmac.compare_digest(expected, value) for value in offered):
            return
    raise SignatureError("no matching signature")


# ---------------------------------------------------------------------------------------------
# Retries


@dataclass(frozen=True)
class Outcome:
    """What to do after an attempt: retry after ``delay`` seconds, succeed, or give up."""

    succeeded: bool
    retry_in: int | None  # seconds until the next attempt; None: no further attempt
    disable_endpoint: bool = False


def next_delay(attempts_made: int) -> int | None:
    """Seconds from a failed attempt number ``attempts_made`` (1-based) to the next one."""
    if attempts_made < 1:
        raise ValueError("attempts_made starts at 1")
    if attempts_made >= MAX_ATTEMPTS:
        return None
    return RETRY_DELAYS[attempts_made]


def parse_retry_after(value: str | None) -> int | None:
    """Delay seconds of a ``Retry-After`` header (HTTP dates are not honoured: None)."""
    if value is None:
        return None
    value = value.strip()
    if not _is_number(value, 12):
        return None
    return min(int(value), MAX_RETRY_AFTER)


def _is_number(text: str, max_digits: int) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts "²" and "٣"), and not too many."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def outcome(attempts_made: int, status_code: int | None, retry_after: str | None = None) -> Outcome:
    """Classify an attempt: 2xx succeeds; 410 Gone disables the endpoint; anything else (other
    statuses including redirects, timeouts and connection errors: ``status_code`` None) is
    retried on the schedule; a 429's Retry-After is honoured when longer than the schedule."""
    if status_code is not None and 200 <= status_code < 300:
        return Outcome(succeeded=True, retry_in=None)
    if status_code == 410:
        return Outcome(succeeded=False, retry_in=None, disable_endpoint=True)
    delay = next_delay(attempts_made)
    if delay is None:
        return Outcome(succeeded=False, retry_in=None)
    if status_code == 429:
        asked = parse_retry_after(retry_after)
        if asked is not None:
            delay = max(delay, asked)
    return Outcome(succeeded=False, retry_in=delay)


# ---------------------------------------------------------------------------------------------
# SSRF: which addresses a webhook may reach

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_BLOCKED_V4 = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed)
    return None


def blocked_reason(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a webhook may not reach ``address`` (None: it may). ``allow_loopback`` admits
    127.0.0.0/8 and ::1 only, and exists for tests; production never sets it."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "scoped IPv6 address"
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = blocked_reason(inner, allow_loopback=False)
            return f"IPv6 address embedding {inner}: {reason}" if reason else None
        if address in _NAT64_LOCAL:
            return "NAT64 local-use address"
        if address.is_loopback:
            return None if allow_loopback else "loopback address"
    else:
        if address in ipaddress.ip_network("127.0.0.0/8"):
            return None if allow_loopback else "loopback address"
        for network in _BLOCKED_V4:
            if address in network:
                return f"address in reserved network {network}"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_link_local:
        return "link-local address (includes cloud metadata)"
    if address.is_multicast:
        return "multicast address"
    if address.is_private:
        return "private address"
    if address.is_reserved:
        return "reserved address"
    if not address.is_global:
        return "not a globally routable address"
    return None
