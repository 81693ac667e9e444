"""The writers: a write alone in its transaction fails without a trace on both backends; on
SQLite, the savepoint each write of a shared transaction runs in, none for a write alone, a
bulk load committing each write alone, and the checkpointer beside the writer."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from recotrack.domain.errors import ApiError
from recotrack.domain.orders import Line, Order
from recotrack.http.app import create_app
from recotrack.settings import Settings
from recotrack.store import Store
from recotrack.store.db import StoreError
from recotrack.store.rankings import STAMP_KEY
from recotrack.store.repository import Repository
from recotrack.store.sqlite import SqliteStore

from .support import ADMIN


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "writer.db"))
    yield opened
    opened.close()


def refused(key: str) -> Callable[[Repository], None]:
    """A write that changes ``key``, then is refused: a failure of the service's own."""

    def work(repo: Repository) -> None:
        repo.set_meta(key, "written, then refused")
        raise ApiError("OrderConflict", "refused")

    return work


def broken(key: str) -> Callable[[Repository], None]:
    """A write that changes ``key``, then fails in the database."""

    def work(repo: Repository) -> None:
        repo.set_meta(key, "written, then broken")
        repo.db.execute("SELECT no_such_column FROM meta")

    return work


def test_a_write_alone_in_its_transaction_that_fails_leaves_no_trace(store: Store) -> None:
    with pytest.raises(ApiError, match="refused"):
        store.write_sync(refused("alone"))
    with pytest.raises(StoreError, match="no_such_column"):
        store.write_sync(broken("alone"))
    assert store.read_sync(lambda repo: repo.get_meta("alone")) is None
    store.write_sync(lambda repo: repo.set_meta("alone", "kept"))
    assert store.read_sync(lambda repo: repo.get_meta("alone")) == "kept"


def test_a_write_whose_request_went_away_before_its_batch_is_not_run(store: Store) -> None:
    """A server's writes wait on its event loop for the next batch; one whose request is
    cancelled meanwhile (the client left) is dropped, not run."""
    ran: list[str] = []

    def noted(tag: str) -> Callable[[Repository], str]:
        def work(repo: Repository) -> str:
            ran.append(tag)
            repo.set_meta(tag, tag)
            return tag

        return work

    async def one_leaves() -> str:
        kept = asyncio.ensure_future(store.write(noted("kept")))
        gone = asyncio.ensure_future(store.write(noted("gone")))
        await asyncio.sleep(0)  # both wait for the batch, which has not started
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        result = await kept
        await store.drained()
        return result

    assert asyncio.run(one_leaves()) == "kept"
    assert ran == ["kept"]
    stored = store.read_sync(lambda repo: (repo.get_meta("kept"), repo.get_meta("gone")))
    assert stored == ("kept", None)


def traced(store: Store, threads: list[str] | None = None) -> list[str]:
    """The statements the writer's connection runs from now on; into ``threads``, if given,
    the name of the thread each ran on."""
    statements: list[str] = []

    def note(sql: str) -> None:
        statements.append(sql)
        if threads is not None:
            threads.append(threading.current_thread().name)

    store.write_sync(lambda repo: repo.db.conn.set_trace_callback(note))  # type: ignore[attr-defined]
    statements.clear()
    if threads is not None:
        threads.clear()
    return statements


def queued_behind_a_gate(store: SqliteStore, count: int) -> list[int]:
    """Submit ``count`` writes while the writer is held, so they wait together; then let it go
    and return the number of writes in each transaction it commits after the gate's."""
    entered, opened = threading.Event(), threading.Event()
    sizes: list[int] = []

    def gate(repo: Repository) -> None:
        entered.set()
        assert opened.wait(10)

    held = store.submit(gate)
    assert entered.wait(10)
    store.on_batch = sizes.append
    futures = [
        store.submit(lambda repo, n=n: repo.set_meta(f"queued-{n}", "written"))
        for n in range(count)
    ]
    opened.set()
    held.result(10)
    for future in futures:
        future.result(10)
    store.on_batch = None
    return sizes[1:]  # the gate's own transaction first


def test_writes_sharing_a_transaction_each_run_in_a_savepoint_and_a_write_alone_in_none(
    sqlite: SqliteStore,
) -> None:
    statements = traced(sqlite)
    assert queued_behind_a_gate(sqlite, 3) == [3]
    assert statements.count("SAVEPOINT w") == statements.count("RELEASE w") == 3
    statements.clear()

    sqlite.write_sync(lambda repo: repo.set_meta("alone", "written"))
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert not [s for s in statements if "SAVEPOINT" in s or "RELEASE" in s]


def test_a_bulk_load_commits_each_write_alone_without_a_savepoint(sqlite: SqliteStore) -> None:
    statements = traced(sqlite)
    with sqlite.bulk_load():
        assert queued_behind_a_gate(sqlite, 3) == [1, 1, 1]
    assert not [s for s in statements if "SAVEPOINT" in s]
    assert queued_behind_a_gate(sqlite, 3) == [3]  # and after it, they share one again
    assert all(sqlite.read_sync(lambda repo, n=n: repo.get_meta(f"queued-{n}")) for n in range(3))


