"""Rule-based segments: a condition over member fields evaluated set-based (one Polars filter
over every active member of the program), membership stored, entering and leaving announced
as ``segment.entered`` / ``segment.left`` events, and the codes a member is in read by the
earning path as ``member.segments``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import (
    String,
    cast,
    column,
    delete,
    func,
    select,
    table,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allegiance import definitions, members, rules, tenants
from allegiance.campaigns import domain, inputs, rfm
from allegiance.campaigns.errors import DuplicateCode, InvalidSegment, SegmentNotFound
from allegiance.campaigns.memberships import (
    ERASED,
    Accounts,
    as_list,
    changes_of,
    erased_among,
    hand_over,
    stored_members,
    write,
)
from allegiance.campaigns.models import Segment, SegmentMember
from allegiance.kit import clock, outbox
from allegiance.kit.db import add_unique, is_unique_violation
from allegiance.kit.frames import read_frame
from allegiance.kit.ids import new_id
from allegiance.kit.writer import background_writes

# The running counters the earning path keeps (read here by name, without importing events,
# which imports this feature).
_COUNTERS = table("member_counter", column("tenant_id"), column("program_id"),
                  column("account_id"), column("name"), column("value"))
_DTYPES: Mapping[str, Any] = {"int": pl.Int64, "float": pl.Float64, "str": pl.Utf8,
                              "bool": pl.Boolean, "list": pl.List(pl.Utf8)}
ANNOUNCE_MAX = 1000  # a refresh announces at most this many accounts one by one


def _program_types(session: Session, tenant_id: str,
                   program_id: str) -> tuple[dict[str, str], Mapping[str, frozenset[str]]]:
    version = definitions.version_at(session, tenant_id, program_id, clock.now())
    if version is None:
        return dict(domain.BASE_MEMBER_FIELDS), {}
    return domain.segment_fields(version.compiled.types), version.compiled.lists


def compile_condition(session: Session, tenant_id: str, program_id: str,
                      condition: str) -> rules.Node:
    types, lists = _program_types(session, tenant_id, program_id)
    try:
        node = rules.compile_expression(condition, types, lists)
    except rules.ExpressionError as exc:
        raise InvalidSegment(str(exc), field="condition") from exc
    return node


def create_segment(session: Session, tenant_id: str, program_id: str, *, code: str,
                   name: str, condition: str) -> Segment:
    tenants.get_program(session, tenant_id, program_id)
    compile_condition(session, tenant_id, program_id, condition)
    now = clock.now()
    row = Segment(tenant_id=tenant_id, id=new_id("seg"), program_id=program_id, code=code,
                  name=name, condition=condition, members=0, refreshed_at=None,
                  created_at=now, updated_at=now)
    add_unique(session, row, DuplicateCode(f"segment {code} exists in this program", field="code"))
    return row


def get_segment(session: Session, tenant_id: str, segment_id: str) -> Segment:
    row = session.get(Segment, (tenant_id, segment_id))
    if row is None:
        raise SegmentNotFound(f"segment {segment_id} not found", field="segment_id")
    return row


def list_segments(session: Session, tenant_id: str, program_id: str) -> list[Segment]:
    tenants.get_program(session, tenant_id, program_id)
    return list(session.scalars(select(Segment).where(
        Segment.tenant_id == tenant_id, Segment.program_id == program_id).order_by(Segment.code)))


def _attribute(name: str, kind: str, extracted: bool = False) -> pl.Expr:
    """A declared attribute read out of the JSON text column, typed (``extracted``: from
    the text the database extracted, :func:`_json_text`)."""
    key = name.removeprefix("member.attributes.")
    if kind == "list":
        return pl.col("_attributes").map_elements(
            lambda text: (json.loads(text) or {}).get(key), return_dtype=pl.List(pl.Utf8))
    found = pl.col(_extracted(name)) if extracted else pl.col("_attributes").str \
        .json_path_match("$['" + key.replace("'", "") + "']")
    if kind == "bool":
        return pl.when(found == "true").then(True).when(found == "false").then(False) \
            .otherwise(None)
    if kind in ("int", "float"):
        return found.cast(_DTYPES[kind], strict=False)
    return found


def member_frame(session: Session, tenant_id: str, program_id: str,
                 types: Mapping[str, str], at: datetime,
                 account_id: str | None = None,
                 scores: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per active member of the program (or only ``account_id``) with the member
    fields in ``types``, built column by column (no per-member Python)."""
    only = [] if account_id is None else [members.Enrolment.account_id == account_id]
    wanted = set(types)
    columns: list[Any] = [members.Enrolment.account_id]
    if "member.tier" in wanted:
        columns.append(members.Enrolment.tier.label("_tier"))
    if wanted & {"member.region", "member.country"}:
        columns.append(members.Account.region.label("_region"))
    if "member.enrolled_days" in wanted:
        columns.append(members.Enrolment.created_at.label("_enrolled"))
    if any(n.startswith("member.attributes.") for n in wanted):
        columns.append(cast(members.Account.attributes, String).label("_attributes"))
    rfm_wanted = domain.uses_rfm(wanted)
    if account_id is None and "member.enrolled_days" not in wanted:
        raw = _scanned_members(session, tenant_id, program_id, types, rfm_wanted, scores)
        return _typed_frame(session, tenant_id, program_id, raw, types, at, account_id)
    query = select(*columns).join(members.Account, (
        members.Account.tenant_id == members.Enrolment.tenant_id)
        & (members.Account.id == members.Enrolment.account_id))
    result = session.execute(query.where(
        members.Enrolment.tenant_id == tenant_id, members.Enrolment.program_id == program_id,
        members.Enrolment.status == "active", members.Account.status != ERASED, *only))
    raw_types: Mapping[str, Any] = {"account_id": pl.Utf8, "_tier": pl.Utf8, "_region": pl.Utf8,
                 "_enrolled": pl.Datetime("us", "UTC"), "_attributes": pl.Utf8}
    names = list(result.keys())
    raw = pl.DataFrame(result.all(), schema={n: raw_types[n] for n in names}, orient="row")
    if rfm_wanted:
        if account_id is not None:  # one account: scored against the last breakpoints
            one = rfm.score_of(session, tenant_id, program_id, account_id)
            scores = pl.DataFrame([] if one is None else [
                (one.account_id, one.recency, one.frequency, one.monetary)], orient="row",
                schema=_SCORES)
        raw = raw.join(_score_columns(session, tenant_id, program_id, scores),
                       on="account_id", how="left")
    return _typed_frame(session, tenant_id, program_id, raw, types, at, account_id)


