"""The SQLite adapter: one writer connection with group commit, a connection per reader.

All writes go through one connection, inside ``BEGIN IMMEDIATE``. The writer takes every
write that is waiting, runs each in its own savepoint (so one failing write rolls back alone;
a write alone in its transaction needs none), commits them together with ``synchronous=FULL``
in WAL mode, and only then resolves their futures: many requests share one fsync, and a reply
is only sent for a change that is on disk.

In a server the writes of a batch run on the event loop's own thread, which takes the write
lock itself when it is free (the writer's busy timeout is 0); only ``COMMIT`` (the fsync), and
waiting for the lock while another process writes, are handed to a thread, during which the
loop takes the next requests. A writer thread of its own would hand the GIL back and forth
with the loop at every statement (the sqlite3 module releases it around each call), and wait
up to the switch interval each time. Callers without an event loop (the command line, the
importer) use ``submit``: a writer thread runs their batches the same way. A lock keeps the
two from sharing a transaction.

Committed pages are copied from the WAL back into the database by a checkpointer of its own,
beside the writer, so that no commit waits for a checkpoint of 1,000 pages; the writer's
autocheckpoint, at 4,000 pages, finds most of them copied and lets the WAL start again.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..domain.money import plain
from ..domain.stats import Change, Delta, add_by_site, moves_buyers, to_write
from .db import Db, Dialect, StoreError
from .migrate import migrate as run_migrations
from .port import LoopBatches, T, Work, enqueue
from .rankings import STAMP_KEY, Rankings
from .repository import Repository, WriterRepository
from .schema import SQLITE

log = logging.getLogger("recotrack.store")

_STOP = object()


def _dec_add(a: Any, b: Any) -> str:
    return plain(Decimal(a) + Decimal(b))


class _DecSum:
    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += Decimal(value)

    def finalize(self) -> str:
        return plain(self.total)


def connect(path: str, synchronous: str = "FULL", cache_kib: int = 16_384) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    _set_wal(conn)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(f"PRAGMA cache_size = -{cache_kib}")
    conn.create_function("dec_add", 2, _dec_add, deterministic=True)
    conn.create_aggregate("dec_sum", 1, _DecSum)  # type: ignore[arg-type]
    return conn


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Processes opening a new file together (``serve --workers N``) can get
    "database is locked" here at once, without the busy timeout: try again for a while."""
    for attempt in range(200):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 199:
                raise
            time.sleep(0.025)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the latest schema; refuse one newer than this code knows."""
    try:
        return run_migrations(Db(conn, Dialect(SQLITE)))
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite migration failed: {exc}") from exc


WRITER_CACHE_KIB = 65_536
# The checkpointer copies the WAL back while commits go on; the writer's own checkpoint, at the
# commit that crosses this many pages (16 MiB), finds most of them copied and lets the next
# transaction start the WAL again from its beginning.
AUTOCHECKPOINT_PAGES = 4_000
BULK_AUTOCHECKPOINT_PAGES = 20_000  # while bulk loading (no checkpointer): after 80 MiB
# Seconds of commits the checkpointer lets gather before copying. Its copy ends in an fsync of
# the database, and a commit's fsync of the WAL queues behind it on the disk: after 50 ms of
# pages one commit in 40 took 5-18 ms (the writes' p99), after 10 ms one in 700, at most 6 ms.
CHECKPOINT_EVERY = 0.01
CHECKPOINT_ROUNDS = 8  # passive checkpoints in a row, each copying what the last left
LOCK_WAIT = 10.0  # seconds a writer waits for the write lock another process holds

# What a transaction did to the read model: the stamp it replaced, its own, the sums it added
# to the statistics per site, and the changes of orders (``Rankings.committed``'s arguments).
Moved = tuple[str, str, dict[str, Delta], list[Change]]


class _Checkpointer:
    """Copies committed pages from the WAL back into the database on a connection and thread of
    its own, beside the writer: a passive checkpoint never blocks a writer. Left to SQLite's
    autocheckpoint, the commit that crosses the mark copies every page and fsyncs the database
    before its writes are answered, and every request that arrives meanwhile waits (#42)."""

    def __init__(self, path: str, synchronous: str) -> None:
        self._conn = connect(path, synchronous)
        self._committed = threading.Event()
        self._stopping = False
        self.checkpoints = 0
        self._thread = threading.Thread(target=self._run, name="recotrack-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._committed.set()

    def _run(self) -> None:
        while True:
            self._committed.wait()
            if self._stopping:
                return
            time.sleep(CHECKPOINT_EVERY)
            self._committed.clear()
            if self._stopping:
                return
            self._copy()

    def _copy(self) -> None:
        try:
            for _ in range(CHECKPOINT_ROUNDS):
                busy, wal_pages, copied = self._conn.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
                if busy or copied >= wal_pages:  # another process checkpoints, or all copied
                    break
            self.checkpoints += 1
        except sqlite3.Error as exc:  # the writer's own checkpoints still bound the WAL
            log.warning("sqlite checkpoint failed: %s", exc)

    def close(self) -> None:
        self._stopping = True
        self._committed.set()
        self._thread.join()
        self._conn.close()


class _BatchRepository(WriterRepository):
    """The writer's repository: the read-model changes of a transaction are summed and applied
    just before it commits. A write that fails takes its changes with it. A transaction that
    changes statistics, or what a buyer has live-bought, gets a new stamp
    (``recotrack.store.rankings``)."""

    def __init__(self, db: Db, site_cache: dict[str, Any]) -> None:
        super().__init__(db, site_cache)
        self._tag = secrets.token_hex(8)  # this writer's stamps, unique among processes
        self._commits = 0

    def flush(self) -> Moved | None:
        """Write the summed changes; what moved (``Moved``), or None if nothing did."""
        changes, self.changes = self.changes, []
        summed: dict[str, Delta] = {}
        add_by_site(summed, changes)
        totals = to_write(summed)
        if not totals and not moves_buyers(changes):
            return None
        for site, total in totals.items():
            self.write_statistics(site, total)
        replaced = self._stamp()
        self._commits += 1
        stamp = f"{self._tag}-{self._commits}"
        self.set_meta(STAMP_KEY, stamp)
        return replaced, stamp, totals, changes


class SqliteStore(LoopBatches):
    def __init__(
        self, path: str, synchronous: str = "FULL", max_batch: int = 512, max_queue: int = 10_000
    ) -> None:
        super().__init__(max_queue)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.synchronous = synchronous
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._local = threading.local()
        self._dialect = Dialect(SQLITE)
        # The writer's page cache holds the hot parts of the indexes of a large store.
        self._writer_conn = connect(path, synchronous, cache_kib=WRITER_CACHE_KIB)
        self._sites: dict[str, Any] = {}  # sites by name, shared by the writer and readers
        self._rankings = Rankings()  # moved by the writer, read by the readers
        try:
            self.schema_version = migrate(self._writer_conn)
        except BaseException:
            self._writer_conn.close()
            raise
        self._counters = {"batches": 0.0, "writes": 0.0, "last_batch": 0.0}
        self._writer_conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        self._writer_conn.execute("PRAGMA busy_timeout = 0")  # waits for the lock: ``_begin``
        self._checkpointer = _Checkpointer(path, synchronous)
        self._repo = _BatchRepository(Db(self._writer_conn, self._dialect), self._sites)
        self._transaction = threading.Lock()  # one batch at a time on the writer connection
        # Bulk loading: the writer thread commits each write alone, and the checkpointer is not
        # woken (the writer's own checkpoints, far apart, copy the pages back).
        self._bulk = False
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="recotrack-commit")
        self._thread = threading.Thread(target=self._run, name="recotrack-writer", daemon=True)
        self._thread.start()

    # -- port ------------------------------------------------------------------------------

    def submit(self, work: Work[T]) -> Future[T]:
        return enqueue(self._queue, work)

    def _queued(self) -> int:
        return self._queue.qsize()

    async def read(self, work: Work[T]) -> T:
        """On the calling (event loop) thread: a SQLite read of indexed rows costs less than
        handing it to a thread and back (measured: 140 against 530 µs of CPU for a
        recommendation request), and readers never wait for the writer in WAL mode."""
        return self.read_sync(work)

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Checkpoint the WAL after 20,000 pages of commits instead of 4,000, with the
        checkpointer paused, and commit each write of the writer thread alone, without a
        savepoint. Every transaction of a bulk load rewrites many of the same pages (indexes,
        statistics); a checkpoint copies each page once however often the WAL holds it, and
        the commit that crosses the mark waits for it (1,000,000 orders imported: 62 -> 58 s).
        A savepoint keeps a copy of every page changed under it until it is released: for an
        import's batch of 5,000 records, in a temporary file (the import's system CPU: 8 ->
        5.6 s)."""
        self._autocheckpoint(BULK_AUTOCHECKPOINT_PAGES)
        self._bulk = True
        try:
            yield
        finally:
            self._bulk = False
            self._autocheckpoint(AUTOCHECKPOINT_PAGES)

    def _autocheckpoint(self, pages: int) -> None:
        with self._transaction:  # between two batches of the writer
            self._writer_conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")

    def read_sync(self, work: Work[T], snapshot: bool = False) -> T:
        repo = getattr(self._local, "repo", None)
        if repo is None:
            conn = connect(self.path, self.synchronous)
            repo = self._local.repo = Repository(
                Db(conn, self._dialect), self._rankings, self._sites
            )
        try:
            if not snapshot:  # each query sees the latest commit
                return work(repo)
            repo.db.execute("BEGIN")  # every query of the work sees the same commit
            try:
                return work(repo)
            finally:
                repo.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite read failed: {exc}") from exc

    def close(self) -> None:
        """From any thread; on the thread of the loop that writes, only after ``drained``."""
        self._queue.put(_STOP)
        self._thread.join()
        with self._transaction:  # a commit in flight ends first
            self._writer_conn.close()
        self._committer.shutdown(wait=True)
        self._checkpointer.close()

    @property
    def stats(self) -> dict[str, float]:
        queued = self._queue.qsize() + len(self._pending)
        checkpoints = float(self._checkpointer.checkpoints)
        return {**self._counters, "queued": float(queued), "checkpoints": checkpoints}

    # -- the writer ------------------------------------------------------------------------

    async def _drain(self) -> None:
        """The loop's batches, one after another, while writes are waiting."""
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = self._take(self.max_batch)
            if not batch:
                continue
            futures = [future for _, future in batch]
            try:  # on the loop if the write lock is free; waiting for it happens off the loop
                if not self._begin_now():
                    await loop.run_in_executor(self._committer, self._begin)
            except sqlite3.Error as exc:
                self._failed(exc, futures)
                continue
            try:
                outcomes, moved = self._run_batch(batch)
            except Exception as exc:
                self._transaction.release()
                self._failed(exc, futures)
                continue
            try:  # the fsync leaves the loop as well; the commit thread releases the lock
                await loop.run_in_executor(self._committer, self._commit, moved)
            except sqlite3.Error as exc:
                self._failed(exc, futures)
                continue
            self._committed(outcomes, len(batch))
            # The batch's requests reply (each reads the recommendations) before the loop
            # runs the next batch, which takes the writes that arrived meanwhile.
            await asyncio.sleep(0)

    def _run(self) -> None:
        """The writer thread: batches of ``submit``."""
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch and not self._bulk:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._thread_batch([(w, f) for w, f in batch if f.set_running_or_notify_cancel()])
            if stop:
                return

    def _thread_batch(self, batch: list[tuple[Callable[..., Any], Future[Any]]]) -> None:
        futures = [future for _, future in batch]
        try:
            self._begin()
        except sqlite3.Error as exc:
            self._failed(exc, futures)
            return
        try:
            outcomes, moved = self._run_batch(batch)
            self._finish(moved)
        except Exception as exc:
            self._failed(exc, futures)
            return
        finally:
            self._transaction.release()
        self._committed(outcomes, len(batch))

    def _run_batch(
        self, batch: list[tuple[Callable[..., Any], Any]]
    ) -> tuple[list[tuple[Any, bool, Any]], Moved | None]:
        """Every write of ``batch`` in its savepoint, then the summed statistics, in the
        transaction ``_begin`` opened; it is left open for ``COMMIT``. A database error fails
        the whole batch: it is rolled back and raised."""
        conn, repo = self._writer_conn, self._repo
        outcomes: list[tuple[Any, bool, Any]] = []
        repo.new_transaction()
        # A write alone in its transaction needs no savepoint: if it fails, the transaction is
        # rolled back. SQLite keeps the pages a savepoint changes in a journal of their own
        # until it is released, a copy of every page an import's batch touches.
        alone = len(batch) == 1
        try:
            for work, future in batch:
                if not alone:
                    conn.execute("SAVEPOINT w")
                kept = len(repo.changes)
                try:
                    result = work(repo)
                except Exception as exc:  # the write fails alone
                    if alone:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        conn.execute("BEGIN")  # empty: committing it writes nothing
                    else:
                        conn.execute("ROLLBACK TO w")
                        conn.execute("RELEASE w")
                    del repo.changes[kept:]
                    if isinstance(exc, sqlite3.Error):
                        exc = StoreError(f"sqlite write failed: {exc}")
                    outcomes.append((future, False, exc))
                else:
                    if not alone:
                        conn.execute("RELEASE w")
                    outcomes.append((future, True, result))
            moved = repo.flush()
        except Exception:
            repo.changes.clear()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if moved is not None:
            self._rankings.committing()
        return outcomes, moved

    def _begin(self) -> None:
        """Take the writer connection, then the database's write lock, waiting for each: up
        to ``LOCK_WAIT`` seconds for the lock while another process writes."""
        self._transaction.acquire()
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.001
        try:
            while not self._lock_database():
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked")
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        except BaseException:
            self._transaction.release()
            raise

    def _begin_now(self) -> bool:
        """``_begin`` if the writer connection and the write lock are both free now; False,
        holding neither, if not."""
        if not self._transaction.acquire(blocking=False):
            return False
        try:
            locked = self._lock_database()
        except BaseException:
            self._transaction.release()
            raise
        if not locked:
            self._transaction.release()
        return locked

    def _lock_database(self) -> bool:
        """``BEGIN IMMEDIATE``: False, at once, if another connection holds the write lock
        (the writer's busy timeout is 0, so that the loop can try it without waiting)."""
        try:
            self._writer_conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
        return True

    def _finish(self, moved: Moved | None) -> None:
        """``COMMIT`` the open batch: the fsync. A batch that cannot commit is rolled back.
        The rankings move to the commit's statistics (``moved``) at once, on the committing
        thread: a reader that sees the new stamp before the loop hears of the commit would
        otherwise load its rankings from the tables, and not keep them."""
        conn = self._writer_conn
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if moved is not None:
            self._rankings.committed(*moved)

    def _commit(self, moved: Moved | None) -> None:
        """The commit thread's part of a loop batch: commit, then let the next one begin."""
        try:
            self._finish(moved)
        finally:
            self._transaction.release()

    def _failed(self, exc: Exception, futures: list[Any]) -> None:
        """The whole batch failed: nothing of it was stored."""
        self._rankings.failed()
        error = exc if isinstance(exc, StoreError) else StoreError(f"sqlite commit failed: {exc}")
        for future in futures:
            if not future.done():
                future.set_exception(error)

    def _committed(self, outcomes: list[tuple[Any, bool, Any]], size: int) -> None:
        if not self._bulk:
            self._checkpointer.committed()
        self._counters["batches"] += 1
        self._counters["writes"] += sum(1 for _, ok, _ in outcomes if ok)
        self._counters["last_batch"] = size
        if self.on_batch is not None:
            self.on_batch(size)
        for future, ok, value in outcomes:
            if future.done():  # the request went away (its reply could not be sent)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
