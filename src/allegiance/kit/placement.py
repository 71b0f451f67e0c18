"""Where in a transaction a statement goes, for the hot API writes on PostgreSQL, where every
round trip counts and a tenant's writes queue on a few rows (its journal number, its audit
sequence) from the statement that locks them to COMMIT:

* :func:`read_with_begin`: the transaction's first read goes out with ``BEGIN`` and the tenant
  setting (one round trip for the three);
* :func:`last_write`: the writes that take such a lock wait for the end of the unit of work,
  which sends them with its own last statements (``kit.web.Ctx``: the idempotency record and
  the audit chain, one pipeline) just before COMMIT (:func:`finish_last_writes`);
* a *final* last write refuses inside the database (SQLSTATE :data:`REFUSED`), so that
  COMMIT goes out in the same pipeline, before any answer is read: the locks are then held
  only while the database runs the statements and the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from allegiance.kit.db import BEGIN_READ, OWNS_COMMIT, driver_connection, pipelined

_T = TypeVar("_T")


def read_with_begin(session: Session, read: Callable[[Any], _T]) -> _T:
    """``read(driver_connection)`` — driver statements of the session's transaction, e.g. a
    :meth:`kit.rows.RowByKey.read` — as the transaction's first statement: on PostgreSQL,
    when the session has not begun yet, it goes out in one pipeline with ``BEGIN`` and the
    tenant setting, one round trip for the three. Otherwise (begun already, SQLite) it just
    runs on the session's connection."""
    if session.get_bind().dialect.name == "postgresql":
        answer: list[_T] = []
        session.info[BEGIN_READ] = lambda driver: answer.append(read(driver))
        try:
            session.connection()  # begins (the tenant-setting hook runs ``read``) unless begun
        finally:
            session.info.pop(BEGIN_READ, None)
        if answer:
            return answer[0]
    with driver_connection(session) as conn:
        return read(conn)


# ``session.info`` key of a unit of work's deferred lock-taking writes (see ``last_write``).
_LAST_WRITES = "last_writes"

# The SQLSTATE of a refusal raised in the database by ``allegiance_refuse(reason, detail)``
# (migration 0032): the message is the reason, the detail its detail.
REFUSED = "AL001"

# A last write sends its statements and returns None, or the function that reads their
# answers (and raises what they refused) once the pipeline's next read brought them.
LastWrite = Callable[[], "Callable[[], None] | None"]

# What a final last write's refusal (reason, detail) means: the feature's error, or None
# when the refusal is not this write's.
Refusal = Callable[[str, str], "Exception | None"]


def collect_last_writes(session: Session) -> None:
    """The unit of work will run the writes given to :func:`last_write` itself, as late as it
    can (``kit.web.Ctx`` does: with its idempotency record and audit chain, in one
    PostgreSQL pipeline, just before COMMIT)."""
    session.info[_LAST_WRITES] = []


def last_write(session: Session, write: LastWrite, *, refused: Refusal | None = None) -> None:
    """Run ``write`` — writes that take a lock every write of the tenant queues on (a ledger
    posting locks the tenant's journal number) — at the end of the unit of work when it
    collects such writes (:func:`collect_last_writes`), so those locks are held only from
    then to COMMIT; at once otherwise, and inside a savepoint (whose rollback must take the
    writes with it). Its errors (overdrawn …) then come from the end of the unit of work,
    which rolls back.

    ``refused`` makes the write *final*: on PostgreSQL every refusal of its statements is
    raised in the database (SQLSTATE :data:`REFUSED`, see ``allegiance_refuse``), which
    aborts the transaction, and ``refused(reason, detail)`` gives the feature's error for
    it; its check only reads answers, never writes or raises. When every collected write
    is final, the unit of work sends its COMMIT in the same pipeline, before reading any
    answer (:meth:`SentWrites.commit_early`)."""
    pending: list[tuple[LastWrite, Refusal | None]] | None = session.info.get(_LAST_WRITES)
    if pending is None or session.in_nested_transaction():
        sent = SentWrites([(write, refused)])
        try:
            sent.send().check()
        except DBAPIError as exc:  # a final write's refusal, raised by the database
            error = sent.refusal(exc)
            if error is None:
                raise
            raise error from exc
        return
    pending.append((write, refused))


