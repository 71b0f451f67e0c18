"""Tenants, programs, units and API keys. Services flush; the caller commits."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allegiance.kit import clock, zones
from allegiance.kit.auth import Principal, PrincipalCache
from allegiance.kit.errors import ValidationFailed
from allegiance.kit.expiry import ExpiryPolicy
from allegiance.kit.ids import has_prefix, new_id
from allegiance.kit.models import Tenant
from allegiance.kit.money import is_currency_code
from allegiance.kit.settings import get_settings
from allegiance.tenants.domain import (
    ENROLMENT_MODES,
    SCOPES,
    valid_code,
    valid_region,
    valid_time_zone,
)
from allegiance.tenants.errors import (
    ApiKeyNotFound,
    ApiKeyNotUsable,
    DuplicateCode,
    InvalidApiKey,
    ProgramNotFound,
    TenantNotFound,
    UnitNotFound,
)
from allegiance.tenants.models import ApiKey, Program, Unit


def create_tenant(session: Session, name: str) -> Tenant:
    name = name.strip()
    if not name:
        raise ValidationFailed("name must not be empty", field="name")
    tenant = Tenant(id=new_id("ten"), name=name, status="active", created_at=clock.now(),
                    settings={})
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound(f"tenant {tenant_id} not found", field="tenant_id")
    return tenant


# ---------------------------------------------------------------------------------------------
# Programs


def _check_program_fields(data: dict[str, Any]) -> None:
    if "code" in data and not valid_code(str(data["code"])):
        raise ValidationFailed(
            "code: lower-case letters, digits, '-' and '_', at most 64", field="code"
        )
    if "time_zone" in data and not valid_time_zone(str(data["time_zone"])):
        raise ValidationFailed(f"unknown time zone {data['time_zone']!r}", field="time_zone")
    if "base_currency" in data and not is_currency_code(str(data["base_currency"])):
        raise ValidationFailed("base_currency must be an ISO 4217 code", field="base_currency")
    if "enrolment_mode" in data and data["enrolment_mode"] not in ENROLMENT_MODES:
        raise ValidationFailed(
            f"enrolment_mode must be one of {', '.join(ENROLMENT_MODES)}", field="enrolment_mode"
        )
    for index, region in enumerate(data.get("eligible_regions") or []):
        if not valid_region(str(region)):
            raise ValidationFailed(
                f"{region!r} is not an ISO 3166 code", field=f"eligible_regions[{index}]"
            )
    threshold = data.get("adjustment_approval_threshold")
    if threshold is not None and int(threshold) < 0:
        raise ValidationFailed(
            "adjustment_approval_threshold must not be negative",
            field="adjustment_approval_threshold",
        )


def create_program(
    session: Session,
    tenant_id: str,
    *,
    code: str,
    name: str,
    base_currency: str,
    time_zone: str = "UTC",
    enrolment_mode: str = "open",
    eligible_regions: list[str] | None = None,
    adjustment_approval_threshold: int | None = None,
    settings: dict[str, Any] | None = None,
) -> Program:
    data: dict[str, Any] = {
        "code": code, "time_zone": time_zone, "base_currency": base_currency,
        "enrolment_mode": enrolment_mode, "eligible_regions": eligible_regions or [],
        "adjustment_approval_threshold": adjustment_approval_threshold,
    }
    _check_program_fields(data)
    get_tenant(session, tenant_id)
    if session.scalars(
        select(Program.id).where(Program.tenant_id == tenant_id, Program.code == code)
    ).first():
        raise DuplicateCode(f"a program with code {code!r} exists", field="code")
    zones.ensure(session, time_zone)  # the analytics triggers key events by its local day
    program = Program(
        tenant_id=tenant_id, id=new_id("prg"), name=name, status="active",
        settings=settings or {}, created_at=clock.now(), **data,
    )
    session.add(program)
    session.flush()
    return program


def get_program(session: Session, tenant_id: str, program_id: str) -> Program:
    program = session.get(Program, (tenant_id, program_id))
    if program is None:
        raise ProgramNotFound(f"program {program_id} not found", field="program_id")
    return program


def program_by_code(session: Session, tenant_id: str, code: str) -> Program:
    program = session.scalars(
        select(Program).where(Program.tenant_id == tenant_id, Program.code == code)
    ).one_or_none()
    if program is None:
        raise ProgramNotFound(f"program {code!r} not found", field="program")
    return program


def program_by_code_or_id(session: Session, tenant_id: str, ref: str) -> Program:
    """A program named as a command line names it: its id (``prg_…``, what ``make run`` and
    the API print) or its code."""
    if has_prefix(ref, "prg"):
        found = session.get(Program, (tenant_id, ref))
        if found is not None:
            return found
    return program_by_code(session, tenant_id, ref)


def list_programs(session: Session, tenant_id: str) -> list[Program]:
    return list(
        session.scalars(
            select(Program).where(Program.tenant_id == tenant_id).order_by(Program.id)
        )
    )


def update_program(
    session: Session, tenant_id: str, program_id: str, changes: dict[str, Any]
) -> Program:
    program = get_program(session, tenant_id, program_id)
    _settings_changed()
    allowed = {
        "name", "time_zone", "base_currency", "enrolment_mode", "eligible_regions",
        "adjustment_approval_threshold", "settings", "status",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed("field cannot be changed", field=sorted(unknown)[0])
    _check_program_fields(changes)
    if "status" in changes and changes["status"] not in ("active", "paused", "closed"):
        raise ValidationFailed("status must be active, paused or closed", field="status")
    if "time_zone" in changes:
        # stored before the update: the database then rebuilds the program's analytics
        # summaries by its new local day (trigger analytics_program_zone, same transaction)
        zones.ensure(session, str(changes["time_zone"]))
    for key, value in changes.items():
        setattr(program, key, value)
    session.flush()
    return program


# ---------------------------------------------------------------------------------------------
# Units


def _check_unit_fields(data: dict[str, Any]) -> None:
    if "code" in data and not valid_code(str(data["code"])):
        raise ValidationFailed(
            "code: lower-case letters, digits, '-' and '_', at most 64", field="code"
        )
    kind = data.get("kind")
    if kind is not None and kind not in ("points", "money"):
        raise ValidationFailed("kind must be points or money", field="kind")
    if kind == "money" and not is_currency_code(str(data.get("currency") or "")):
        raise ValidationFailed("a money unit needs an ISO 4217 currency", field="currency")
    if kind == "points" and data.get("currency"):
        raise ValidationFailed("a points unit has no currency", field="currency")
    if "value_in_base" in data:
        try:
            value = Decimal(str(data["value_in_base"]))
        except ArithmeticError as exc:
            raise ValidationFailed("value_in_base must be a number", field="value_in_base") from exc
        if not value.is_finite() or value < 0:
            raise ValidationFailed("value_in_base must not be negative", field="value_in_base")
    if "negative_floor" in data and int(data["negative_floor"]) > 0:
        raise ValidationFailed("negative_floor must be zero or negative", field="negative_floor")
    if "expiry_policy" in data:
        try:
            ExpiryPolicy.from_dict(data["expiry_policy"])
        except (ValueError, TypeError) as exc:
            raise ValidationFailed(str(exc), field="expiry_policy") from exc


def create_unit(
    session: Session,
    tenant_id: str,
    program_id: str,
    *,
    code: str,
    name: str,
    kind: str,
    currency: str | None = None,
    value_in_base: Decimal | str | int = 0,
    negative_floor: int = 0,
    expiry_policy: dict[str, Any] | None = None,
    transferable: bool = True,
) -> Unit:
    data: dict[str, Any] = {
        "code": code, "kind": kind, "currency": currency, "value_in_base": value_in_base,
        "negative_floor": negative_floor, "expiry_policy": expiry_policy or {"kind": "never"},
    }
    _check_unit_fields(data)
    get_program(session, tenant_id, program_id)
    if session.scalars(
        select(Unit.id).where(
            Unit.tenant_id == tenant_id, Unit.program_id == program_id, Unit.code == code
        )
    ).first():
        raise DuplicateCode(f"a unit with code {code!r} exists in this program", field="code")
    unit = Unit(
        tenant_id=tenant_id, id=new_id("unt"), program_id=program_id, name=name,
        transferable=transferable, created_at=clock.now(),
        **{**data, "value_in_base": Decimal(str(value_in_base)),
           "expiry_policy": ExpiryPolicy.from_dict(data["expiry_policy"]).to_dict()},
    )
    session.add(unit)
    session.flush()
    return unit


def get_unit(session: Session, tenant_id: str, unit_id: str) -> Unit:
    unit = session.get(Unit, (tenant_id, unit_id))
    if unit is None:
        raise UnitNotFound(f"unit {unit_id} not found", field="unit_id")
    return unit


def unit_by_code(session: Session, tenant_id: str, program_id: str, code: str) -> Unit:
    unit = session.scalars(
        select(Unit).where(
            Unit.tenant_id == tenant_id, Unit.program_id == program_id, Unit.code == code
        )
    ).one_or_none()
    if unit is None:
        raise UnitNotFound(f"unit {code!r} not found in program {program_id}", field="unit")
    return unit


def list_units(session: Session, tenant_id: str, program_id: str) -> list[Unit]:
    get_program(session, tenant_id, program_id)
    return list(
        session.scalars(
            select(Unit)
            .where(Unit.tenant_id == tenant_id, Unit.program_id == program_id)
            .order_by(Unit.id)
        )
    )


def update_unit(session: Session, tenant_id: str, unit_id: str, changes: dict[str, Any]) -> Unit:
    _settings_changed()
    unit = get_unit(session, tenant_id, unit_id)
    allowed = {"name", "value_in_base", "negative_floor", "expiry_policy", "transferable"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed("field cannot be changed", field=sorted(unknown)[0])
    _check_unit_fields(changes)
    for key, value in changes.items():
        if key == "value_in_base":
            value = Decimal(str(value))
        if key == "expiry_policy":
            value = ExpiryPolicy.from_dict(value).to_dict()
        setattr(unit, key, value)
    session.flush()
    return unit


# The ledger asks for units' expiry policies on every posting: they are cached per process for
# a few seconds. A change made in this process is seen at once (the generation moves); one
# made by another process is seen within EXPIRY_CACHE_SECONDS.
EXPIRY_CACHE_SECONDS = 5.0
_generation = 0
_expiry_cache: dict[tuple[str, str], tuple[int, float, ExpiryPolicy, str]] = {}


def _settings_changed() -> None:
    global _generation
    _generation += 1


def unit_expiry(
    session: Session, tenant_id: str, unit_ids: list[str]
) -> dict[str, tuple[ExpiryPolicy, str]]:
    """Per unit, its expiry policy and its program's time zone."""
    now = time.monotonic()
    out: dict[str, tuple[ExpiryPolicy, str]] = {}
    missing = []
    for unit_id in unit_ids:
        cached = _expiry_cache.get((tenant_id, unit_id))
        if cached and cached[0] == _generation and now - cached[1] < EXPIRY_CACHE_SECONDS:
            out[unit_id] = (cached[2], cached[3])
        else:
            missing.append(unit_id)
    if not missing:
        return out
    generation = _generation
    rows = session.execute(
        select(Unit.id, Unit.expiry_policy, Program.time_zone)
        .join(Program, (Program.tenant_id == Unit.tenant_id) & (Program.id == Unit.program_id))
        .where(Unit.tenant_id == tenant_id, Unit.id.in_(missing))
    )
    for unit_id, policy_data, time_zone in rows:
        policy = ExpiryPolicy.from_dict(policy_data)
        out[str(unit_id)] = (policy, str(time_zone))
        if len(_expiry_cache) > 10_000:
            _expiry_cache.clear()
        _expiry_cache[(tenant_id, str(unit_id))] = (generation, now, policy, str(time_zone))
    return out