_SCORES: Mapping[str, Any] = {"account_id": pl.Utf8, "recency": pl.Int64,
                              "frequency": pl.Int64, "monetary": pl.Int64}


def _score_columns(session: Session, tenant_id: str, program_id: str,
                   scores: pl.DataFrame | None) -> pl.DataFrame:
    """(account_id, _r, _f, _m) from the scores handed over, else ranked now (no model: none)."""
    if scores is None:
        model = rfm.get_model(session, tenant_id, program_id)
        scores = pl.DataFrame(schema=_SCORES) if model is None else rfm.current_scores(
            session, tenant_id, program_id, model)
    return scores.select("account_id", pl.col("recency").alias("_r"),
                         pl.col("frequency").alias("_f"), pl.col("monetary").alias("_m"))


def _extracted(name: str) -> str:
    return "_x:" + name


def _json_text(dialect: str, key: str) -> str:
    """SQL for the JSON text of the attribute ``key`` (``"distributor"``, ``485``, ``true``;
    NULL when absent): one lookup by the engine's own JSON functions, far cheaper than
    Polars' per-row JSON path match, and only the values travel, not the whole document.
    :func:`_unquoted` turns it into what :func:`_attribute` reads."""
    key = key.replace("'", "").replace('"', "")
    if dialect == "postgresql":
        return f"CAST(attributes -> '{key}' AS TEXT)"
    return f"attributes -> '$.\"{key}\"'"


_PLAIN_INTEGER = r"^(0|-?[1-9][0-9]{0,17})$"


