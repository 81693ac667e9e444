"""The PostgreSQL writers: group commit, pipelined statements, conflicts run again, read-model
changes once a batch.

Each writer owns a connection and takes every write that is waiting (up to ``MAX_WRITES``)
into one transaction, where each write still succeeds or fails alone, and resolves their
futures only after ``COMMIT``: many requests share one WAL flush, and a reply is only sent for
a change that is durable. Several writers, in several processes, commit side by side.

The connection stays in pipeline mode: a statement whose outcome nothing reads (the order
lock, an ``UPDATE`` or ``INSERT``) is sent without waiting for the server, and the wait
happens once, at the next read. A transaction first runs its writes bare, with no savepoint
and no wait between them: the outcome of their unread statements arrives with the
``COMMIT``. If any write fails, the transaction is rolled back and run again carefully,
where a write's errors must be its own: each write in a savepoint, and its outcome waited
for (a sync) before the next write starts, so an error seen inside a write, or at its sync,
comes from that write's statements. After an error the server skips everything up to the
next sync, so a failed write is settled (synced until clean) before its savepoint is rolled
back. A write alone in its transaction needs no savepoint either way.

A server's event loop has a writer of its own (``Writer(store, inline=True)``), which runs
the loop's batches on the loop's thread: handing each write to a writer thread and its
reply back cost more CPU than the write (the loop and the threads handing the GIL around).
It never sleeps or waits long: every write of its transactions waits at most ``LOCK_WAIT``
for a lock, and a batch that meets a conflict or a lost connection is rolled back and given
to the writer threads, which run it again as below.

Changes stay exact under READ COMMITTED: every change of an order first takes the advisory
lock of its key (``Repository.lock_order_key``), then reads the order, so it sees the last
committed change of it. Two transactions can still wait on each other (a batch holds the locks
of its earlier writes while a later write waits for another batch). So a write after the first
of its transaction waits at most ``LOCK_WAIT`` for a lock; if it would wait longer, or the
database reports a deadlock, a serialization failure, a unique violation (two replicas
creating the same row) or a full lock table, it is rolled back to its savepoint, the writes
before it are committed (which releases their locks) and it heads the next transaction. The
head of a transaction holds no other write's locks, so it waits as long as needed; after such
an error it is rolled back and run again after a short random pause. Work functions can be run
again: they decide from what they read. None of these errors reaches a client.

Sites are cached per writer (``Repository.get_site``) under the sites version, which is read
once per transaction: every write of a batch was queued before its transaction began, so the
version read then is at least as new as the one each request would have read itself. A
transaction that changes a site reads the version afresh for the rest of its writes.

The read-model changes of a transaction are summed and applied at its end in one sorted pass:
one upsert per statistic row per transaction, locked in the same order by every writer, so the
hot rows (today's report of a busy site) are held only for the commit.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import select
import time
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg import errors as pg

from ..domain.sites import Site
from ..domain.stats import Delta, add_by_site, to_write
from .db import Db, StoreError
from .port import Work
from .repository import WriterRepository

if TYPE_CHECKING:
    from .postgres import PostgresStore

log = logging.getLogger("recotrack.store")

LOCK_WAIT = "50ms"  # how long a write that is not the head of its transaction waits for a lock
CONFLICT_ATTEMPTS = 12  # runs of a head write that keeps meeting conflicts before it fails
LOST_ATTEMPTS = 6  # connection attempts (with 1.5 s of pauses in all) before a batch fails
SETTLE_ATTEMPTS = 4  # syncs after an error before the pipeline is given up as stuck
# Each write of a transaction holds the advisory lock of its order key until COMMIT, and the
# server's lock table is shared (max_locks_per_transaction x max_connections slots): so at
# most this many writes share a transaction, whatever RECOTRACK_WRITE_BATCH_MAX allows.
MAX_WRITES = 64
CONFLICTS = (
    pg.SerializationFailure,
    pg.DeadlockDetected,
    pg.UniqueViolation,
    pg.LockNotAvailable,
    pg.OutOfMemory,  # "out of shared memory": the lock table is full; committing frees ours
)
STOP = object()  # put once per writer to end it


class Reply(Protocol):
    """Where a write's outcome goes: a thread's ``Future``, or an event loop's (resolved on
    the loop's thread by its inline writer)."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


Item = tuple[Work[Any], Reply]


class _Conflict(Exception):
    """The transaction met a conflict that running it again resolves; it must roll back."""


class _Careful(Exception):
    """A write of a bare transaction failed: roll back, run it again with savepoints."""


