"""Engagement objects as part of a program definition (the ``engagement`` section).

A definition may list ``badges``, ``courses``, ``certifications``, ``challenges``, ``surveys``,
``member_events``, ``reward_menus`` and ``super_tickets`` (these two name catalogue rewards by
code, which must exist when the definition is applied); each item is matched by its ``code``. Applying a definition creates the
missing objects and updates the existing ones. Fields that members' progress depends on (what a
challenge counts or pays, a survey's questions, …) change only while no member has progress in
the object; otherwise the change is refused with the field's path. An object that a previous
version listed and this one does not is never deleted once members have progress in it: it is
retired (challenges, courses, menus), closed (surveys) or cancelled (member events, super
tickets); a held badge or certification cannot be dropped. Export returns the stored document,
so export → apply changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from allegiance import rewards, tenants
from allegiance.engagement import academy, badges, member_events, menus, service, surveys, tickets
from allegiance.engagement.domain import METRICS, PERIODS
from allegiance.engagement.errors import InvalidDefinitionItem
from allegiance.engagement.models import (
    AccountBadge,
    AccountCertification,
    Attendee,
    Badge,
    Certification,
    Challenge,
    ChallengeProgress,
    ChallengeTotal,
    Course,
    CourseCompletion,
    MemberEvent,
    MenuPick,
    RewardMenu,
    SuperTicket,
    Survey,
    SurveyResponse,
    TicketEntry,
)
from allegiance.kit.errors import AllegianceError

KINDS = ("badges", "courses", "certifications", "challenges", "surveys", "member_events",
         "reward_menus", "super_tickets")
FIELDS: dict[str, tuple[str, ...]] = {
    "badges": ("code", "name", "levels"),
    "courses": ("code", "name", "activity_type", "hours", "status"),
    "certifications": ("code", "name", "courses", "valid_days", "badge"),
    "challenges": ("code", "name", "description", "trigger", "metric", "target", "period",
                   "streak", "product_list", "category", "starts_at", "ends_at",
                   "max_completions", "effects", "budget", "status"),
    "surveys": ("code", "name", "questions", "reward", "activity_type", "audience", "status"),
    "member_events": ("code", "name", "starts_at", "ends_at", "capacity", "invitation_only",
                      "attendance", "status"),
    "reward_menus": ("code", "name", "period", "picks", "rewards", "bonus", "status"),
    "super_tickets": ("code", "name", "reward", "mode", "opens_at", "closes_at", "winners"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "badges": ("code", "name"),
    "courses": ("code", "name"),
    "certifications": ("code", "name", "courses"),
    "challenges": ("code", "name", "trigger", "target", "effects"),
    "surveys": ("code", "name", "questions"),
    "member_events": ("code", "name", "starts_at", "ends_at"),
    "reward_menus": ("code", "name", "rewards"),
    "super_tickets": ("code", "name", "reward", "mode", "opens_at", "closes_at"),
}
STATUSES: dict[str, tuple[str, ...]] = {"courses": ("active", "retired"), "challenges": ("active", "retired"),
            "surveys": ("open", "closed"), "member_events": ("open", "closed", "cancelled"),
            "reward_menus": ("active", "retired")}
# What a member's progress depends on: changed only while nobody has progress.
LOCKED: dict[str, tuple[str, ...]] = {
    "badges": (),
    "courses": ("activity_type",),
    "certifications": ("courses", "badge"),
    "challenges": ("trigger", "metric", "target", "period", "streak", "product_list",
                   "category", "starts_at", "effects", "budget"),
    "surveys": ("questions", "reward", "activity_type", "audience"),
    "member_events": ("attendance",),
    "reward_menus": ("rewards", "period", "picks", "bonus"),
    "super_tickets": ("reward", "mode", "opens_at", "closes_at", "winners"),
}
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
_SINGULAR = {"badges": "badge", "courses": "course", "certifications": "certification",
             "challenges": "challenge", "surveys": "survey", "member_events": "member event",
             "reward_menus": "reward menu", "super_tickets": "super ticket"}


# --- validation (no database) ----------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _positive(value: Any, allow_zero: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)


def _reward(value: Any, path: str, units: set[str], out: list[tuple[str, str]]) -> None:
    if not isinstance(value, Mapping) or set(value) - {"unit", "points"}:
        out.append((path, "must be a mapping {unit: <unit code>, points: <whole number>}"))
        return
    if value.get("unit") not in units:
        out.append((f"{path}.unit", f"unknown unit {value.get('unit')!r}"))
    if not _positive(value.get("points"), allow_zero=True):
        out.append((f"{path}.points", "must be a whole number, zero or more"))


def _item(kind: str, item: Mapping[str, Any], path: str, context: Mapping[str, set[str]],
          out: list[tuple[str, str]]) -> None:
    for key in item:
        if key not in FIELDS[kind]:
            out.append((f"{path}.{key}", f"is not a known field of a {_SINGULAR[kind]} "
                                         f"(known: {', '.join(FIELDS[kind])})"))
    for key in REQUIRED[kind]:
        if item.get(key) is None:
            out.append((f"{path}.{key}", "is required"))
    if "name" in item and (not isinstance(item["name"], str) or not item["name"].strip()
                           or len(item["name"]) > 200):
        out.append((f"{path}.name", "must be a non-empty text of at most 200 characters"))
    status = item.get("status")
    if status is not None and status not in STATUSES.get(kind, ()):
        out.append((f"{path}.status", f"must be one of {', '.join(STATUSES.get(kind, ()))}"))
    for key in ("starts_at", "ends_at"):
        if item.get(key) is not None and _when(item[key]) is None:
            out.append((f"{path}.{key}", "must be a date-time with a time zone offset"))
    start, end = _when(item.get("starts_at")), _when(item.get("ends_at"))
    if start is not None and end is not None and start >= end:
        out.append((f"{path}.ends_at", "must be after starts_at"))
    if kind == "badges":
        levels = item.get("levels")
        if levels is not None and (not isinstance(levels, list) or not 1 <= len(levels) <= 20
                                   or not all(isinstance(v, str) and v.strip() for v in levels)):
            out.append((f"{path}.levels", "must be a list of 1 to 20 level names"))
    elif kind == "courses":
        if item.get("hours") is not None and not _positive(item["hours"], allow_zero=True):
            out.append((f"{path}.hours", "must be a whole number, zero or more"))
    elif kind == "certifications":
        courses = item.get("courses")
        if courses is not None and (not isinstance(courses, list) or not courses):
            out.append((f"{path}.courses", "must list at least one course code"))
        for index, course in enumerate(courses if isinstance(courses, list) else []):
            if course not in context["courses"]:
                out.append((f"{path}.courses[{index}]",
                            f"no course {course!r} in engagement.courses"))
        if item.get("badge") is not None and item["badge"] not in context["badges"]:
            out.append((f"{path}.badge", f"no badge {item['badge']!r} in engagement.badges"))
        if item.get("valid_days") is not None and not _positive(item["valid_days"]):
            out.append((f"{path}.valid_days", "must be a positive whole number"))
    elif kind == "challenges":
        _challenge(item, path, context, out)
    elif kind == "surveys":
        if not isinstance(item.get("questions"), list) or not item["questions"]:
            out.append((f"{path}.questions", "must list at least one question"))
        else:
            for index, question in enumerate(item["questions"]):
                if not isinstance(question, Mapping):
                    out.append((f"{path}.questions[{index}]",
                                "a question is a mapping with code, kind and text"))
                elif question.get("kind") not in surveys.KINDS:
                    out.append((f"{path}.questions[{index}].kind",
                                f"must be one of {', '.join(surveys.KINDS)}"))
        if item.get("reward") is not None:
            _reward(item["reward"], f"{path}.reward", context["units"], out)
        if item.get("audience") is not None and item["audience"] not in surveys.AUDIENCES:
            out.append((f"{path}.audience", f"must be one of {', '.join(surveys.AUDIENCES)}"))
    elif kind in ("reward_menus", "super_tickets"):
        _rewards_item(kind, item, path, out)
    elif kind == "member_events":
        if item.get("capacity") is not None and not _positive(item["capacity"], True):
            out.append((f"{path}.capacity", "must be a whole number, zero or more"))
        if item.get("invitation_only") is not None and \
                not isinstance(item["invitation_only"], bool):
            out.append((f"{path}.invitation_only", "must be true or false"))
        if item.get("attendance") is not None:
            _reward(item["attendance"], f"{path}.attendance", context["units"], out)


def _rewards_item(kind: str, item: Mapping[str, Any], path: str,
                  out: list[tuple[str, str]]) -> None:
    """Menus and super tickets: they name catalogue rewards by code."""
    if kind == "reward_menus":
        rewards_ = item.get("rewards")
        if rewards_ is not None and (not isinstance(rewards_, list) or not rewards_ or not all(
                isinstance(r, str) and r for r in rewards_)):
            out.append((f"{path}.rewards", "must list at least one reward code"))
        if item.get("period", "month") not in PERIODS:
            out.append((f"{path}.period", f"must be one of {', '.join(PERIODS)}"))
        if item.get("picks") is not None and not _positive(item["picks"]):
            out.append((f"{path}.picks", "must be a positive whole number"))
        if item.get("bonus") is not None and not isinstance(item["bonus"], bool):
            out.append((f"{path}.bonus", "must be true or false"))
        return
    if item.get("reward") is not None and not isinstance(item["reward"], str):
        out.append((f"{path}.reward", "must be a reward code"))
    if item.get("mode") is not None and item["mode"] not in tickets.MODES:
        out.append((f"{path}.mode", f"must be one of {', '.join(tickets.MODES)}"))
    if item.get("winners") is not None and not _positive(item["winners"]):
        out.append((f"{path}.winners", "must be a positive whole number"))
    for key in ("opens_at", "closes_at"):
        if item.get(key) is not None and _when(item[key]) is None:
            out.append((f"{path}.{key}", "must be a date-time with a time zone offset"))
    opens, closes = _when(item.get("opens_at")), _when(item.get("closes_at"))
    if opens is not None and closes is not None and opens >= closes:
        out.append((f"{path}.closes_at", "must be after opens_at"))


def _challenge(item: Mapping[str, Any], path: str, context: Mapping[str, set[str]],
               out: list[tuple[str, str]]) -> None:
    trigger = item.get("trigger")
    if trigger is not None and not (trigger in ("purchase", "activity") or (
            isinstance(trigger, str) and trigger.startswith("activity:"))):
        out.append((f"{path}.trigger", "must be purchase, activity or activity:<type>"))
    if item.get("metric", "count") not in METRICS:
        out.append((f"{path}.metric", f"must be one of {', '.join(METRICS)}"))
    if item.get("period", "all") not in PERIODS:
        out.append((f"{path}.period", f"must be one of {', '.join(PERIODS)}"))
    for key in ("target", "streak", "max_completions", "budget"):
        if item.get(key) is not None and not _positive(item[key]):
            out.append((f"{path}.{key}", "must be a positive whole number"))
    if item.get("product_list") is not None and item["product_list"] not in context["lists"]:
        out.append((f"{path}.product_list",
                    f"no product list {item['product_list']!r} in product_lists"))
    effects = item.get("effects")
    if effects is not None and (not isinstance(effects, list) or not effects):
        out.append((f"{path}.effects", "must list at least one effect"))
        return
    for index, effect in enumerate(effects or []):
        where = f"{path}.effects[{index}]"
        if not isinstance(effect, Mapping) or effect.get("type") not in service.EFFECT_TYPES:
            out.append((f"{where}.type", f"must be one of {', '.join(service.EFFECT_TYPES)}"))
            continue
        if effect["type"] == "points" and effect.get("unit") not in context["units"]:
            out.append((f"{where}.unit", f"unknown unit {effect.get('unit')!r}"))
        if effect["type"] == "badge" and effect.get("badge") not in context["badges"]:
            out.append((f"{where}.badge",
                        f"no badge {effect.get('badge')!r} in engagement.badges"))
        if effect["type"] == "coupon" and (not isinstance(effect.get("reward"), str)
                                           or not effect["reward"]):
            out.append((f"{where}.reward",
                        "must name a coupon-kind reward of the catalogue (its code)"))
        if effect["type"] in ("points", "tier_credit") and not _positive(effect.get("amount")):
            out.append((f"{where}.amount", "must be a positive whole number"))


def check_section(section: Any, document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem of a definition's ``engagement`` section, as (path, message)."""
    out: list[tuple[str, str]] = []
    if section is None:
        return out
    if not isinstance(section, Mapping):
        return [("engagement", f"must be a mapping with {', '.join(KINDS)}")]
    units = {str(u.get("code")) for u in document.get("units") or [] if isinstance(u, Mapping)}
    lists = set(document.get("product_lists") or {}) if isinstance(
        document.get("product_lists"), Mapping) else set()
    context: dict[str, set[str]] = {"units": units, "lists": lists}
    for kind in ("badges", "courses"):
        raw = section.get(kind)
        context[kind] = {str(i.get("code")) for i in raw if isinstance(i, Mapping)} \
            if isinstance(raw, list) else set()
    for key in section:
        if key not in KINDS:
            out.append((f"engagement.{key}", f"is not a known engagement list (known: "
                                             f"{', '.join(KINDS)})"))
    for kind in KINDS:
        raw = section.get(kind)
        if raw is None:
            continue
        if not isinstance(raw, list):
            out.append((f"engagement.{kind}", "must be a list"))
            continue
        seen: set[str] = set()
        for index, item in enumerate(raw):
            path = f"engagement.{kind}[{index}]"
            if not isinstance(item, Mapping):
                out.append((path, f"a {_SINGULAR[kind]} is a mapping with a code"))
                continue
            code = item.get("code")
            if isinstance(code, str) and not _CODE.match(code):
                out.append((f"{path}.code", "lower-case letters, digits, '-' and '_' "
                                            "(at most 60)"))
            elif code in seen:
                out.append((f"{path}.code", f"{_SINGULAR[kind]} code {code!r} is used twice"))
            seen.add(str(code))
            _item(kind, item, path, context, out)
    return out


