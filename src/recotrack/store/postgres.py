"""The PostgreSQL adapter: writes batched with group commit (see ``postgres_writer``), reads on
a pool of connections.

A server's writes run in batches on its event loop's thread, with a connection of their own;
writes from elsewhere (the CLI, the import, a second loop), and a loop's batch that met a
conflict or a lost connection, wait in one queue for a few writer threads. Writes waiting, on
the loop and in the queue, are bounded (full: 503 ``Overloaded``). Reads take a pooled connection
and run in one short REPEATABLE READ, READ ONLY transaction, so a read that makes several
queries (``recotrack check``) sees one consistent state, and every read starts after the
commits already answered. The schema is migrated when the store opens, under an advisory lock,
so servers starting together migrate once. ``psycopg`` is imported here and in
``postgres_writer`` only.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ..domain.errors import ApiError
from .db import Db, Dialect, StoreError
from .migrate import migrate
from .port import LoopBatches, T, Work, enqueue
from .postgres_writer import MAX_WRITES, STOP, Item, Reply, Writer
from .repository import Repository
from .schema import POSTGRES

log = logging.getLogger("recotrack.store")

WRITERS = 3  # writer connections per process
READERS = 4  # reader threads per process (the pool holds two more connections)
RECONNECT_PAUSE = 1.0  # s: after the loop's writer failed to connect, the threads write
IDLE_IN_TRANSACTION = "30s"  # the server ends a writer's transaction left idle this long
# Connection parameters the URL may override: a name in pg_stat_activity, and an unreachable
# host (a fail-over in progress) that fails in seconds rather than the system's TCP timeout.
DEFAULTS = {"application_name": "recotrack", "connect_timeout": 5}


class PostgresStore(LoopBatches):
    """The storage port on PostgreSQL; several processes may share one database."""

    def __init__(
        self,
        url: str,
        max_batch: int = 512,
        max_queue: int = 10_000,
        writers: int = WRITERS,
        readers: int = READERS,
    ) -> None:
        super().__init__(max_queue)
        self.url = url
        self.max_batch = max_batch
        self.dialect = Dialect(POSTGRES)
        self.jobs: queue.Queue[Any] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._counters = {"batches": 0.0, "writes": 0.0, "last_batch": 0.0, "conflicts": 0.0}
        given = conninfo_to_dict(url)
        self._connect_args: dict[str, Any] = {
            key: value for key, value in DEFAULTS.items() if key not in given
        }
        self.schema_version = self._migrate()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=readers + 2,
            kwargs=self._connect_args,
            configure=_configure_reader,
            name="recotrack-read",
            timeout=10.0,
            open=True,
        )
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="recotrack-read")
        self._inline = Writer(self, inline=True)
        self._reconnect_at = 0.0  # the loop's time before which its writer does not connect
        self._threads = [
            threading.Thread(target=Writer(self).run, name=f"recotrack-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    def _migrate(self) -> int:
        try:
            with psycopg.connect(self.url, autocommit=True, **self._connect_args) as conn:
                return migrate(Db(conn, self.dialect))
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate the PostgreSQL database: {exc}") from exc

    # -- port ------------------------------------------------------------------------------

    def submit(self, work: Work[T]) -> Future[T]:
        return enqueue(self.jobs, work)

    def _queued(self) -> int:
        return self.jobs.qsize()

    async def _drain(self) -> None:
        """The loop's batches, one after another, while writes are waiting. Each runs on the
        loop's thread, which waits for the database's answers: on one machine, handing the
        batch to a thread and back costs more CPU than those waits. A batch the inline writer
        gives back goes to the writer threads."""
        loop = asyncio.get_running_loop()
        while self._pending:
            if not self._inline.connected() and loop.time() >= self._reconnect_at:
                try:
                    await loop.run_in_executor(None, self._inline.connect)
                except psycopg.Error as exc:  # a batch meanwhile is the threads' (they retry)
                    self._reconnect_at = loop.time() + RECONNECT_PAUSE
                    log.warning("postgresql: the event loop's writer cannot connect: %s", exc)
            batch: list[Item] = list(self._take(min(self.max_batch, MAX_WRITES)))  # as Items
            while batch:
                done = self._inline.commit_some(batch)
                if not done:
                    self._to_threads(batch)
                    break
                del batch[:done]
            await asyncio.sleep(0)  # the loop reads the next requests

    def _to_threads(self, batch: list[Item]) -> None:
        """The writer threads take a batch the inline writer gave back; each write's outcome
        reaches the loop when theirs comes."""
        for work, future in batch:
            try:
                relay = asyncio.wrap_future(self.submit(work))
            except ApiError as exc:  # the queue is full
                future.set_exception(exc)
                continue
            relay.add_done_callback(partial(_copy_outcome, future))

    def read_sync(self, work: Work[T], snapshot: bool = False) -> T:
        # Every read is one REPEATABLE READ transaction (``_configure_reader``): all its
        # queries see the same commit, ``snapshot`` or not.
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn, conn.transaction():
                    return work(Repository(Db(conn, self.dialect)))
            except PoolTimeout as exc:
                raise StoreError(f"no database connection was free for a read: {exc}") from exc
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise StoreError(f"postgresql read failed: {exc}") from exc
                self._pool.check()  # the server may have restarted: replace dead connections
            except psycopg.Error as exc:
                raise StoreError(f"postgresql read failed: {exc}") from exc
        raise AssertionError("unreachable")

    async def read(self, work: Work[T]) -> T:
        """On a reader thread: the read waits on the network, and the loop serves other
        requests meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, work)

    def close(self) -> None:
        """From any thread; on the thread of the loop that writes, only after ``drained``."""
        self._inline.close()
        for _ in self._threads:
            self.jobs.put(STOP)
        for thread in self._threads:
            thread.join()
        self._pool.close()
        self._readers.shutdown(wait=True)

    @property
    def stats(self) -> dict[str, float]:
        with self._lock:
            return {**self._counters, "queued": float(self.jobs.qsize() + len(self._pending))}

    # -- for the writers -------------------------------------------------------------------

    def connect_writer(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, **self._connect_args)
        conn.execute("SET lock_timeout = 0")  # the head of a transaction waits as long as needed
        # A replica that dies without closing its socket must not hold order locks for long.
        conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")
        return conn

    def committed(self, writes: int) -> None:
        with self._lock:
            self._counters["batches"] += 1
            self._counters["writes"] += writes
            self._counters["last_batch"] = writes
            if self.on_batch is not None:
                try:
                    self.on_batch(writes)
                except Exception:  # metrics must not fail a committed batch
                    log.exception("on_batch failed")

    def conflicted(self) -> None:
        with self._lock:
            self._counters["conflicts"] += 1


def _copy_outcome(future: Reply, relay: asyncio.Future[Any]) -> None:
    if future.done():  # the request went away
        return
    error = relay.exception()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(relay.result())


def _configure_reader(conn: psycopg.Connection[Any]) -> None:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
