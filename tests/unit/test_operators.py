"""Operator and portal credentials: production Argon2id parameters, password rules, tokens,
sign-in throttling, and the role table."""

from __future__ import annotations

import time

import pytest

from allegiance.operators import Throttle, TooManyAttempts, domain, passwords


def test_passwords_use_argon2id_with_rfc9106_parameters() -> None:
    encoded = passwords.hash_password("a sufficiently long one")
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(encoded, "a sufficiently long one")
    assert not passwords.verify_password(encoded, "a sufficiently long onE")
    assert not passwords.verify_password(None, "anything at all")
    assert not passwords.verify_password("not a hash", "anything at all")


@pytest.mark.parametrize("password,problem", [
    ("short", "at least 12"), ("x" * 300, "at most 256"), ("aaaaaaaaaaaaaaa", "too few"),
    ("someone@example.com", "e-mail"), ("with\x00nul char", "NUL")])
def test_password_rules(password: str, problem: str) -> None:
    found = domain.password_problem(password, "someone@example.com")
    assert found is not None and problem in found


def test_a_good_password_passes() -> None:
    assert domain.password_problem("correct horse battery staple", "a@b.example") is None


def test_tokens_are_random_and_stored_hashed() -> None:
    first, second = domain.new_token(), domain.new_token()
    assert first != second and len(first) >= 43
    assert domain.hash_token(first) != first and len(domain.hash_token(first)) == 64
    assert domain.same_secret(first, first) and not domain.same_secret(first, second)


def test_throttle_per_email_and_per_address() -> None:
    throttle = Throttle(per_email=3, per_address=5, window=60)
    for _ in range(3):
        throttle.check("a@x.example", "10.0.0.1")
        throttle.failed("a@x.example", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        throttle.check("a@x.example", "10.0.0.2")
    throttle.check("b@x.example", "10.0.0.1")  # another e-mail from the same address
    throttle.failed("b@x.example", "10.0.0.1")
    throttle.failed("c@x.example", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        throttle.check("d@x.example", "10.0.0.1")  # the address is over its limit
    throttle.succeeded("a@x.example")
    throttle.check("a@x.example", "10.0.0.9")


def test_throttle_window_moves_on() -> None:
    throttle = Throttle(per_email=1, per_address=10, window=0.01)
    throttle.failed("a@x.example", "h")
    time.sleep(0.02)
    throttle.check("a@x.example", "h")


def test_every_role_has_a_grant_and_only_owners_manage_operators() -> None:
    assert set(domain.GRANTS) == set(domain.ROLES)
    for role, granted in domain.GRANTS.items():
        assert granted <= set(domain.PERMISSIONS), role
    assert [r for r in domain.ROLES if domain.may(r, "operators")] == ["owner"]
