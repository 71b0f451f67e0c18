"""Member use cases: accounts and their hierarchy, users, enrolments, invitations, merges and
role-checked transfers. Functions take the caller's session and only flush."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit import clock, sequences
from allegiance.kit.db import is_unique_violation
from allegiance.kit.errors import AllegianceError, Conflict, ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.kit.pagination import Page, check_limit, decode_cursor, page_of
from allegiance.members import domain
from allegiance.members.errors import (
    AccountErased,
    AccountNotActive,
    AccountNotFound,
    DuplicateEmail,
    DuplicateExternalId,
    DuplicateMemberNumber,
    HierarchyCycle,
    UserNotFound,
)
from allegiance.members.models import (
    Account,
    AccountExternalId,
    User,
)

ACCOUNT_FIELDS = ("name", "parent_id", "member_number", "region", "email", "tax_id", "attributes")
USER_FIELDS = ("name", "email", "role", "external_id", "status")


def _snapshot(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _text(value: str | None, field: str, *, max_len: int, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValidationFailed(f"{field} is required", field=field)
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationFailed(f"{field} must be text without NUL characters", field=field)
    value = value.strip()
    if not value:
        if required:
            raise ValidationFailed(f"{field} must not be empty", field=field)
        return None
    if len(value) > max_len:
        raise ValidationFailed(f"{field} must be at most {max_len} characters", field=field)
    return value


def _check_region(region: str | None) -> str | None:
    region = _text(region, "region", max_len=10)
    if region is not None:
        region = region.upper()
        if not domain.valid_region(region):
            raise ValidationFailed("region must be an ISO 3166 code such as US or US-CA",
                                   field="region")
    return region


# ---------------------------------------------------------------------------------------------
# Accounts


def get_account(session: Session, tenant_id: str, account_id: str) -> Account:
    account = session.get(Account, (tenant_id, account_id))
    if account is None:
        raise AccountNotFound(f"account {account_id} not found", field="account_id")
    return account


def _active_account(session: Session, tenant_id: str, account_id: str, field: str) -> Account:
    account = session.get(Account, (tenant_id, account_id))
    if account is None:
        raise AccountNotFound(f"account {account_id} not found", field=field)
    refuse_erased(account, field)
    if account.status != "active":
        raise AccountNotActive(f"account {account_id} is {account.status}", field=field)
    return account


def refuse_erased(account: Account, field: str) -> None:
    """Raise :class:`AccountErased` (409 ``account_erased``, naming ``field``) when the account
    was erased: an erased member earns nothing, changes nothing and joins no program again."""
    if account.status == "erased":
        raise AccountErased(f"account {account.id} was erased: it earns and joins nothing",
                            field=field)


def _member_number_taken(session: Session, tenant_id: str, number: str) -> bool:
    return session.scalar(
        select(Account.id).where(Account.tenant_id == tenant_id, Account.member_number == number)
    ) is not None


def _check_parent(session: Session, tenant_id: str, account_id: str, parent_id: str | None) -> None:
    if parent_id is None:
        return
    _active_account(session, tenant_id, parent_id, "parent_id")
    if domain.creates_cycle(account_id, parent_id, ancestors(session, tenant_id, parent_id)):
        raise HierarchyCycle("an account cannot be placed below itself", field="parent_id")


def create_account(
    session: Session,
    tenant_id: str,
    *,
    name: str,
    parent_id: str | None = None,
    member_number: str | None = None,
    region: str | None = None,
    email: str | None = None,
    tax_id: str | None = None,
    attributes: dict[str, Any] | None = None,
    external_ids: list[tuple[str, str]] | None = None,
    actor: str = "system",
) -> Account:
    """A member business; its member number is generated when not given."""
    clean_name = _text(name, "name", max_len=200, required=True)
    assert clean_name is not None
    account_id = new_id("acc")
    _check_parent(session, tenant_id, account_id, parent_id)
    number = _text(member_number, "member_number", max_len=32)
    if number is not None:
        if _member_number_taken(session, tenant_id, number):
            raise DuplicateMemberNumber(f"member number {number} is taken",
                                        field="member_number")
    else:
        while number is None or _member_number_taken(session, tenant_id, number):
            counter, _ = sequences.reserve(session, tenant_id, "member_number")
            number = domain.member_number(counter)
    pairs = _check_external_ids(session, tenant_id, external_ids or [])
    now = clock.now()
    account = Account(
        tenant_id=tenant_id, id=account_id, parent_id=parent_id, name=clean_name,
        member_number=number, region=_check_region(region),
        email=_text(email, "email", max_len=320), tax_id=_text(tax_id, "tax_id", max_len=64),
        attributes=dict(attributes or {}), status="active", merged_into_id=None,
        created_at=now, updated_at=now,
    )
    session.add(account)
    session.flush()
    for source, external_id in pairs:
        session.add(AccountExternalId(tenant_id=tenant_id, source=source,
                                      external_id=external_id, account_id=account_id))
    _flush_unique(session, "external_ids", DuplicateExternalId)
    after = _snapshot(account, ACCOUNT_FIELDS)
    after["external_ids"] = [list(p) for p in pairs]
    audit.record(session, tenant_id, actor=actor, action="account.created",
                 object_type="account", object_id=account_id, after=after)
    return account


def _check_external_ids(
    session: Session, tenant_id: str, external_ids: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    for index, (source, external_id) in enumerate(external_ids):
        field = f"external_ids[{index}]"
        src = _text(source, f"{field}.source", max_len=64, required=True)
        ext = _text(external_id, f"{field}.external_id", max_len=200, required=True)
        assert src is not None and ext is not None
        taken = session.get(AccountExternalId, (tenant_id, src, ext)) is not None
        if taken or (src, ext) in seen:
            raise DuplicateExternalId(f"external id {src}:{ext} belongs to another account",
                                      field=field)
        seen.add((src, ext))
        out.append((src, ext))
    return out


def _flush_unique(session: Session, field: str, error: type[AllegianceError]) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise error(f"{field} is already taken", field=field) from exc
        raise


def update_account(
    session: Session, tenant_id: str, account_id: str, changes: dict[str, Any], actor: str
) -> Account:
    """Change an account's details or move it in the hierarchy (never its status)."""
    for key in changes:
        if key not in ACCOUNT_FIELDS:
            raise ValidationFailed(f"{key} cannot be changed here", field=key)
    account = get_account(session, tenant_id, account_id)
    if account.status == "merged":
        raise AccountNotActive(f"account {account_id} is merged", field="account_id")
    before = _snapshot(account, ACCOUNT_FIELDS)
    if "name" in changes:
        account.name = _text(changes["name"], "name", max_len=200, required=True) or ""
    if "parent_id" in changes and changes["parent_id"] != account.parent_id:
        _check_parent(session, tenant_id, account_id, changes["parent_id"])
        account.parent_id = changes["parent_id"]
    if "member_number" in changes:
        number = _text(changes["member_number"], "member_number", max_len=32, required=True)
        assert number is not None
        if number != account.member_number and _member_number_taken(session, tenant_id, number):
            raise DuplicateMemberNumber(f"member number {number} is taken",
                                        field="member_number")
        account.member_number = number
    if "region" in changes:
        account.region = _check_region(changes["region"])
    if "email" in changes:
        account.email = _text(changes["email"], "email", max_len=320)
    if "tax_id" in changes:
        account.tax_id = _text(changes["tax_id"], "tax_id", max_len=64)
    if "attributes" in changes:
        if not isinstance(changes["attributes"], dict):
            raise ValidationFailed("attributes must be an object", field="attributes")
        account.attributes = dict(changes["attributes"])
    account.updated_at = clock.now()
    _flush_unique(session, "member_number", DuplicateMemberNumber)
    audit.record(session, tenant_id, actor=actor, action="account.updated",
                 object_type="account", object_id=account_id, before=before,
                 after=_snapshot(account, ACCOUNT_FIELDS))
    return account


