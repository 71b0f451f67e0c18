"""Who is calling: a principal (a tenant's API key with scopes) and what scopes allow.
Feature-agnostic, so the web layer in ``kit.web`` can check scopes without knowing tenants."""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("admin", "integration", "read")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant's API key with its scopes (and optional program restriction)."""

    tenant_id: str
    key_id: str
    scopes: tuple[str, ...]
    program_ids: tuple[str, ...] = ()

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}"


def scope_allows(granted: list[str], needed: str) -> bool:
    """``admin`` may do everything, ``integration`` may write and read, ``read`` may read."""
    if "admin" in granted:
        return True
    if needed == "read":
        return bool({"integration", "read"} & set(granted))
    if needed == "integration":
        return "integration" in granted
    return needed in granted
