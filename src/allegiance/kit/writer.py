"""Writes run on a thread of their own while the caller goes on computing, in the caller's
transaction.

A bulk write is mostly the database's own work (PostgreSQL's backend is another process;
SQLite's ``sqlite3_step`` runs without the GIL), and so is most of Polars' computing: on two
cores the two overlap when the write is handed to a second thread. The caller must not use
the connection (or its session) until :meth:`Writer.wait` returns: the writes share it, one
at a time, in the order they were handed over. A failed write stops the writes after it and
is raised by :meth:`Writer.wait` (or at the end of :func:`background_writes`); the caller's
transaction then rolls back as it would have had the write run in place."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor


class Writer:
    """Writes handed to one worker thread, run in order."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="allegiance-writer")
        self._pending: list[Future[None]] = []
        self._failed = threading.Event()

    def submit(self, write: Callable[[], None]) -> None:
        """Run ``write`` after the writes handed over before it (skipped once one failed)."""
        def run() -> None:
            if self._failed.is_set():
                return
            try:
                write()
            except BaseException:
                self._failed.set()
                raise
        self._pending.append(self._pool.submit(run))

    def wait(self) -> None:
        """Return when every write handed over is done; raise the first failure."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Drop the writes not yet started and wait for the one running (if any): nothing
        touches the connection after this returns."""
        self._failed.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def background_writes() -> Iterator[Writer]:
    """A :class:`Writer` whose writes are all done when the block ends without an error; on
    an error the writes not started are dropped and the one running is waited for before the
    error goes on (so the transaction's rollback never meets a write in flight)."""
    writer = Writer()
    try:
        yield writer
        writer.wait()
    finally:
        writer.close()
