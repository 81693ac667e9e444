"""The storage port: run a function in a write transaction or against a consistent read.

Services are plain functions ``fn(repository) -> result``. ``write`` runs them in a
transaction that is committed (durably) before it returns; a function that raises leaves no
trace. Adapters may commit many waiting writes in one transaction (group commit) but each
write still succeeds or fails alone.
"""

from __future__ import annotations

import asyncio
import queue
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from ..domain.errors import ApiError
from .repository import Repository

T = TypeVar("T")
Work = Callable[[Repository], T]


def enqueue(jobs: queue.Queue[Any], work: Work[T]) -> Future[T]:
    """Queue ``work`` with the future its writer resolves; 503 ``Overloaded`` when full, at
    once, rather than letting memory and waiting times grow."""
    future: Future[T] = Future()
    try:
        jobs.put_nowait((work, future))
    except queue.Full:
        raise overloaded() from None
    return future


def overloaded() -> ApiError:
    return ApiError(
        "Overloaded", "the server is taking more writes than it can commit; retry shortly"
    )


class Store(ABC):
    def __init__(self) -> None:
        self.on_batch: Callable[[int], None] | None = None  # told each commit's write count
        self.schema_version = 0  # the adapter sets it once the database is migrated

    @abstractmethod
    def submit(self, work: Work[T]) -> Future[T]:
        """Queue ``work`` for a write transaction; the future resolves after the commit."""

    @abstractmethod
    def read_sync(self, work: Work[T], snapshot: bool = False) -> T:
        """Run ``work`` against the latest committed state, on the calling thread. With
        ``snapshot`` every query of ``work`` sees the same commit (``recotrack check`` on a
        live database); without, each query sees the latest one."""

    def write_sync(self, work: Work[T]) -> T:
        return self.submit(work).result()

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Around a long run of large write transactions (``recotrack import``), for an
        adapter that works differently then; nothing by default."""
        yield

    async def write(self, work: Work[T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    @abstractmethod
    async def read(self, work: Work[T]) -> T:
        """``read_sync`` for a caller on the event loop: each adapter says where it runs (on
        a thread of its own when the read waits on the network, on the loop when that costs
        less)."""

    async def drained(self) -> None:
        """Once every write this event loop started is committed or failed: a server awaits it
        before ``close``. By default there is nothing to wait for: the writers' threads
        finish their batches without the loop."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Stop the writers and release the adapter's threads and connection pools; nothing
        uses the store afterwards."""

    @property
    @abstractmethod
    def stats(self) -> dict[str, float]:
        """Counters for /metrics: batches, writes, queue depth."""


class LoopBatches(Store):
    """A store whose server runs its writes in batches on the event loop's thread (SQLite and
    PostgreSQL both): ``write`` gathers the writes of one loop for the adapter's ``_drain``,
    which runs a batch after another while writes wait. Writes from another loop take the
    writer threads (``submit``)."""

    def __init__(self, max_queue: int) -> None:
        super().__init__()
        self.max_queue = max_queue  # writes waiting, on the loop and for the threads
        self._pending: list[tuple[Work[Any], asyncio.Future[Any]]] = []  # the loop's writes
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that writes inline
        self._drainer: asyncio.Task[None] | None = None

    async def write(self, work: Work[T]) -> T:
        """Run ``work`` in the next batch of this event loop; returns once it is committed."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if loop is not self._loop:  # a second loop on one store: its writes take the threads
            return await asyncio.wrap_future(self.submit(work))
        if len(self._pending) + self._queued() >= self.max_queue:
            raise overloaded()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((work, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain_all())
        return await future

    async def _drain_all(self) -> None:
        try:
            await self._drain()
        finally:
            self._drainer = None

    def _take(self, size: int) -> list[tuple[Work[Any], asyncio.Future[Any]]]:
        """The loop's next ``size`` writes, less those whose request went away."""
        taken = self._pending[:size]
        del self._pending[:size]
        return [(work, future) for work, future in taken if not future.done()]

    @abstractmethod
    def _queued(self) -> int:
        """Writes waiting for the writer threads."""

    @abstractmethod
    async def _drain(self) -> None:
        """Run the loop's batches, one after another, until no write is pending."""

    async def drained(self) -> None:
        """Once the loop's batches have ended: SQLite's holds the write lock from its
        ``BEGIN`` (on a thread) until the loop reaches its ``COMMIT``, and ``close`` on the
        loop's thread would wait for that lock forever; PostgreSQL's uses a connection that
        ``close`` closes."""
        while self._drainer is not None:
            await asyncio.wait([self._drainer])