def in_the_database_file(store: SqliteStore, key: str) -> str | None:
    """``key``'s meta value as the database file alone holds it, without its WAL: what
    checkpoints have copied back."""
    copy = f"{store.path}.copy"
    shutil.copyfile(store.path, copy)
    conn = sqlite3.connect(copy)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.DatabaseError:  # no table yet (the schema is only in the WAL), or a copy
        return None  # taken while a checkpoint was writing: read again
    finally:
        conn.close()
    return None if row is None else str(row[0])


def reaches_the_database_file(store: SqliteStore, key: str, value: str) -> None:
    deadline = time.monotonic() + 10
    while in_the_database_file(store, key) != value:
        assert time.monotonic() < deadline, f"{key}={value} never reached the database file"
        time.sleep(0.05)


def test_the_checkpointer_copies_commits_back_into_the_database_beside_the_writer(
    sqlite: SqliteStore,
) -> None:
    for n in range(20):  # a few pages, far below any autocheckpoint
        sqlite.write_sync(lambda repo, n=n: repo.set_meta("written", str(n)))
    reaches_the_database_file(sqlite, "written", "19")
    assert sqlite.stats["checkpoints"] >= 1


def test_a_bulk_load_leaves_checkpoints_to_the_writer(sqlite: SqliteStore) -> None:
    sqlite.write_sync(lambda repo: repo.set_meta("before", "yes"))
    reaches_the_database_file(sqlite, "before", "yes")
    time.sleep(0.2)  # the checkpointer is done with it
    copied = sqlite.stats["checkpoints"]
    with sqlite.bulk_load():
        sqlite.write_sync(lambda repo: repo.set_meta("loaded", "yes"))
        time.sleep(0.5)  # far longer than the checkpointer's pause after a commit
        assert sqlite.stats["checkpoints"] == copied
        assert in_the_database_file(sqlite, "loaded") is None
    sqlite.write_sync(lambda repo: repo.set_meta("after", "yes"))
    reaches_the_database_file(sqlite, "after", "yes")  # and it takes them up again


def test_a_store_closes_at_once_after_a_write(tmp_path: Path) -> None:
    for n in range(20):  # the checkpointer is waiting for commits to gather, or copying
        store = SqliteStore(str(tmp_path / f"closing-{n}.db"))
        store.write_sync(lambda repo: repo.set_meta("written", "yes"))
        time.sleep(n * 0.005)
        closing = threading.Thread(target=store.close)
        closing.start()
        closing.join(5)
        assert not closing.is_alive(), f"close() still waiting after a write ({n})"


def test_a_server_that_stops_during_a_batch_commits_it_then_closes(tmp_path: Path) -> None:
    """At shutdown the app closes its store on the event loop's thread. A batch in flight holds
    the write lock from its BEGIN, on the commit thread, and needs the loop to reach COMMIT: a
    server stopped under load used to hang there."""
    path = tmp_path / "stopping.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}", admin_token=ADMIN))
    store = app.state.ctx.store
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writes: the batch waits at its BEGIN
    results: list[object] = []

    async def stop_during_a_batch() -> None:
        async with app.router.lifespan_context(app):
            write = asyncio.ensure_future(store.write(lambda repo: repo.set_meta("k", "kept")))
            await asyncio.sleep(0.2)
            threading.Timer(0.2, other.rollback).start()  # the lock is free as the app stops
        results.append(await write)

    stopping = threading.Thread(target=asyncio.run, args=(stop_during_a_batch(),), daemon=True)
    stopping.start()
    stopping.join(20)
    other.close()
    assert not stopping.is_alive(), "closing the store waited for its own batch"
    assert results == [None]
    reopened = SqliteStore(str(path))
    try:
        assert reopened.read_sync(lambda repo: repo.get_meta("k")) == "kept"
    finally:
        reopened.close()


def test_a_loop_batch_takes_a_free_write_lock_on_the_loop_and_commits_on_a_thread(
    sqlite: SqliteStore,
) -> None:
    """Beginning on the loop saves a hand-off to a thread and back per batch (the writes'
    p50 at half load 2.7 -> 2.1 ms); only the fsync leaves the loop."""
    threads: list[str] = []
    statements = traced(sqlite, threads)

    async def write() -> str:
        await sqlite.write(lambda repo: repo.set_meta("k", "v"))
        await sqlite.drained()
        return threading.current_thread().name

    loop_thread = asyncio.run(write())
    assert (statements[0], threads[0]) == ("BEGIN IMMEDIATE", loop_thread)
    assert statements[-1] == "COMMIT" and threads[-1].startswith("recotrack-commit")


