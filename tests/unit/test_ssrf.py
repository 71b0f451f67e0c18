"""T19: the SSRF guard of webhook URLs. Crafted URLs (private ranges, loopback, metadata,
unspecified, odd IPv4 encodings, IPv4 inside IPv6, names resolving to private addresses through
a stub resolver) are all rejected, and no socket is ever opened while checking them."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

from allegiance.webhooks import domain, ssrf

STUB_DNS: dict[str, list[str]] = {
    "hooks.example.com": ["93.184.216.34"],
    "dual.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example.com": ["10.0.0.5"],
    "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "v6local.example.com": ["::1"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
    "ula.example.com": ["fd00::1"],
    "cgnat.example.com": ["100.64.1.1"],
    "zero.example.com": ["0.0.0.0"],
    "aws-v6-metadata.example.com": ["fd00:ec2::254"],
    "nat64.example.com": ["64:ff9b::a00:1"],
    "empty.example.com": [],
}


def stub_resolver(host: str, port: int) -> list[str]:
    if host not in STUB_DNS:
        raise socket.gaierror(f"stub: {host} not found")
    return STUB_DNS[host]


POLICY = ssrf.Policy(allow_loopback=False, resolver=stub_resolver)

CRAFTED = [
    # RFC 1918, CGNAT and other reserved IPv4 ranges
    "https://10.0.0.1/hook", "https://10.255.255.255/", "https://172.16.0.1/", "https://172.31.255.1/",
    "https://192.168.0.1/", "https://192.168.1.254:8443/x", "https://100.64.0.1/",
    "https://192.0.0.1/", "https://198.18.0.1/", "https://224.0.0.1/", "https://255.255.255.255/",
    "https://240.0.0.1/",
    # loopback, unspecified, link-local and metadata
    "https://127.0.0.1/", "https://127.1.2.3/", "https://127.255.255.254/", "https://0.0.0.0/",
    "https://0.1.2.3/", "https://169.254.169.254/latest/meta-data/", "https://169.254.0.1/",
    "https://[::1]/", "https://[::]/", "https://[fe80::1]/", "https://[fe80::1%25eth0]/",
    "https://[fd00::1]/", "https://[fd00:ec2::254]/", "https://[ff02::1]/",
    # odd encodings of 127.0.0.1 and 169.254.169.254
    "https://2130706433/", "https://0x7f000001/", "https://0177.0.0.1/", "https://0x7f.0.0.1/",
    "https://127.1/", "https://017700000001/", "https://2852039166/", "https://0xa9fea9fe/",
    "https://0251.0376.0251.0376/", "https://127.0.0.1./",
    # IPv4 inside IPv6
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:10.0.0.1]/", "https://[::127.0.0.1]/", "https://[64:ff9b::7f00:1]/",
    "https://[2002:7f00:1::]/", "https://[2002:c0a8:101::1]/",
    # names: local names, and names the stub resolves to internal addresses
    "https://localhost/", "https://LOCALHOST./", "https://foo.localhost/", "https://db.internal/",
    "https://printer.local/", "https://intranet/", "https://internal.example.com/",
    "https://rebind.example.com/", "https://metadata.example.com/", "https://v6local.example.com/",
    "https://mapped.example.com/", "https://ula.example.com/", "https://cgnat.example.com/",
    "https://zero.example.com/", "https://aws-v6-metadata.example.com/",
    "https://nat64.example.com/", "https://empty.example.com/", "https://nxdomain.example.com/",
    # scheme, credentials and parsing tricks
    "http://hooks.example.com/", "ftp://hooks.example.com/", "file:///etc/passwd",
    "gopher://hooks.example.com/", "https://user:pw@hooks.example.com/",
    "https://hooks.example.com@127.0.0.1/", "https://127.0.0.1\\@hooks.example.com/",
    "https://hooks.example.com:99999/", "https:///nohost", "https://%31%32%37.0.0.1/",
    "https://hooks.example.com /", "https://hooks.exa mple.com/", "//hooks.example.com/",
    "https://[::1/", "https://-bad-.example.com/",
]

ALLOWED = [
    "https://hooks.example.com/webhooks",
    "https://hooks.example.com:8443/webhooks?x=1",
    "https://dual.example.com/",
    "https://93.184.216.34/hook",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
]


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Count (and refuse) every outbound connection and real DNS lookup."""
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("network access during an SSRF check")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield calls


def test_every_crafted_url_is_rejected_and_no_connection_is_attempted(
        no_sockets: list[object]) -> None:
    assert len(CRAFTED) >= 40
    accepted = []
    for url in CRAFTED:
        try:
            ssrf.check_url(url, POLICY)
        except ssrf.UnsafeUrl as exc:
            assert exc.field == "url" and exc.status == 422
        else:
            accepted.append(url)
    assert accepted == []  # rejected = 100%
    assert no_sockets == []  # outbound connections attempted = 0


def test_public_urls_are_accepted(no_sockets: list[object]) -> None:
    for url in ALLOWED:
        target = ssrf.check_url(url, POLICY)
        assert target.addresses
    assert no_sockets == []


def test_loopback_only_with_the_test_switch() -> None:
    with pytest.raises(ssrf.UnsafeUrl):
        ssrf.check_url("http://127.0.0.1:8080/hook", POLICY)
    test_policy = ssrf.Policy(allow_loopback=True, resolver=stub_resolver)
    assert ssrf.check_url("http://127.0.0.1:8080/hook", test_policy).port == 8080
    # even then: only loopback literals, never private ranges or names resolving inward
    for url in ("http://10.0.0.1/", "https://169.254.169.254/", "https://internal.example.com/",
                "https://[::ffff:127.0.0.1]/", "https://localhost/"):
        with pytest.raises(ssrf.UnsafeUrl):
            ssrf.check_url(url, test_policy)


def test_the_switch_is_off_by_default_and_restored() -> None:
    assert ssrf.current_policy().allow_loopback is False
    with ssrf.allow_loopback_for_tests(stub_resolver):
        assert ssrf.current_policy().allow_loopback is True
    assert ssrf.current_policy().allow_loopback is False


@pytest.mark.parametrize("text, blocked", [
    ("8.8.8.8", False), ("1.1.1.1", False), ("2001:4860:4860::8888", False),
    ("10.1.2.3", True), ("172.20.0.1", True), ("192.168.10.10", True), ("127.0.0.1", True),
    ("169.254.169.254", True), ("0.0.0.0", True), ("100.100.100.200", True),
    ("::1", True), ("::", True), ("fe80::1", True), ("fc00::1", True), ("::ffff:8.8.8.8", False),
    ("::ffff:10.0.0.1", True), ("2001::1", True), ("2001:db8::1", True), ("64:ff9b::808:808", False),
    ("64:ff9b::a9fe:a9fe", True), ("2002:0a00:0001::", True),
])
def test_address_classification(text: str, blocked: bool) -> None:
    address = ipaddress.ip_address(text)
    assert (domain.blocked_reason(address) is not None) is blocked
