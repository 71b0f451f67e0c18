"""Group commit: one writer thread commits whatever entries have queued every few
milliseconds, so many concurrent callers share one transaction (and one fsync).

Each caller still gets its own result or error: entries are posted with
``post_entries(partial=True)``, so a bad entry never fails its neighbours.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from allegiance.kit.db import Database
from allegiance.kit.errors import AllegianceError
from allegiance.ledger.service import EntryRequest, EntryResult, post_entries


@dataclass
class _Item:
    tenant_id: str
    request: EntryRequest
    future: Future[EntryResult]


class BatchWriter:
    def __init__(self, db: Database, *, max_batch: int = 1000, max_wait: float = 0.002) -> None:
        self.db = db
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._closed = False
        self.batches = 0
        self._thread.start()

    def submit(self, tenant_id: str, request: EntryRequest) -> Future[EntryResult]:
        if self._closed:
            raise RuntimeError("the writer is closed")
        future: Future[EntryResult] = Future()
        self._queue.put(_Item(tenant_id, request, future))
        return future

    def post(self, tenant_id: str, request: EntryRequest, timeout: float = 30.0) -> EntryResult:
        """Post one entry through the shared transaction; raises the entry's own error."""
        return self.submit(tenant_id, request).result(timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=self.max_wait)
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Item]) -> None:
        by_tenant: dict[str, list[_Item]] = {}
        for item in batch:
            by_tenant.setdefault(item.tenant_id, []).append(item)
        outcomes: list[tuple[_Item, EntryResult | BaseException]] = []
        try:
            with self.db.transaction() as session:
                for tenant_id, items in by_tenant.items():
                    results = post_entries(
                        session, tenant_id, [i.request for i in items], partial=True
                    )
                    outcomes.extend(zip(items, results, strict=True))
        except BaseException as exc:  # the commit failed: nothing of the batch was written
            for item in batch:
                item.future.set_exception(exc)
            return
        self.batches += 1
        for item, outcome in outcomes:
            if isinstance(outcome, AllegianceError | BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