class SentWrites:
    """The collected last writes of a unit of work (:func:`finish_last_writes`)."""

    def __init__(self, pending: list[tuple[LastWrite, Refusal | None]]) -> None:
        self._pending = pending
        self._checks: list[Callable[[], None]] = []
        self._refusals = [refused for _, refused in pending if refused is not None]
        self.final = bool(pending) and len(self._refusals) == len(pending)

    def send(self) -> SentWrites:
        """Send the writes, in the order given."""
        self._checks = [check for write, _ in self._pending if (check := write()) is not None]
        return self

    def check(self) -> None:
        """Read the writes' answers (raising what they refused), in the order sent."""
        for check in self._checks:
            check()

    def commit_early(self, session: Session) -> bool:
        """On PostgreSQL, when every write was final and the unit of work owns its
        transaction: send COMMIT now, in the open pipeline, and wait for every answer (one
        round trip). A refusal raised by any statement aborts the transaction first, so the
        COMMIT is not carried out and the error comes out of this call (see :meth:`refusal`).
        The caller must write nothing more; its later ``session.commit()`` finds the
        transaction ended and does nothing. False (nothing sent) otherwise."""
        if not (self.final and session.info.get(OWNS_COMMIT)
                and session.get_bind().dialect.name == "postgresql"
                and not session.in_nested_transaction()):
            return False
        with driver_connection(session) as conn:
            conn.commit()
        return True

    def refusal(self, exc: Exception) -> Exception | None:
        """The feature's error (caused by ``exc``) for a database error carrying a
        :data:`REFUSED` refusal of one of these writes; None for any other error."""
        orig = getattr(exc, "orig", exc)
        if getattr(orig, "sqlstate", None) != REFUSED:
            return None
        diag = getattr(orig, "diag", None)
        reason = str(getattr(diag, "message_primary", "") or "")
        detail = str(getattr(diag, "message_detail", "") or "")
        for refusal in self._refusals:
            found = refusal(reason, detail)
            if found is not None:
                found.__cause__ = exc
                return found
        return None


def finish_last_writes(session: Session, *, first: Callable[[], None] | None = None,
                       more: Callable[[], Callable[[], object]] | None = None) -> None:
    """The end of a unit of work that collected last writes (:func:`collect_last_writes`),
    in one PostgreSQL pipeline: ``first()`` (e.g. an idempotency record), the last writes,
    ``more()`` (e.g. the audit chain; it returns the reader of its answers); when every last
    write is final, COMMIT (:meth:`SentWrites.commit_early`). The answers are read once the
    pipeline ended (a check may then write again: a posting's lots). A final write's refusal
    comes out as the feature's error. Without COMMIT sent here, the caller's unit of work
    commits as usual (a second round trip)."""
    sent = SentWrites(session.info.pop(_LAST_WRITES, None) or [])
    refused: Exception | None = None
    read_more: Callable[[], object] | None = None
    try:
        with pipelined(session):
            try:
                if first is not None:
                    first()
                sent.send()
                read_more = more() if more is not None else None
                sent.commit_early(session)
            except DBAPIError as exc:
                # A refusal read here is kept, and the pipeline ends quietly.
                refused = sent.refusal(exc)
                if refused is None:
                    raise
    except DBAPIError as exc:
        # After a refusal, the pipeline's end reports the statements it skipped.
        refused = refused or sent.refusal(exc)
        if refused is None:
            raise
    if refused is not None:
        raise refused
    # Every answer is in (the pipeline ended): the checks may write again (lots).
    sent.check()
    if read_more is not None:
        read_more()