# --- apply -----------------------------------------------------------------------------------

Row = Badge | Course | Certification | Challenge | Survey | MemberEvent | RewardMenu | SuperTicket
MODELS: dict[str, type[Row]] = {
    "badges": Badge, "courses": Course, "certifications": Certification,
    "challenges": Challenge, "surveys": Survey, "member_events": MemberEvent,
    "reward_menus": RewardMenu, "super_tickets": SuperTicket}


def _has_progress(session: Session, tenant_id: str, kind: str, row: Row) -> bool:
    """Whether any member has progress in (or holds) the object."""
    checks: dict[str, Any] = {
        "badges": select(AccountBadge).where(AccountBadge.tenant_id == tenant_id,
                                             AccountBadge.badge_id == row.id),
        "courses": select(CourseCompletion).where(CourseCompletion.tenant_id == tenant_id,
                                                  CourseCompletion.course_id == row.id),
        "certifications": select(AccountCertification).where(
            AccountCertification.tenant_id == tenant_id,
            AccountCertification.certification_id == row.id),
        "challenges": select(ChallengeTotal).where(ChallengeTotal.tenant_id == tenant_id,
                                                   ChallengeTotal.challenge_id == row.id),
        "surveys": select(SurveyResponse).where(SurveyResponse.tenant_id == tenant_id,
                                                SurveyResponse.survey_id == row.id),
        "member_events": select(Attendee).where(Attendee.tenant_id == tenant_id,
                                                Attendee.member_event_id == row.id),
        "reward_menus": select(MenuPick).where(MenuPick.tenant_id == tenant_id,
                                               MenuPick.menu_id == row.id),
        "super_tickets": select(TicketEntry).where(TicketEntry.tenant_id == tenant_id,
                                                   TicketEntry.super_ticket_id == row.id),
    }
    if session.scalar(select(exists(checks[kind]))):
        return True
    if kind == "challenges":
        return bool(session.scalar(select(exists(select(ChallengeProgress).where(
            ChallengeProgress.tenant_id == tenant_id,
            ChallengeProgress.challenge_id == row.id)))))
    return False


