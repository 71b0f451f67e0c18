"""The SSRF guard of webhook URLs: only ``https`` URLs whose host resolves to public addresses
only. Checked when an endpoint is saved and again before every delivery (DNS may change); the
dispatcher never follows redirects.

IP literals are accepted only in canonical form (dotted quad, bracketed IPv6): decimal, octal,
hexadecimal and shortened forms (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are
refused outright, since resolvers and HTTP clients disagree on what they mean.

Tests reach a receiver on 127.0.0.1 over http with :func:`allow_loopback_for_tests`; nothing in
production calls it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from allegiance.kit.errors import ValidationFailed
from allegiance.webhooks.domain import blocked_reason

Resolver = Callable[[str, int], list[str]]

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_ISH = re.compile(r"^[0-9a-fx.]+$")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_BLOCKED_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".arpa")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class Policy:
    allow_loopback: bool = False  # tests only: http and 127.0.0.0/8, ::1
    resolver: Resolver = system_resolver


_policy = Policy()


def current_policy() -> Policy:
    return _policy


@contextlib.contextmanager
def allow_loopback_for_tests(resolver: Resolver | None = None) -> Iterator[Policy]:
    """Admit http and loopback receivers for the duration of a test."""
    global _policy
    previous = _policy
    _policy = Policy(allow_loopback=True, resolver=resolver or previous.resolver)
    try:
        yield _policy
    finally:
        _policy = previous


class UnsafeUrl(ValidationFailed):
    code = "unsafe_webhook_url"


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _reject(message: str) -> UnsafeUrl:
    return UnsafeUrl(message, field="url")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: str, policy: Policy | None = None) -> Target:
    """Validate ``url`` and resolve its host; raise :class:`UnsafeUrl` (422, field ``url``)."""
    policy = policy or _policy
    if len(url) > 2000:
        raise _reject("the URL is too long")
    if any(ord(ch) <= 32 or ord(ch) == 127 or ch == "\\" for ch in url):
        raise _reject("the URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _reject("the URL cannot be parsed") from exc
    schemes = ("https", "http") if policy.allow_loopback else ("https",)
    if parts.scheme not in schemes:
        raise _reject("webhook URLs must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _reject("webhook URLs may not carry credentials")
    raw_host = parts.hostname
    if not raw_host:
        raise _reject("the URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    if parts.netloc.startswith("["):
        address = _ip_literal(raw_host)
        if address is None or "%" in raw_host:
            raise _reject("the IPv6 literal is not valid")
        reason = blocked_reason(address, allow_loopback=policy.allow_loopback)
        if reason:
            raise _reject(f"webhook URLs may not target this address ({reason})")
        return Target(url, raw_host, port, (str(address),))
    try:
        host = raw_host.rstrip(".").lower().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _reject("the host name is not valid") from exc
    address = _ip_literal(host)
    if address is not None:
        reason = blocked_reason(address, allow_loopback=policy.allow_loopback)
        if reason:
            raise _reject(f"webhook URLs may not target this address ({reason})")
        return Target(url, host, port, (str(address),))
    labels = host.split(".")
    if _NUMERIC_ISH.match(host) and all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        raise _reject("IP addresses must be written as a dotted quad")
    if not all(_HOST_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise _reject("the host name is not valid")
    if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES) or "." not in host:
        raise _reject("webhook URLs must name a public host")
    try:
        resolved = policy.resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise _reject("the host name does not resolve") from exc
    if not resolved:
        raise _reject("the host name does not resolve")
    for text in resolved:
        found = _ip_literal(text.split("%")[0])
        if found is None:
            raise _reject("the host name resolves to an invalid address")
        reason = blocked_reason(found, allow_loopback=False)
        if reason:
            raise _reject(f"the host resolves to a forbidden address ({reason})")
    return Target(url, host, port, tuple(resolved))