def store_error(message: str, cause: BaseException) -> StoreError:
    error = StoreError(f"{message}: {cause}")
    error.__cause__ = cause
    return error


class _BatchRepository(WriterRepository):
    """The writers' repository, made anew for each transaction."""

    def flush(self, totals: dict[str, Delta]) -> None:
        for site, total in to_write(totals).items():
            self.write_statistics(site, total)


class Writer:
    """One writer thread (or an event loop's writer) and its connection, kept in pipeline
    mode."""

    def __init__(self, store: PostgresStore, inline: bool = False) -> None:
        self.store = store
        self.inline = inline  # on an event loop's thread: never sleeps, hands trouble over
        self.conn: psycopg.Connection[Any] | None = None
        self.pipeline: psycopg.Pipeline | None = None
        self._pipeline_mode = contextlib.ExitStack()  # leaves pipeline mode when closed
        self.sites: dict[str, tuple[str, Site]] = {}  # see Repository.get_site

    def run(self) -> None:
        store = self.store
        pending: deque[Item] = deque()
        stopping = False
        try:
            while True:
                if not pending:
                    if stopping:
                        return
                    item = store.jobs.get()
                    if item is STOP:
                        return
                    self._admit(item, pending)
                while not stopping and len(pending) < min(store.max_batch, MAX_WRITES):
                    try:
                        item = store.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if item is STOP:
                        stopping = True
                    else:
                        self._admit(item, pending)
                if pending:
                    for _ in range(self.commit_some(list(pending))):
                        pending.popleft()
        finally:
            self._drop()

    @staticmethod
    def _admit(item: tuple[Work[Any], Future[Any]], pending: deque[Item]) -> None:
        if item[1].set_running_or_notify_cancel():
            pending.append(item)

    def commit_some(self, batch: list[Item]) -> int:
        """Commit writes from the head of ``batch``; resolve them; return how many. An
        inline writer returns 0, having changed nothing, where a thread would sleep or
        reconnect: the batch is then the writer threads'."""
        conflicts = lost = 0
        delay = 0.002
        careful = False
        while True:
            try:
                held = self._connection()
                if held is None:
                    return 0
                return self._transaction(*held, batch, careful)
            except _Careful:
                self._rollback()
                careful = True
            except _Conflict as conflict:
                self._rollback()
                self.store.conflicted()
                if self.inline:
                    return 0
                conflicts += 1
                if conflicts >= CONFLICT_ATTEMPTS:
                    cause = conflict.__cause__ or conflict
                    batch[0][1].set_exception(
                        store_error(f"write still conflicting after {conflicts} runs", cause)
                    )
                    return 1
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.1)
            except psycopg.OperationalError as exc:
                if self.conn is not None and not (self.conn.closed or self.conn.broken):
                    return self._fail(batch, exc)
                # Nothing was committed: reconnect (a restart or fail-over) and run it again.
                self._drop()
                if self.inline:
                    return 0
                lost += 1
                log.warning("postgresql connection lost (attempt %d): %s", lost, exc)
                if lost >= LOST_ATTEMPTS:
                    return self._fail(batch, exc)
                time.sleep(0.05 * 2 ** (lost - 1))
            except psycopg.Error as exc:
                return self._fail(batch, exc)
            except Exception as exc:  # a bug: fail the batch rather than the writer thread
                log.exception("postgresql writer failed")
                self._drop()
                return self._fail(batch, exc)

    def _fail(self, batch: list[Item], exc: BaseException) -> int:
        """The transaction failed as a whole: nothing in it was committed."""
        self._rollback()
        error = store_error("postgresql write failed", exc)
        for _, future in batch:
            if not future.done():
                future.set_exception(error)
        return len(batch)

    def _transaction(
        self,
        conn: psycopg.Connection[Any],
        pipeline: psycopg.Pipeline,
        batch: list[Item],
        careful: bool,
    ) -> int:
        repo = _BatchRepository(Db(conn, self.store.dialect, settle=pipeline.sync), self.sites)
        outcomes: list[tuple[Reply, bool, Any]] = []
        totals: dict[str, Delta] = {}
        bounded_wait = False
        alone = len(batch) == 1  # its failure can roll the transaction back: no savepoint
        bare = not (alone or careful)  # a failure runs the whole transaction again, carefully
        send = conn.execute  # in pipeline mode: sent, its outcome comes with the next sync
        send("BEGIN")
        for work, future in batch:
            if outcomes and not bounded_wait and not self.inline:  # (the loop's: always)
                send(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                bounded_wait = True
            if careful and not alone:
                send("SAVEPOINT w")
            repo.changes = []
            try:
                result = work(repo)
                if careful and not alone:
                    send("RELEASE SAVEPOINT w")
                    pipeline.sync()  # its errors show here, not in the next write
            except Exception as exc:
                lost = isinstance(exc, psycopg.Error) and (conn.broken or conn.closed)
                if lost:
                    raise
                if bare:  # the error may be an earlier write's: each in a savepoint, then
                    raise _Careful() from exc
                if isinstance(exc, CONFLICTS):
                    if not outcomes:
                        raise _Conflict() from exc
                    self._settle(conn, pipeline)
                    send("ROLLBACK TO SAVEPOINT w")
                    break  # commit the writes before it, releasing their locks; it goes next
                # The write fails alone.
                error: Exception = exc
                if isinstance(exc, psycopg.Error):
                    error = store_error("postgresql write failed", exc)
                self._settle(conn, pipeline)
                if alone:  # counted like a batch whose only write rolled back to its savepoint
                    send("ROLLBACK")
                    pipeline.sync()
                    self.store.committed(1)
                    future.set_exception(error)
                    return 1
                send("ROLLBACK TO SAVEPOINT w")
                send("RELEASE SAVEPOINT w")
                outcomes.append((future, False, error))
            else:
                add_by_site(totals, repo.changes)
                outcomes.append((future, True, result))
        committing = False  # once COMMIT may have reached the server
        try:
            if bounded_wait:
                send("SET LOCAL lock_timeout = 0")
            repo.flush(totals)
            committing = True
            send("COMMIT")
            pipeline.sync()
        except psycopg.Error as exc:
            if not (conn.broken or conn.closed):
                if bare:  # a write's unread statement, or the statistics: run it carefully
                    raise _Careful() from exc
                if isinstance(exc, CONFLICTS):
                    raise _Conflict() from exc
                raise
            if not (committing and isinstance(exc, psycopg.OperationalError)):
                raise  # nothing was committed: run it again on a new connection
            # Lost during COMMIT: whether it was made is unknown; say so, never run it again.
            error = store_error(
                "the connection to PostgreSQL was lost while committing; the change may or may"
                " not have been made",
                exc,
            )
            for future, ok, value in outcomes:
                future.set_exception(error if ok else value)
            self._drop()
            return len(outcomes)
        self.store.committed(len(outcomes))
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        return len(outcomes)

    @staticmethod
    def _settle(conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> None:
        """After an error the server skips every statement up to the next sync, and the
        outcomes of the skipped ones may still be on their way: sync until a sync is clean.
        Every error met here belongs to the write that already failed."""
        for _ in range(SETTLE_ATTEMPTS):
            try:
                pipeline.sync()
                return
            except psycopg.Error:
                if conn.broken or conn.closed:
                    raise
        raise psycopg.OperationalError("the pipeline kept failing after a write's error")

    def connected(self) -> bool:
        """Whether the connection can take the next transaction. Between transactions the
        server sends nothing: anything to read (the notice of a session ended by a restart,
        or the end of the stream) means it is gone, and finding out now, rather than at the
        ``COMMIT``, leaves no doubt whether the next transaction was made."""
        conn = self.conn
        if conn is None or conn.closed or conn.broken:
            return False
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
        return not readable

    def connect(self) -> None:
        """Open a connection unless the one held can take the next transaction. An inline
        writer has a thread do it: connecting can take seconds."""
        if not self.connected():
            self._drop()
            conn = self.conn = self.store.connect_writer()
            if self.inline:  # the loop serves no one while it waits: every lock wait is short
                conn.execute(f"SET lock_timeout = '{LOCK_WAIT}'")
            self.pipeline = self._pipeline_mode.enter_context(conn.pipeline())

    def close(self) -> None:
        self._drop()

    def _connection(self) -> tuple[psycopg.Connection[Any], psycopg.Pipeline] | None:
        """The connection for the next transaction; None for an inline writer without one,
        which never connects on the loop."""
        if not self.inline:
            self.connect()
        elif not self.connected():
            return None
        assert self.conn is not None and self.pipeline is not None
        return self.conn, self.pipeline

    def _rollback(self) -> None:
        conn, pipeline = self.conn, self.pipeline
        if conn is None or pipeline is None or conn.closed or conn.broken:
            return
        try:
            self._settle(conn, pipeline)
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
                pipeline.sync()
        except psycopg.Error:
            self._drop()

    def _drop(self) -> None:
        conn = self.conn
        self.conn = self.pipeline = None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        # Closed first: leaving pipeline mode then waits for nothing.
        with contextlib.suppress(psycopg.Error):
            self._pipeline_mode.close()