def _unquoted(column: str, kind: str) -> pl.Expr:
    """The JSON text of an attribute as Polars' JSON path match gives it: a string's value
    unquoted, a number or a boolean as it is, NULL for null. ``''`` (read again from the
    document by :func:`_exact_nested`) where the engines' texts may differ from Polars':
    a string with an escape, an object, an array, and — for a text attribute — a number
    other than a plain integer (for a numeric attribute only its value matters)."""
    text = pl.col(column)
    quoted = text.str.starts_with('"')
    odd = (quoted & text.str.contains("\\", literal=True)) | text.str.starts_with("{") \
        | text.str.starts_with("[")
    if kind == "str":
        odd = odd | ~(quoted | text.is_in(["true", "false", "null"])
                      | text.str.contains(_PLAIN_INTEGER))
    return pl.when(text.is_null() | (text == "null")).then(None).when(odd).then(pl.lit("")) \
        .when(quoted).then(text.str.strip_prefix('"').str.strip_suffix('"')).otherwise(text) \
        .alias(column)


_REREAD_ALL = 20_000  # past this many accounts to re-read, the whole column is read again


def _exact_nested(session: Session, tenant_id: str, accounts: pl.DataFrame,
                  extracted: Mapping[str, str]) -> pl.DataFrame:
    """The rows of ``accounts`` whose extracted attributes hold ``''`` (see :func:`_unquoted`;
    or an empty string) with those attributes matched by Polars on the JSON text instead,
    as :func:`_attribute` does for one account (the same text on every engine)."""
    odd = accounts.filter(pl.any_horizontal(pl.col(c) == "" for c in extracted))
    if not odd.height:
        return accounts
    sql = "SELECT id, CAST(attributes AS TEXT) FROM account WHERE tenant_id = :t"
    schema = {"account_id": pl.Utf8, "_attributes": pl.Utf8}
    ids = odd["account_id"].to_list()
    if len(ids) > _REREAD_ALL:
        texts = read_frame(session, sql, {"t": tenant_id}, schema)
    else:
        texts = pl.concat([read_frame(session, sql + " AND id IN (" + ", ".join(
            f":a{i}" for i in range(len(part))) + ")",
            {"t": tenant_id, **{f"a{i}": a for i, a in enumerate(part)}}, schema)
            for part in (ids[i:i + 500] for i in range(0, len(ids), 500))])
    fixed = odd.select("account_id").join(texts, on="account_id", how="inner").select(
        "account_id", *(pl.col("_attributes").str.json_path_match(
            "$['" + key.replace("'", "") + "']").alias(c) for c, key in extracted.items()))
    return accounts.update(fixed, on="account_id", include_nulls=True)


def _scanned_members(session: Session, tenant_id: str, program_id: str,
                     wanted: Mapping[str, str], rfm_wanted: bool,
                     scores: pl.DataFrame | None) -> pl.DataFrame:
    """The raw columns of every active member, read as three plain scans (enrolments,
    accounts, scores — or the scores just computed) joined in Polars — far cheaper than a
    join per row in the database."""
    params = {"t": tenant_id, "p": program_id}
    dialect = session.get_bind().dialect.name
    raw = read_frame(session, "SELECT account_id, tier FROM enrolment WHERE tenant_id = :t "
                              "AND program_id = :p AND status = 'active'", params,
                     {"account_id": pl.Utf8, "_tier": pl.Utf8})
    if "member.tier" not in wanted:
        raw = raw.drop("_tier")
    account_columns = {"account_id": pl.Utf8}
    sql = ["id"]
    if wanted.keys() & {"member.region", "member.country"}:
        account_columns["_region"] = pl.Utf8
        sql.append("region")
    extracted: dict[str, str] = {}
    for name, kind in sorted(wanted.items()):
        if not name.startswith("member.attributes."):
            continue
        if kind == "list":  # parsed in Polars (from the JSON text)
            if "_attributes" not in account_columns:
                account_columns["_attributes"] = pl.Utf8
                sql.append("CAST(attributes AS TEXT)")
            continue
        key = name.removeprefix("member.attributes.")
        extracted[_extracted(name)] = key  # the rest extracted by the database
        account_columns[_extracted(name)] = pl.Utf8
        sql.append(_json_text(dialect, key))
    if len(sql) > 1:  # erased accounts are in no segment (see leave_all_segments)
        accounts = read_frame(session, f"SELECT {', '.join(sql)} FROM account WHERE "
                                       f"tenant_id = :t AND status <> '{ERASED}'", params,
                              account_columns)
        if extracted:
            accounts = _exact_nested(session, tenant_id, accounts.with_columns(
                _unquoted(c, wanted[f"member.attributes.{key}"])
                for c, key in extracted.items()), extracted)
        raw = raw.join(accounts, on="account_id", how="inner")
    else:  # only the erased ones read (few): their enrolments stay active
        raw = raw.join(read_frame(session, "SELECT id FROM account WHERE tenant_id = :t AND "
                                           f"status = '{ERASED}'", params,
                                  {"account_id": pl.Utf8}), on="account_id", how="anti")
    if rfm_wanted:
        raw = raw.join(_score_columns(session, tenant_id, program_id, scores),
                       on="account_id", how="left")
    return raw


