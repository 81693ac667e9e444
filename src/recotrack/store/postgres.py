"""The PostgreSQL adapter: writes queued for a few writers with group commit (see
``postgres_writer``), reads on a pool of connections.

Writes wait in one bounded queue (full: 503 ``Overloaded``). Reads take a pooled connection
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
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from .db import Db, Dialect, StoreError
from .migrate import migrate
from .port import Store, T, Work, enqueue
from .postgres_writer import STOP, Writer
from .repository import Repository
from .schema import POSTGRES

log = logging.getLogger("recotrack.store")

WRITERS = 3  # writer connections per process
READERS = 4  # reader threads per process (the pool holds two more connections)
IDLE_IN_TRANSACTION = "30s"  # the server ends a writer's transaction left idle this long
# Connection parameters the URL may override: a name in pg_stat_activity, and an unreachable
# host (a fail-over in progress) that fails in seconds rather than the system's TCP timeout.
DEFAULTS = {"application_name": "recotrack", "connect_timeout": 5}


class PostgresStore(Store):
    """The storage port on PostgreSQL; several processes may share one database."""

    def __init__(
        self,
        url: str,
        max_batch: int = 512,
        max_queue: int = 10_000,
        writers: int = WRITERS,
        readers: int = READERS,
    ) -> None:
        super().__init__()
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
        for _ in self._threads:
            self.jobs.put(STOP)
        for thread in self._threads:
            thread.join()
        self._pool.close()
        self._readers.shutdown(wait=True)

    @property
    def stats(self) -> dict[str, float]:
        with self._lock:
            return {**self._counters, "queued": float(self.jobs.qsize())}

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


def _configure_reader(conn: psycopg.Connection[Any]) -> None:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