def list_accounts(
    session: Session,
    tenant_id: str,
    *,
    parent_id: str | None = None,
    q: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Account]:
    """Accounts by id; ``q`` matches part of the name, or a member number or e-mail exactly."""
    check_limit(limit)
    stmt = select(Account).where(Account.tenant_id == tenant_id)
    if parent_id is not None:
        stmt = stmt.where(Account.parent_id == parent_id)
    if status is not None:
        stmt = stmt.where(Account.status == status)
    if q:
        stmt = stmt.where(
            func.lower(Account.name).contains(q.lower(), autoescape=True)
            | (Account.member_number == q) | (func.lower(Account.email) == q.lower())
        )
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(Account.id > after)
    rows = list(session.scalars(stmt.order_by(Account.id).limit(limit + 1)))
    return page_of(rows, limit, rows[limit - 1].id if len(rows) > limit else None)


def external_ids_of(
    session: Session, tenant_id: str, account_ids: list[str]
) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {a: [] for a in account_ids}
    if not account_ids:
        return out
    rows = session.scalars(
        select(AccountExternalId).where(
            AccountExternalId.tenant_id == tenant_id,
            AccountExternalId.account_id.in_(account_ids),
        ).order_by(AccountExternalId.source, AccountExternalId.external_id)
    )
    for row in rows:
        out[row.account_id].append((row.source, row.external_id))
    return out