def _typed_frame(session: Session, tenant_id: str, program_id: str, raw: pl.DataFrame,
                 types: Mapping[str, str], at: datetime,
                 account_id: str | None) -> pl.DataFrame:
    """The member fields in ``types`` computed column by column from the raw columns."""
    exprs: list[pl.Expr] = [pl.col("account_id").cast(pl.Utf8)]
    for name, kind in types.items():
        if name == "member.tier":
            expr = pl.col("_tier")
        elif name == "member.region":
            expr = pl.col("_region")
        elif name == "member.country":
            expr = pl.col("_region").str.split("-").list.first()
        elif name == "member.enrolled_days":
            expr = (pl.lit(at) - pl.col("_enrolled")).dt.total_days().clip(lower_bound=0)
        elif name.startswith("member.attributes."):
            expr = _attribute(name, kind, _extracted(name) in raw.columns)
        elif name in domain.RFM_FIELDS:
            expr = _rfm_field(name)
        elif name.startswith("member.counters."):
            continue  # joined below
        else:
            expr = pl.lit(None)
        exprs.append(expr.cast(_DTYPES[kind], strict=False).alias(name))
    frame = raw.select(exprs) if raw.height else pl.DataFrame(
        schema={"account_id": pl.Utf8, **{n: _DTYPES[k] for n, k in types.items()
                                          if not n.startswith("member.counters.")}})
    counters = [n for n in types if n.startswith("member.counters.")]
    if counters:
        found = session.execute(select(_COUNTERS.c.account_id, _COUNTERS.c.name,
                                       _COUNTERS.c.value).where(
            _COUNTERS.c.tenant_id == tenant_id, _COUNTERS.c.program_id == program_id,
            _COUNTERS.c.name.in_([n.removeprefix("member.counters.") for n in counters]),
            *([] if account_id is None else [_COUNTERS.c.account_id == account_id]))).all()
        values = pl.DataFrame(found, schema={"account_id": pl.Utf8, "name": pl.Utf8,
                                             "value": pl.Int64}, orient="row")
        for name in counters:
            one = values.filter(pl.col("name") == name.removeprefix("member.counters.")) \
                .select("account_id", pl.col("value").alias(name))
            frame = frame.join(one, on="account_id", how="left").with_columns(
                pl.col(name).fill_null(0))
    return frame  # in no particular order (what _apply writes it sorts itself)


def _rfm_field(name: str) -> pl.Expr:
    """An RFM field from the score columns ``_r``, ``_f``, ``_m`` (0 without a score)."""
    r, f, m = (pl.col(c).fill_null(0).cast(pl.Int64) for c in ("_r", "_f", "_m"))
    picked = {"member.rfm.recency": r, "member.rfm.frequency": f, "member.rfm.monetary": m}
    return picked[name] if name in picked else pl.concat_str(
        [r.cast(pl.Utf8), f.cast(pl.Utf8), m.cast(pl.Utf8)])


def refresh_segment(session: Session, tenant_id: str, segment_id: str) -> tuple[int, int]:
    """Re-evaluate a segment over every active member at once; returns (entered, left)."""
    segment = get_segment(session, tenant_id, segment_id)
    node = compile_condition(session, tenant_id, segment.program_id, segment.condition)
    types, _ = _program_types(session, tenant_id, segment.program_id)
    used = {name: kind for name, kind in types.items() if name in node.fields()}
    scores = rfm.refresh_scores(session, tenant_id, segment.program_id)[1] \
        if domain.uses_rfm(used) else None
    now = clock.now()
    frame = member_frame(session, tenant_id, segment.program_id, used, now, scores=scores)
    return _apply(session, tenant_id, segment, frame, node, now)