def test_a_loop_batch_waits_off_the_loop_for_a_write_lock_another_process_holds(
    sqlite: SqliteStore,
) -> None:
    other = sqlite3.connect(sqlite.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, other.rollback).start()
    ticks = 0

    async def write_while_locked() -> None:
        nonlocal ticks
        write = asyncio.ensure_future(sqlite.write(lambda repo: repo.set_meta("k", "waited")))
        while not write.done():  # the loop runs on while the batch waits for the lock
            ticks += 1
            await asyncio.sleep(0.01)
        await write
        await sqlite.drained()

    started = time.monotonic()
    asyncio.run(write_while_locked())
    other.close()
    assert time.monotonic() - started >= 0.3
    assert ticks >= 10
    assert sqlite.read_sync(lambda repo: repo.get_meta("k")) == "waited"


def test_a_writer_waiting_for_the_write_lock_gives_up_after_its_wait(
    sqlite: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("recotrack.store.sqlite.LOCK_WAIT", 0.2)
    other = sqlite3.connect(sqlite.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="database is locked"):
            sqlite.write_sync(lambda repo: repo.set_meta("k", "never"))
    finally:
        other.rollback()
        other.close()
    assert sqlite.read_sync(lambda repo: repo.get_meta("k")) is None
    sqlite.write_sync(lambda repo: repo.set_meta("k", "later"))
    assert sqlite.read_sync(lambda repo: repo.get_meta("k")) == "later"


def counted(order_no: str, *refs: str) -> Callable[[Repository], None]:
    """A write that counts a new order of ``refs`` into the statistics of site ``s``."""
    lines = [Line(ref, 1, Decimal("1.00")) for ref in refs]
    order = Order(
        "s",
        "online",
        "",
        order_no,
        "EUR",
        Decimal(0),
        Decimal(0),
        Decimal(0),
        lines,
        datetime(2026, 1, 2, tzinfo=UTC),
    )
    return lambda repo: repo.count("s", None, order)


def test_a_reader_that_sees_a_commit_before_the_loop_hears_of_it_ranks_from_memory(
    sqlite: SqliteStore,
) -> None:
    """The rankings move on the commit thread as soon as COMMIT returns. Moved only once the
    loop heard of the commit, the pages read meanwhile (on the loop, between a commit landing
    and its batch's replies) loaded their rankings from the tables and could not keep them."""
    sqlite.write_sync(counted("O1", "P1", "P2"))

    def bought_with_p1(repo: Repository) -> list[tuple[str, int]]:
        return repo.bought_together("s", ["P1"], 10, set())

    assert sqlite.read_sync(bought_with_p1) == [("P2", 1)]  # now held in memory
    before = sqlite.read_sync(lambda repo: repo.get_meta(STAMP_KEY))
    seen: list[object] = []

    def read_before_the_loop_hears(write: asyncio.Future[None]) -> None:
        """On the loop, blocking it: once the commit is in the database, read."""
        deadline = time.monotonic() + 10
        while sqlite.read_sync(lambda repo: repo.get_meta(STAMP_KEY)) == before:
            assert time.monotonic() < deadline, "the commit never landed"
            time.sleep(0.001)
        time.sleep(0.2)  # the commit thread is done with the batch
        statements: list[str] = []

        def traced_read(repo: Repository) -> list[tuple[str, int]]:
            repo.db.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
            try:
                return bought_with_p1(repo)
            finally:
                repo.db.conn.set_trace_callback(None)  # type: ignore[attr-defined]

        seen.extend([sqlite.read_sync(traced_read), statements, write.done()])

    async def write_then_block_the_loop() -> None:
        loop = asyncio.get_running_loop()
        count = counted("O2", "P1", "P3")

        def work(repo: Repository) -> None:
            count(repo)
            loop.call_soon(read_before_the_loop_hears, write)  # after the hand-off to COMMIT

        write = asyncio.ensure_future(sqlite.write(work))
        await write
        await sqlite.drained()

    asyncio.run(write_then_block_the_loop())
    ranked, statements, answered = seen
    assert answered is False
    assert ranked == [("P2", 1), ("P3", 1)]
    assert not [sql for sql in statements if "stat_pairs" in sql], statements


def test_a_loop_batch_is_answered_before_the_next_batch_runs(sqlite: SqliteStore) -> None:
    """The next batch takes the writes that arrived during a commit; the committed batch's
    requests go on (to their replies) first, and it waits for none of their work."""
    events: list[str] = []

    def noted(tag: str, then: Callable[[], object] = lambda: None) -> Callable[[Repository], None]:
        def work(repo: Repository) -> None:
            events.append(f"{tag} ran")
            repo.set_meta(tag, tag)
            then()

        return work

    async def two_batches() -> None:
        second: list[asyncio.Future[None]] = []

        async def write(tag: str, then: Callable[[], object] = lambda: None) -> None:
            await sqlite.write(noted(tag, then))
            events.append(f"{tag} answered")

        def during_the_first_commit() -> None:
            second.append(asyncio.ensure_future(write("B")))

        await write("A", during_the_first_commit)
        await second[0]
        await sqlite.drained()

    asyncio.run(two_batches())
    assert events == ["A ran", "A answered", "B ran", "B answered"]