# ---------------------------------------------------------------------------------------------
# API keys


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once; only its hash is stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session,
    tenant_id: str,
    *,
    name: str,
    scopes: list[str],
    program_ids: list[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    if not scopes:
        raise ValidationFailed("at least one scope is needed", field="scopes")
    for index, scope in enumerate(scopes):
        if scope not in SCOPES:
            raise ValidationFailed(
                f"scope must be one of {', '.join(SCOPES)}", field=f"scopes[{index}]"
            )
    for program_id in program_ids or []:
        get_program(session, tenant_id, program_id)
    get_tenant(session, tenant_id)
    key_id = new_id("key")
    secret = f"{key_id}.{secrets.token_urlsafe(32)}"
    key = ApiKey(
        tenant_id=tenant_id, id=key_id, name=name, secret_hash=_hash(secret),
        scopes=sorted(set(scopes)), program_ids=program_ids or [], created_at=clock.now(),
        expires_at=expires_at, revoked_at=None, last_used_at=None,
    )
    session.add(key)
    session.flush()
    return IssuedKey(key=key, secret=secret)


_last_used_written: dict[str, datetime] = {}


_principals = PrincipalCache(get_settings().api_key_cache_seconds)


def cached_principal(secret: str) -> Principal | None:
    """The principal of a secret checked moments ago (see ``kit.auth.PrincipalCache`` for the
    bounds), or None: then :func:`authenticate` reads the key."""
    return _principals.get(_hash(secret), clock.now())


def authenticate(session: Session, secret: str) -> Principal:
    """The principal of a bearer secret; raises InvalidApiKey for anything else."""
    key_id, _, _rest = secret.partition(".")
    if not key_id.startswith("key_") or not _rest:
        raise InvalidApiKey("the API key is not valid")
    started = _principals.started()
    key = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).one_or_none()
    now = clock.now()
    digest = _hash(secret)
    current = key is not None and hmac.compare_digest(key.secret_hash, digest)
    if key is None or not (current or _previous_valid(key, digest, now)):
        raise InvalidApiKey("the API key is not valid")
    if key.revoked_at is not None:
        raise InvalidApiKey("the API key has been revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise InvalidApiKey("the API key has expired")
    principal = Principal(key.tenant_id, key.id, tuple(key.scopes), tuple(key.program_ids))
    limits = [t for t in (key.expires_at, None if current else key.previous_secret_expires_at)
              if t is not None]
    _principals.put(digest, principal, started, min(limits) if limits else None)
    return principal


def _key_changed(session: Session, key_id: str) -> None:
    """Cached checks of the key stop at once in this process, and again once the change is
    committed (a check that read the key before the commit is not kept)."""
    _principals.changed(key_id)
    session.info.setdefault("on_commit", []).append(lambda: _principals.changed(key_id))


def _previous_valid(key: ApiKey, digest: str, now: datetime) -> bool:
    """The secret replaced by a rotation still works until the grace period ends."""
    return (key.previous_secret_hash is not None and key.previous_secret_expires_at is not None
            and now < key.previous_secret_expires_at
            and hmac.compare_digest(key.previous_secret_hash, digest))


MAX_ROTATION_GRACE = timedelta(days=7)


def rotate_api_key(session: Session, tenant_id: str, key_id: str,
                   grace: timedelta = timedelta(0)) -> IssuedKey:
    """A new secret for the key (same id, scopes and programs). The old secret keeps working
    for ``grace`` (at most 7 days; zero: refused at once). A revoked or expired key cannot be
    rotated: create a new one."""
    if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
        raise ValidationFailed("the grace period is 0 to 7 days", field="grace_seconds")
    key = session.get(ApiKey, (tenant_id, key_id))
    if key is None:
        raise ApiKeyNotFound(f"API key {key_id} not found", field="key_id")
    now = clock.now()
    if key.revoked_at is not None:
        raise ApiKeyNotUsable("a revoked API key cannot be rotated", field="key_id")
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyNotUsable("an expired API key cannot be rotated", field="key_id")
    _key_changed(session, key_id)
    secret = f"{key.id}.{secrets.token_urlsafe(32)}"
    if grace > timedelta(0):
        key.previous_secret_hash = key.secret_hash
        key.previous_secret_expires_at = now + grace
    else:
        key.previous_secret_hash = None
        key.previous_secret_expires_at = None
    key.secret_hash = _hash(secret)
    key.rotated_at = now
    session.flush()
    return IssuedKey(key=key, secret=secret)


def last_use_due(key_id: str) -> bool:
    """Whether this process should record the key's use now (at most once a minute)."""
    last = _last_used_written.get(key_id)
    return last is None or clock.now() - last >= timedelta(minutes=1)


def touch_api_key(session: Session, tenant_id: str, key_id: str) -> bool:
    """Record last use at most once a minute per key and process; True when written."""
    now = clock.now()
    last = _last_used_written.get(key_id)
    if last is not None and now - last < timedelta(minutes=1):
        return False
    key = session.get(ApiKey, (tenant_id, key_id))
    if key is None:
        return False
    key.last_used_at = now
    _last_used_written[key_id] = now
    session.flush()
    return True


def list_api_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    return list(
        session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id))
    )


def revoke_api_key(session: Session, tenant_id: str, key_id: str) -> ApiKey:
    key = session.get(ApiKey, (tenant_id, key_id))
    if key is None:
        raise ApiKeyNotFound(f"API key {key_id} not found", field="key_id")
    _key_changed(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
    # Revoked means refused at once, whichever secret is presented.
    key.previous_secret_hash = None
    key.previous_secret_expires_at = None
    session.flush()
    return key
