"""The SQLite adapter: one writer thread with group commit, a connection per reader thread.

All writes go through one connection owned by one thread, inside ``BEGIN IMMEDIATE``. The
writer takes every write that is waiting, runs each in its own savepoint (so one failing
write rolls back alone), commits them together with ``synchronous=FULL`` in WAL mode, and
only then resolves their futures: many requests share one fsync, and a reply is only sent for
a change that is on disk.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..domain.errors import ApiError
from .db import Db, Dialect, StoreError
from .port import Store, T, Work
from .repository import Repository
from .schema import LATEST, SQLITE, migrations

_STOP = object()


def _dec_add(a: Any, b: Any) -> str:
    return format(Decimal(a) + Decimal(b), "f")


class _DecSum:
    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += Decimal(value)

    def finalize(self) -> str:
        return format(self.total, "f")


def connect(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.create_function("dec_add", 2, _dec_add, deterministic=True)
    conn.create_aggregate("dec_sum", 1, _DecSum)  # type: ignore[arg-type]
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the latest schema; refuse one newer than this code knows."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current > LATEST:
            raise StoreError(
                f"the database is at schema version {current}, newer than this recotrack"
                f" knows ({LATEST}): upgrade recotrack"
            )
        for migration in migrations(SQLITE):
            if migration.version > current:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return LATEST


class SqliteStore(Store):
    def __init__(
        self, path: str, synchronous: str = "FULL", max_batch: int = 512, max_queue: int = 10_000
    ) -> None:
        super().__init__()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.synchronous = synchronous
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._local = threading.local()
        self._dialect = Dialect(SQLITE)
        self._writer_conn = connect(path, synchronous)
        migrate(self._writer_conn)
        self._counters = {"batches": 0.0, "writes": 0.0, "last_batch": 0.0}
        self._thread = threading.Thread(target=self._run, name="recotrack-writer", daemon=True)
        self._thread.start()

    # -- port ------------------------------------------------------------------------------

    def submit(self, work: Work[T]) -> Future[T]:
        future: Future[T] = Future()
        try:
            self._queue.put_nowait((work, future))
        except queue.Full:
            raise ApiError(
                "Overloaded", "the server is taking more writes than it can commit; retry shortly"
            ) from None
        return future

    def read_sync(self, work: Work[T]) -> T:
        repo = getattr(self._local, "repo", None)
        if repo is None:
            conn = connect(self.path, self.synchronous)
            repo = self._local.repo = Repository(Db(conn, self._dialect))
        try:
            return work(repo)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite read failed: {exc}") from exc

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        self._writer_conn.close()
        super().close()

    @property
    def stats(self) -> dict[str, float]:
        return {**self._counters, "queued": float(self._queue.qsize())}

    # -- the writer ------------------------------------------------------------------------

    def _run(self) -> None:
        repo = Repository(Db(self._writer_conn, self._dialect))
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit(repo, batch)
            if stop:
                return

    def _commit(
        self, repo: Repository, batch: list[tuple[Callable[..., Any], Future[Any]]]
    ) -> None:
        conn = self._writer_conn
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for work, future in batch:
                if not future.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT w")
                try:
                    result = work(repo)
                except Exception as exc:  # the write fails alone
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    if isinstance(exc, sqlite3.Error):
                        exc = StoreError(f"sqlite write failed: {exc}")
                    outcomes.append((future, False, exc))
                else:
                    conn.execute("RELEASE w")
                    outcomes.append((future, True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StoreError(f"sqlite commit failed: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self._counters["batches"] += 1
        self._counters["writes"] += len(batch)
        self._counters["last_batch"] = len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