def _unit_id(session: Session, tenant_id: str, program_id: str, value: Any) -> str | None:
    if not value:
        return None
    return tenants.unit_by_code(session, tenant_id, program_id, str(value["unit"])).id


def _reward_id(session: Session, tenant_id: str, program_id: str, code: str,
               field: str) -> str:
    found = session.scalar(select(rewards.Reward.id).where(
        rewards.Reward.tenant_id == tenant_id, rewards.Reward.program_id == program_id,
        rewards.Reward.code == code))
    if found is None:
        raise InvalidDefinitionItem(f"no reward {code} in this program's catalogue",
                                    field=field)
    return str(found)


def _columns(session: Session, tenant_id: str, program_id: str, kind: str,
             item: Mapping[str, Any]) -> dict[str, Any]:
    """The item as the values of its table's columns (defaults filled in)."""
    if kind == "badges":
        return {"name": item["name"], "levels": list(item.get("levels") or [item["name"]])}
    if kind == "courses":
        return {"name": item["name"], "activity_type": item.get("activity_type",
                                                                  "course_completed"),
                "hours": item.get("hours"), "status": item.get("status", "active")}
    if kind == "certifications":
        return {"name": item["name"], "courses": list(dict.fromkeys(item["courses"])),
                "valid_days": item.get("valid_days"), "badge": item.get("badge")}
    if kind == "challenges":
        return {"name": item["name"], "description": item.get("description", ""),
                "trigger": item["trigger"], "metric": item.get("metric", "count"),
                "target": item["target"], "period": item.get("period", "all"),
                "streak": item.get("streak", 1), "product_list": item.get("product_list"),
                "category": item.get("category"), "starts_at": _when(item.get("starts_at")),
                "ends_at": _when(item.get("ends_at")),
                "max_completions": item.get("max_completions"), "budget": item.get("budget"),
                "status": item.get("status", "active"), "effects": item["effects"]}
    if kind == "surveys":
        reward = item.get("reward") or {}
        return {"name": item["name"], "questions": item["questions"],
                "reward_unit_id": _unit_id(session, tenant_id, program_id, reward),
                "reward_points": int(reward.get("points", 0)),
                "activity_type": item.get("activity_type"),
                "audience": item.get("audience", "all"), "status": item.get("status", "open")}
    if kind == "reward_menus":
        return {"name": item["name"], "period": item.get("period", "month"),
                "picks": item.get("picks", 1), "bonus": bool(item.get("bonus", False)),
                "reward_ids": list(dict.fromkeys(
                    _reward_id(session, tenant_id, program_id, code, f"rewards[{index}]")
                    for index, code in enumerate(item["rewards"]))),
                "status": item.get("status", "active")}
    if kind == "super_tickets":
        return {"name": item["name"], "mode": item["mode"],
                "reward_id": _reward_id(session, tenant_id, program_id, item["reward"],
                                        "reward"),
                "opens_at": _when(item["opens_at"]), "closes_at": _when(item["closes_at"]),
                "winners": item.get("winners")}
    attendance = item.get("attendance") or {}
    return {"name": item["name"], "starts_at": _when(item["starts_at"]),
            "ends_at": _when(item["ends_at"]), "capacity": item.get("capacity"),
            "invitation_only": bool(item.get("invitation_only", False)),
            "attendance_unit_id": _unit_id(session, tenant_id, program_id, attendance),
            "attendance_points": int(attendance.get("points", 0)),
            "status": item.get("status", "open")}