def _apply(session: Session, tenant_id: str, segment: Segment, frame: pl.DataFrame,
           node: rules.Node, now: datetime) -> tuple[int, int]:
    """Store the members of ``segment`` among ``frame`` (the difference with those stored
    is written and announced)."""
    before = read_frame(session, "SELECT account_id FROM segment_member WHERE tenant_id = :t "
                                 "AND segment_id = :s", {"t": tenant_id, "s": segment.id},
                        {"account_id": pl.Utf8})
    inside, entered, left = changes_of(frame, node, before)
    write(session.connection(), tenant_id, segment.id, entered, left, now)
    return _record(session, tenant_id, segment, inside, entered, left, now)


def _record(session: Session, tenant_id: str, segment: Segment, members: int,
            entered: Accounts, left: Accounts, now: datetime) -> tuple[int, int]:
    """The segment's count and refresh time, and its changes announced and triggered."""
    segment.members = members
    segment.refreshed_at = segment.updated_at = now
    session.flush()
    _announce(session, tenant_id, segment, "segment.entered", entered)
    _announce(session, tenant_id, segment, "segment.left", left)
    _trigger(session, tenant_id, segment, "segment.entered", entered, now)
    _trigger(session, tenant_id, segment, "segment.left", left, now)
    return len(entered), len(left)


def _announce(session: Session, tenant_id: str, segment: Segment, kind: str,
              accounts: Accounts) -> None:
    if not len(accounts):
        return
    if len(accounts) > ANNOUNCE_MAX:
        outbox.emit(session, tenant_id, kind, {
            "program_id": segment.program_id, "segment": segment.code,
            "accounts": len(accounts), "truncated": True})
        return
    outbox.emit_many(session, tenant_id, kind, [{  # one statement, not one per account
        "program_id": segment.program_id, "segment": segment.code, "account_id": account_id}
        for account_id in as_list(accounts)])


SEGMENT_ACTIVITIES = {"segment.entered": "segment_entered", "segment.left": "segment_left"}
_triggering: ContextVar[bool] = ContextVar("segment_triggering", default=False)


def _trigger(session: Session, tenant_id: str, segment: Segment, kind: str,
             accounts: Accounts, at: datetime) -> None:
    """Entering or leaving a segment is an activity (``segment_entered`` /
    ``segment_left``, attribute ``segment``: the code) through the earning path, when the
    program's definition declares that activity type, so rules can trigger on it. Changes
    caused by such an activity are announced but trigger nothing more (no loops)."""
    activity = SEGMENT_ACTIVITIES[kind]
    version = definitions.version_at(session, tenant_id, segment.program_id, at)
    if not len(accounts) or version is None or _triggering.get():
        return
    schema = version.compiled.activity_types.get(activity)
    if schema is None:
        return
    listed = as_list(accounts)
    erased = erased_among(session, tenant_id, listed)  # they earn nothing
    listed = [a for a in listed if a not in erased]
    from allegiance import events  # at run time: the earning path imports this module

    token = _triggering.set(True)
    try:
        for account_id in listed:
            events.ingest(session, tenant_id, segment.program_id, events.EventData(
                kind="activity", activity_type=activity, account_id=account_id,
                source="segments", occurred_at=at,
                external_id=f"{activity}:{segment.code}:{account_id}:{at.isoformat()}",
                attributes={"segment": segment.code} if "segment" in schema else {}),
                actor="segments")
    finally:
        _triggering.reset(token)


