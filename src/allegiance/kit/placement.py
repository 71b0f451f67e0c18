"""Where in a transaction a statement goes, for the hot API writes on PostgreSQL, where every
round trip counts and a tenant's writes queue on a few rows (its journal number, its audit
sequence) from the statement that locks them to COMMIT:

* :func:`read_with_begin`: the transaction's first read goes out with ``BEGIN`` and the tenant
  setting (one round trip for the three);
* :func:`last_write`: the writes that take such a lock wait for the end of the unit of work,
  which sends them with its own last statements (``kit.web.Ctx``: the idempotency record and
  the audit chain, one pipeline) just before COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from allegiance.kit.db import BEGIN_READ, driver_connection

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

# A last write sends its statements and returns None, or the function that reads their
# answers (and raises what they refused) once the pipeline's next read brought them.
LastWrite = Callable[[], "Callable[[], None] | None"]


def collect_last_writes(session: Session) -> None:
    """The unit of work will run the writes given to :func:`last_write` itself, as late as it
    can (``kit.web.Ctx`` does: with its idempotency record and audit chain, in one
    PostgreSQL pipeline, just before COMMIT)."""
    session.info[_LAST_WRITES] = []


def last_write(session: Session, write: LastWrite) -> None:
    """Run ``write`` — writes that take a lock every write of the tenant queues on (a ledger
    posting locks the tenant's journal number) — at the end of the unit of work when it
    collects such writes (:func:`collect_last_writes`), so those locks are held only from
    then to COMMIT; at once otherwise, and inside a savepoint (whose rollback must take the
    writes with it). Its errors (overdrawn …) then come from the end of the unit of work,
    which rolls back."""
    pending: list[LastWrite] | None = session.info.get(_LAST_WRITES)
    if pending is None or session.in_nested_transaction():
        check = write()
        if check is not None:
            check()
        return
    pending.append(write)


def send_last_writes(session: Session) -> Callable[[], None]:
    """Send the collected :func:`last_write` writes (in the order given); returns the function
    that checks their answers, to call once a later read brought them (the unit of work
    calls this once, after its other writes)."""
    checks = [check for write in session.info.pop(_LAST_WRITES, None) or ()
              if (check := write()) is not None]

    def check_all() -> None:
        for check in checks:
            check()

    return check_all
