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
from pathlib import Path

import pytest

from recotrack.domain.errors import ApiError
from recotrack.http.app import create_app
from recotrack.settings import Settings
from recotrack.store import Store
from recotrack.store.db import StoreError
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


def traced(store: Store) -> list[str]:
    """The statements the writer's connection runs from now on."""
    statements: list[str] = []
    store.write_sync(lambda repo: repo.db.conn.set_trace_callback(statements.append))  # type: ignore[attr-defined]
    statements.clear()
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