def leave_all_segments(session: Session, tenant_id: str, account_id: str) -> list[str]:
    """Take an account out of every segment of the tenant now, in the caller's transaction
    (a GDPR erasure, ``privacy.erase_member``); returns the codes it left. Each is announced
    (``segment.left``: ids and the code, nothing personal) but records no ``segment_left``
    activity: an erased member earns nothing. Refreshes never put an erased account back
    (:func:`member_frame` leaves them out), though its enrolments and purchases stay."""
    segments = list(session.scalars(select(Segment).where(
        Segment.tenant_id == tenant_id).order_by(Segment.id)))
    held = set(session.scalars(select(SegmentMember.segment_id).where(  # a key probe each
        SegmentMember.tenant_id == tenant_id,
        SegmentMember.segment_id.in_([g.id for g in segments]),
        SegmentMember.account_id == account_id))) if segments else set()
    left: list[str] = []
    for segment in segments:
        if segment.id not in held:
            continue
        session.execute(delete(SegmentMember).where(
            SegmentMember.tenant_id == tenant_id, SegmentMember.segment_id == segment.id,
            SegmentMember.account_id == account_id))
        _count(session, segment, -1)
        _announce(session, tenant_id, segment, "segment.left", [account_id])
        left.append(segment.code)
        inputs.inputs_changed(session, tenant_id, segment.program_id)
    session.flush()
    return sorted(left)


def _count(session: Session, segment: Segment, delta: int) -> None:
    """Move the cached member count atomically (concurrent events may both change it)."""
    session.execute(update(Segment).where(
        Segment.tenant_id == segment.tenant_id, Segment.id == segment.id
    ).values(members=func.greatest(Segment.members + delta, 0)
             if session.get_bind().dialect.name == "postgresql"
             else func.max(Segment.members + delta, 0)).execution_options(
        synchronize_session=False))
    session.expire(segment, ["members"])


def refresh_account(session: Session, tenant_id: str, program_id: str,
                    account_id: str) -> tuple[list[str], list[str]]:
    """Re-evaluate the program's segments for one account (after a change to it, e.g. an
    event that moved its counters); returns (entered, left) segment codes."""
    segments = list_segments(session, tenant_id, program_id)
    if not segments:
        return [], []
    types, lists = _program_types(session, tenant_id, program_id)
    now = clock.now()
    frame = member_frame(session, tenant_id, program_id, types, now, account_id)
    held = set(session.scalars(select(SegmentMember.segment_id).where(  # a key probe each
        SegmentMember.tenant_id == tenant_id,
        SegmentMember.segment_id.in_([g.id for g in segments]),
        SegmentMember.account_id == account_id)))
    changes: list[tuple[Segment, str]] = []
    for segment in segments:
        try:
            node = rules.compile_expression(segment.condition, types, lists)
        except rules.ExpressionError:
            continue  # no longer fits the definition in force: the refresh job reports it
        inside = bool(frame.height) and frame.filter(rules.to_polars(node)).height > 0
        if inside and segment.id not in held:
            try:
                with session.begin_nested():
                    session.add(SegmentMember(tenant_id=tenant_id, segment_id=segment.id,
                                              account_id=account_id, since=now))
                    session.flush()
            except IntegrityError as exc:  # entered concurrently
                if not is_unique_violation(exc):
                    raise
                continue
            changes.append((segment, "segment.entered"))
        elif not inside and segment.id in held:
            gone = session.execute(delete(SegmentMember).where(
                SegmentMember.tenant_id == tenant_id, SegmentMember.segment_id == segment.id,
                SegmentMember.account_id == account_id))
            if gone.rowcount:  # type: ignore[attr-defined]  # (else it left concurrently)
                changes.append((segment, "segment.left"))
    for segment, kind in changes:
        _count(session, segment, +1 if kind == "segment.entered" else -1)
        _announce(session, tenant_id, segment, kind, [account_id])
    # Activities last: their earning path refreshes this account, which must find nothing new.
    for segment, kind in changes:
        _trigger(session, tenant_id, segment, kind, [account_id], now)
    entered = [g.code for g, kind in changes if kind == "segment.entered"]
    left = [g.code for g, kind in changes if kind == "segment.left"]
    if entered or left:  # memberships written outside a full refresh: the next one is full
        inputs.inputs_changed(session, tenant_id, program_id)
    session.flush()
    return entered, left