def _create(session: Session, tenant_id: str, program_id: str, kind: str,
            values: dict[str, Any], code: str, actor: str) -> Row:
    creators: dict[str, Callable[..., Row]] = {
        "badges": badges.create_badge, "courses": academy.create_course,
        "certifications": academy.create_certification,
        "surveys": surveys.create_survey, "member_events": member_events.create_event,
        "reward_menus": menus.create_menu, "super_tickets": tickets.create_super_ticket}
    if kind == "challenges":
        return service.create_challenge(session, tenant_id, program_id, code=code,
                                        actor=actor, **values)
    status = values.pop("status", None)
    row = creators[kind](session, tenant_id, program_id, code=code, **values)
    if status is not None and getattr(row, "status", status) != status:
        row.status = status  # type: ignore[union-attr]
    return row


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return old.astimezone(UTC) == new.astimezone(UTC)
    return bool(old == new)


def _locked_column(kind: str, column: str) -> str | None:
    """The document field a column comes from, when members' progress depends on it."""
    field = {"reward_unit_id": "reward", "reward_points": "reward",
             "attendance_unit_id": "attendance", "attendance_points": "attendance",
             "reward_ids": "rewards", "reward_id": "reward"}.get(column, column)
    return field if field in LOCKED[kind] else None


def _update(session: Session, tenant_id: str, kind: str, row: Row, values: dict[str, Any],
            path: str) -> None:
    current = {k: getattr(row, k) for k in values}
    if kind == "challenges":
        current["effects"] = row.effects  # type: ignore[union-attr]
        checked = service._check_effects(session, tenant_id, row.program_id, values["effects"])
        values = {**values, "effects": checked}
    changed = {k: v for k, v in values.items() if not _same(current[k], v)}
    if not changed:
        return
    if kind == "challenges" and "budget" in changed:
        raise InvalidDefinitionItem(f"the budget of challenge {row.code} was funded when it "
                                    "was created and cannot change", field=f"{path}.budget")
    locked = sorted({f for k in changed if (f := _locked_column(kind, k)) is not None})
    if locked and _has_progress(session, tenant_id, kind, row):
        raise InvalidDefinitionItem(
            f"members have progress in {_SINGULAR[kind]} {row.code}: {locked[0]} cannot "
            "change (retire it and add one with a new code)", field=f"{path}.{locked[0]}")
    if kind == "badges" and len(values["levels"]) < len(current["levels"]):
        held = session.scalars(select(AccountBadge.level).where(
            AccountBadge.tenant_id == tenant_id, AccountBadge.badge_id == row.id)).all()
        if held and max(held) > len(values["levels"]):
            raise InvalidDefinitionItem(f"members hold level {max(held)} of badge {row.code}",
                                        field=f"{path}.levels")
    if kind == "challenges":
        service.update_challenge(session, tenant_id, row.id,
                                 {k: v for k, v in changed.items()
                                  if k in service.UPDATABLE})
        if any(k in LOCKED["challenges"] for k in changed):  # nobody has progress yet
            values_all = {c.name: getattr(row, c.name) for c in Challenge.__table__.columns}
            values_all.update(changed)
            service._check(values_all)
    for key, value in changed.items():
        setattr(row, key, value)
    session.flush()