def find_account(
    session: Session,
    tenant_id: str,
    *,
    account_id: str | None = None,
    external_id: tuple[str, str] | None = None,
    member_number: str | None = None,
) -> Account:
    """The account matched by id, external id ``(source, id)`` or member number; a merged
    account answers with the account it was merged into."""
    found: Account | None = None
    field = "account_id"
    if account_id is not None:
        found = session.get(Account, (tenant_id, account_id))
    elif external_id is not None:
        field = "external_id"
        link = session.get(AccountExternalId, (tenant_id, external_id[0], external_id[1]))
        found = session.get(Account, (tenant_id, link.account_id)) if link else None
    elif member_number is not None:
        field = "member_number"
        found = session.scalars(select(Account).where(
            Account.tenant_id == tenant_id, Account.member_number == member_number)).first()
    else:
        raise ValidationFailed("give an account id, an external id or a member number",
                               field="account_id")
    seen: set[str] = set()
    while found is not None and found.merged_into_id and found.id not in seen:
        seen.add(found.id)
        found = session.get(Account, (tenant_id, found.merged_into_id))
    if found is None:
        raise AccountNotFound("no account matches", field=field)
    return found


def descendants(session: Session, tenant_id: str, account_id: str) -> list[str]:
    """Ids of every account below ``account_id`` (any depth), nearest first."""
    tree = (
        select(Account.id, literal(1).label("depth"))
        .where(Account.tenant_id == tenant_id, Account.parent_id == account_id)
        .cte("tree", recursive=True)
    )
    tree = tree.union(
        select(Account.id, (tree.c.depth + 1).label("depth"))
        .where(Account.tenant_id == tenant_id, Account.parent_id == tree.c.id, tree.c.depth < 1000)
    )
    rows = session.execute(select(tree.c.id, tree.c.depth).order_by(tree.c.depth, tree.c.id))
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row.id, None)
    return list(seen)


def ancestors(session: Session, tenant_id: str, account_id: str) -> list[str]:
    """Ids of the accounts above ``account_id``, parent first, root last."""
    chain = (
        select(Account.parent_id.label("id"), literal(1).label("depth"))
        .where(Account.tenant_id == tenant_id, Account.id == account_id,
               Account.parent_id.is_not(None))
        .cte("chain", recursive=True)
    )
    chain = chain.union(
        select(Account.parent_id.label("id"), (chain.c.depth + 1).label("depth"))
        .where(Account.tenant_id == tenant_id, Account.id == chain.c.id,
               Account.parent_id.is_not(None), chain.c.depth < 1000)
    )
    rows = session.execute(select(chain.c.id, chain.c.depth).order_by(chain.c.depth))
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row.id, None)
    return list(seen)