def refresh_program(session: Session, tenant_id: str, program_id: str) -> dict[str, int]:
    """Refresh the program's RFM scores (when it has an RFM model or a segment reads them),
    then every segment from one frame of the members holding every field they read.

    Everything is read first (RFM inputs, then the members while a second thread ranks the
    scores in Polars, then each segment's stored memberships); then the writes of the segments that read
    no RFM score go to a writer thread (:mod:`allegiance.kit.writer`, the database's insert
    work overlapping Python's) while this one joins the scores and evaluates the RFM
    segments, whose writes follow. One transaction: a failure anywhere rolls every write
    back, and no write runs on after it. No input changed since the last full one
    (:mod:`.inputs`): nothing is read or written but the times."""
    totals = {"segments": 0, "entered": 0, "left": 0}
    types, lists = _program_types(session, tenant_id, program_id)
    nodes: list[tuple[Segment, rules.Node]] = []
    for segment in list_segments(session, tenant_id, program_id):
        try:
            nodes.append((segment, rules.compile_expression(segment.condition, types, lists)))
        except rules.ExpressionError as exc:
            raise InvalidSegment(f"segment {segment.code}: {exc}", field="condition") from exc
    used = {name: kind for name, kind in types.items()
            if any(name in node.fields() for _, node in nodes)}
    now = clock.now()
    model, print_, same = inputs.begin(session, tenant_id, program_id, nodes, used, now)
    if same:
        return inputs.stand(session, [g for g, _ in nodes], model, now)
    read = rfm.read_inputs(session, tenant_id, program_id) \
        if domain.uses_rfm(used) or model is not None else None
    changes: list[tuple[Segment, int, Accounts, Accounts]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="allegiance-rank") as pool:
        # the scores ranked by a second thread (Polars only) while this one reads the members
        ranking = None if read is None else pool.submit(
            rfm.rank, read[1], read[2], read[0].window_days)
        if nodes:
            _refresh_segments(session, tenant_id, program_id, nodes, used, ranking, now,
                              changes)
        if read is not None and ranking is not None:
            rfm.keep(read[0], ranking.result(), now)
    for segment, count, entered, left in changes:
        _record(session, tenant_id, segment, count, entered, left, now)
        totals["segments"] += 1
        totals["entered"] += len(entered)
        totals["left"] += len(left)
    inputs.remember(session, tenant_id, program_id, print_, now)
    return totals


def _refresh_segments(session: Session, tenant_id: str, program_id: str,
                      nodes: list[tuple[Segment, rules.Node]], used: Mapping[str, str],
                      ranking: Future[rfm.Ranked] | None, now: datetime,
                      changes: list[tuple[Segment, int, Accounts, Accounts]]) -> None:
    """Read the members and the stored memberships, then hand each segment's writes to a
    second thread: first the segments reading no RFM score (written while the scores are
    joined), then the others."""
    frame = member_frame(session, tenant_id, program_id,
                         {n: k for n, k in used.items() if n not in domain.RFM_FIELDS}, now)
    stored = stored_members(session, tenant_id, [segment.id for segment, _ in nodes])
    # in key order (segment id): a first refresh then appends each segment's members at the
    # right end of its range of the key's index (pages split 90/10 instead of half-empty)
    plain = sorted(((g, n) for g, n in nodes if not domain.uses_rfm(n.fields())),
                   key=lambda pair: pair[0].id)
    scored = sorted(((g, n) for g, n in nodes if domain.uses_rfm(n.fields())),
                    key=lambda pair: pair[0].id)
    connection = session.connection()
    with background_writes() as writer:
        hand_over(writer, connection, tenant_id, frame, plain, stored, now, changes)
        if scored and ranking is not None:
            rfm_types = {n: k for n, k in used.items() if n in domain.RFM_FIELDS}
            # one join of the score columns, the fields computed from them in place
            frame = frame.join(
                _score_columns(session, tenant_id, program_id, ranking.result().scored),
                on="account_id", how="left").with_columns(
                    _rfm_field(n).cast(_DTYPES[k]).alias(n) for n, k in rfm_types.items()) \
                .drop("_r", "_f", "_m")
        hand_over(writer, connection, tenant_id, frame, scored, stored, now, changes)


def members_of(session: Session, tenant_id: str, segment_id: str, *, limit: int = 1000,
               after: str | None = None) -> list[SegmentMember]:
    """Members by account id (up to ``limit + 1``, for pages and exports)."""
    get_segment(session, tenant_id, segment_id)
    query = select(SegmentMember).where(SegmentMember.tenant_id == tenant_id,
                                        SegmentMember.segment_id == segment_id)
    if after:
        query = query.where(SegmentMember.account_id > after)
    return list(session.scalars(query.order_by(SegmentMember.account_id).limit(limit + 1)))