def _retire(session: Session, tenant_id: str, kind: str, row: Row, code: str) -> None:
    """Take an object out of the definition: delete it while nobody has progress in it,
    otherwise deactivate it (or refuse, when it has no status)."""
    progress = _has_progress(session, tenant_id, kind, row)
    if kind == "challenges" or (progress and (kind in STATUSES or kind == "super_tickets")):
        retired = {"courses": "retired", "challenges": "retired", "surveys": "closed",
                   "member_events": "cancelled", "reward_menus": "retired",
                   "super_tickets": "cancelled"}[kind]
        if getattr(row, "status", None) != "drawn":  # a drawn super ticket is over
            row.status = retired  # type: ignore[union-attr]
        session.flush()
        return
    if progress:
        raise InvalidDefinitionItem(
            f"members hold {_SINGULAR[kind]} {code}: it cannot be removed from the definition",
            field=f"engagement.{kind}[code={code}]")
    model = MODELS[kind]
    session.execute(delete(model).where(model.tenant_id == tenant_id, model.id == row.id))
    session.flush()


def apply_section(session: Session, tenant_id: str, program_id: str,
                  section: Mapping[str, Any] | None, previous: Mapping[str, Any] | None, *,
                  actor: str) -> None:
    """Create or update the section's objects by code; retire those the previous version
    listed and this one does not. Errors name the item's path."""
    section, previous = section or {}, previous or {}
    for kind in KINDS:
        model = MODELS[kind]
        rows: list[Row] = list(session.scalars(select(model).where(
            model.tenant_id == tenant_id, model.program_id == program_id)))
        existing = {row.code: row for row in rows}
        items = section.get(kind) or []
        for index, item in enumerate(items):
            path = f"engagement.{kind}[{index}]"
            try:
                values = _columns(session, tenant_id, program_id, kind, item)
                row = existing.get(str(item["code"]))
                if row is None:
                    _create(session, tenant_id, program_id, kind, values, str(item["code"]),
                            actor)
                else:
                    _update(session, tenant_id, kind, row, values, path)
            except AllegianceError as exc:
                if exc.field and not exc.field.startswith("engagement."):
                    exc.field = f"{path}.{exc.field}"
                elif not exc.field:
                    exc.field = path
                raise
        listed = {str(i["code"]) for i in items}
        for code in [str(i.get("code")) for i in previous.get(kind) or []]:
            if code not in listed and code in existing:
                _retire(session, tenant_id, kind, existing[code], code)