# ---------------------------------------------------------------------------------------------
# Users


def get_user(session: Session, tenant_id: str, user_id: str) -> User:
    user = session.get(User, (tenant_id, user_id))
    if user is None:
        raise UserNotFound(f"user {user_id} not found", field="user_id")
    return user


def _check_role(role: str) -> str:
    if role not in domain.ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(domain.ROLES)}", field="role")
    return role


def _check_user_unique(
    session: Session, tenant_id: str, user_id: str | None, email: str | None,
    external_id: str | None,
) -> None:
    checks: tuple[tuple[str, Any, str | None, type[Conflict]], ...] = (
        ("email", User.email, email, DuplicateEmail),
        ("external_id", User.external_id, external_id, DuplicateExternalId),
    )
    for field, column, value, error in checks:
        if value is None:
            continue
        other = session.scalar(select(User.id).where(User.tenant_id == tenant_id, column == value))
        if other is not None and other != user_id:
            raise error(f"another user has this {field}", field=field)


def add_user(
    session: Session,
    tenant_id: str,
    account_id: str,
    *,
    name: str,
    email: str | None = None,
    role: str,
    external_id: str | None = None,
    actor: str = "system",
) -> User:
    _active_account(session, tenant_id, account_id, "account_id")
    clean_name = _text(name, "name", max_len=200, required=True) or ""
    clean_email = _text(email, "email", max_len=320)
    clean_external = _text(external_id, "external_id", max_len=200)
    _check_user_unique(session, tenant_id, None, clean_email, clean_external)
    now = clock.now()
    user = User(
        tenant_id=tenant_id, id=new_id("usr"), account_id=account_id, email=clean_email,
        name=clean_name, role=_check_role(role), external_id=clean_external, status="active",
        password_hash=None, created_at=now, updated_at=now,
    )
    session.add(user)
    _flush_unique(session, "email", DuplicateEmail)
    audit.record(session, tenant_id, actor=actor, action="user.created", object_type="user",
                 object_id=user.id, after=_snapshot(user, (*USER_FIELDS, "account_id")))
    return user


def update_user(
    session: Session, tenant_id: str, user_id: str, changes: dict[str, Any], actor: str
) -> User:
    for key in changes:
        if key not in USER_FIELDS:
            raise ValidationFailed(f"{key} cannot be changed here", field=key)
    user = get_user(session, tenant_id, user_id)
    before = _snapshot(user, USER_FIELDS)
    if "name" in changes:
        user.name = _text(changes["name"], "name", max_len=200, required=True) or ""
    if "role" in changes:
        user.role = _check_role(changes["role"])
    if "status" in changes:
        if changes["status"] not in domain.USER_STATUSES:
            raise ValidationFailed("status must be active or disabled", field="status")
        user.status = changes["status"]
    email = _text(changes["email"], "email", max_len=320) if "email" in changes else user.email
    external = (_text(changes["external_id"], "external_id", max_len=200)
                if "external_id" in changes else user.external_id)
    _check_user_unique(session, tenant_id, user_id, email, external)
    user.email, user.external_id = email, external
    user.updated_at = clock.now()
    _flush_unique(session, "email", DuplicateEmail)
    audit.record(session, tenant_id, actor=actor, action="user.updated", object_type="user",
                 object_id=user_id, before=before, after=_snapshot(user, USER_FIELDS))
    return user


def list_users(session: Session, tenant_id: str, account_id: str) -> list[User]:
    get_account(session, tenant_id, account_id)
    return list(session.scalars(
        select(User).where(User.tenant_id == tenant_id, User.account_id == account_id)
        .order_by(User.id)
    ))
