"""The PostgreSQL adapter on its own: group commit, a write failing alone, conflicts between
two stores (as two replicas) retried and never shown, overload, and read-after-write."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from psycopg import pq

from recotrack.domain.errors import ApiError
from recotrack.domain.orders import ONLINE, CancelItem, Line, Order
from recotrack.domain.sessions import Session
from recotrack.domain.sites import Site, SiteSettings
from recotrack.services.check import check_site
from recotrack.services.commands import OnlineCancel
from recotrack.services.orders import Cancelled, Context, cancel_order, place_order
from recotrack.services.sites import create_site, load_site, update_site
from recotrack.services.tracking import cancel_online
from recotrack.store.db import StoreError
from recotrack.store.postgres import PostgresStore
from recotrack.store.postgres_writer import MAX_WRITES
from recotrack.store.repository import Repository

from .conftest import POSTGRES_URL, postgres_schema_url
from .test_site_versions import cancellations, switch_on_then_refuse
from .test_writers import broken, refused

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="PostgreSQL tests need RECOTRACK_TEST_POSTGRES_URL (.ci/run sets it)"
)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def url() -> Iterator[str]:
    yield from postgres_schema_url(POSTGRES_URL)


@pytest.fixture
def two(url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database: what two replicas are to each other."""
    a, b = PostgresStore(url), PostgresStore(url)
    yield a, b
    a.close()
    b.close()


@contextmanager
def one_writer(url: str, **options: Any) -> Iterator[tuple[PostgresStore, list[int]]]:
    """A store with one writer connection, so the writes queued behind a ``Gate`` share its
    next transaction, and the number of writes in each transaction it commits; closed after."""
    store = PostgresStore(url, writers=1, **options)
    sizes: list[int] = []
    store.on_batch = sizes.append
    try:
        yield store, sizes
    finally:
        store.close()


class Gate:
    """A write that holds its writer until opened, so the next writes queue up as one batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, repo: Repository) -> None:
        self.entered.set()
        assert self.opened.wait(10)


def gate_held(store: PostgresStore) -> Gate:
    """A ``Gate`` submitted to ``store`` once it holds the writer."""
    gate = Gate()
    store.submit(gate)
    assert gate.entered.wait(10)
    return gate


def lock_held(store: PostgresStore, key: str) -> tuple[Future[None], threading.Event]:
    """``store``'s write holding the lock of order key ``key`` until the event is set."""
    held, release = threading.Event(), threading.Event()

    def hold(repo: Repository) -> None:
        lock_key(repo, key)
        held.set()
        assert release.wait(10)

    holding = store.submit(hold)
    assert held.wait(10)
    return holding, release


def order(order_no: str, *lines: tuple[str, int, str]) -> Order:
    subtotal = sum((Decimal(price) * qty for _, qty, price in lines), Decimal(0))
    return Order(
        site="shop",
        source=ONLINE,
        channel="web",
        order_no=order_no,
        currency="GBP",
        subtotal=subtotal,
        shipping=Decimal(0),
        total=subtotal,
        lines=[Line(ref, qty, Decimal(price)) for ref, qty, price in lines],
        ordered_at=NOW,
        cuid="c-1",
    )


def with_site(fn: Callable[[Repository, Site], Any]) -> Callable[[Repository], Any]:
    return lambda repo: fn(repo, load_site(repo, "shop"))


def make_shop(store: PostgresStore) -> None:
    store.write_sync(lambda repo: create_site(repo, "shop", NOW, SiteSettings(cancellations=True)))


def lock_key(repo: Repository, key: str) -> None:
    """Take the lock of an order key, and wait until it is held: a writer sends the lock
    without waiting for it, so without a read after it the lock may still be on its way."""
    repo.lock_order_key("shop", ONLINE, "", key)
    repo.db.one("SELECT 1")


def test_partial_cancels_through_two_stores_take_each_unit_exactly_once(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    make_shop(a)
    a.write_sync(with_site(lambda r, s: place_order(r, s, order("O1", ("P", 30, "2.00")), NOW)))

    def cancel_one(repo: Repository, site: Site) -> Cancelled:
        return cancel_order(
            repo, site, ONLINE, "", "O1", [CancelItem("P", 1)], Context(reason="storm"), NOW
        )

    futures = [(a if n % 2 else b).submit(with_site(cancel_one)) for n in range(40)]
    done, refused = 0, 0
    for future in futures:
        try:
            future.result(30)
            done += 1
        except ApiError as error:
            assert error.code == "QuantityExceedsRemaining"
            refused += 1
    assert (done, refused) == (30, 10)
    stored = b.read_sync(lambda repo: repo.find_order("shop", ONLINE, "", "O1", lock=False))
    assert stored is not None and stored.lines[0].cancelled == 30
    events = b.read_sync(lambda repo: repo.order_events("shop", stored.id or 0))
    assert [e.kind for e in events].count("line-cancelled") == 30
    assert a.read_sync(lambda reads: check_site(reads, "shop")) == []
    assert a.stats["writes"] + b.stats["writes"] == 42  # the site, the order, 40 cancels


def test_two_stores_inserting_the_same_new_row_retry_and_the_loser_sees_the_winner(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """Both find no site, both insert it: the second insert violates the key; it is run again,
    finds the site and answers 409 as it would have in turn. The unique violation never shows."""
    start = threading.Barrier(2)
    runs: list[str] = []

    def racing(name: str) -> Callable[[Repository], Any]:
        def work(repo: Repository) -> Any:
            runs.append(name)
            if runs.count(name) == 1:
                assert repo.get_site("shop") is None
                start.wait(10)  # both have looked and found nothing
                repo.insert_site(Site("shop", SiteSettings(), NOW))
                return name
            return create_site(repo, "shop", NOW)  # a run again: sees the winner's site

        return work

    results: list[Any] = []
    for future in [a_or_b.submit(racing(n)) for a_or_b, n in zip(two, "ab", strict=True)]:
        try:
            results.append(future.result(30))
        except ApiError as error:
            results.append(error.status)
    assert sorted(map(str, results)) in (["409", "a"], ["409", "b"])
    assert len(runs) == 3
    assert sum(store.stats["conflicts"] for store in two) == 1


def test_a_deadlock_between_two_stores_is_run_again_and_both_writes_succeed(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    start = threading.Barrier(2)
    runs: list[str] = []

    def crossing(name: str, first: str, second: str) -> Callable[[Repository], str]:
        def work(repo: Repository) -> str:
            runs.append(name)
            lock_key(repo, first)
            if runs.count(name) == 1:
                start.wait(10)  # each holds one key and now wants the other's
            lock_key(repo, second)
            return name

        return work

    a, b = two
    fa = a.submit(crossing("a", "X", "Y"))
    fb = b.submit(crossing("b", "Y", "X"))
    assert (fa.result(30), fb.result(30)) == ("a", "b")
    assert len(runs) == 3  # the one PostgreSQL chose as the victim ran twice
    assert a.stats["conflicts"] + b.stats["conflicts"] == 1


def test_a_write_waiting_for_another_stores_lock_lets_its_batch_commit_first(url: str) -> None:
    """The writes before it are committed (their futures resolve while the lock is still held
    elsewhere); it then heads the next transaction and waits as long as needed."""
    with one_writer(url) as (holder, _), one_writer(url) as (store, sizes):
        holding, release = lock_held(holder, "X")
        gate = gate_held(store)
        first = store.submit(lambda repo: repo.set_meta("first", "1"))
        blocked = store.submit(lambda repo: (lock_key(repo, "X"), repo.set_meta("blocked", "1")))
        gate.opened.set()
        first.result(10)
        assert holder.read_sync(lambda repo: repo.get_meta("first")) == "1"
        assert not blocked.done()
        release.set()
        blocked.result(10)
        holding.result(10)
        assert store.read_sync(lambda repo: repo.get_meta("blocked")) == "1"
        assert sizes == [1, 1, 1]


def test_in_one_batch_a_failing_write_rolls_back_alone(url: str) -> None:
    with one_writer(url) as (store, sizes):
        gate = gate_held(store)
        futures: list[Future[Any]] = [
            store.submit(lambda repo: repo.set_meta("k0", "0")),
            store.submit(lambda repo: repo.set_meta("k1", "1")),
            store.submit(refused("k2")),
            store.submit(broken("k3")),
            store.submit(lambda repo: repo.set_meta("k4", "4")),
        ]
        gate.opened.set()
        for n in (0, 1, 4):
            futures[n].result(10)
        with pytest.raises(ApiError, match="refused"):
            futures[2].result(10)
        with pytest.raises(StoreError, match="no_such_column") as failed:
            futures[3].result(10)
        assert type(failed.value.__cause__).__module__.startswith("psycopg")
        stored = store.read_sync(lambda repo: [repo.get_meta(f"k{n}") for n in range(5)])
        assert stored == ["0", "1", None, None, "4"]
        assert sizes == [1, 5]


def test_one_transaction_takes_at_most_max_writes_so_order_locks_stay_few(url: str) -> None:
    with one_writer(url, max_batch=512) as (store, sizes):
        gate = gate_held(store)
        futures = [
            store.submit(lambda repo, n=n: lock_key(repo, f"K{n}")) for n in range(MAX_WRITES + 10)
        ]
        gate.opened.set()
        for future in futures:
            future.result(10)
        assert sizes == [1, MAX_WRITES, 10]


def test_a_full_write_queue_answers_overloaded(url: str) -> None:
    with one_writer(url, max_queue=2) as (store, _):
        gate = gate_held(store)
        queued = [store.submit(lambda repo: repo.set_meta("k", "v")) for _ in range(2)]
        with pytest.raises(ApiError) as refused:
            store.submit(lambda repo: repo.set_meta("k", "lost"))
        assert (refused.value.code, refused.value.status) == ("Overloaded", 503)
        gate.opened.set()
        for future in queued:
            future.result(10)
        assert store.read_sync(lambda repo: repo.get_meta("k")) == "v"


def test_a_write_through_one_store_is_seen_by_the_next_read_through_the_other(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    for n in range(20):
        writer, reader = (a, b) if n % 2 else (b, a)
        writer.write_sync(lambda repo, n=n: repo.set_meta("counter", str(n)))
        assert reader.read_sync(lambda repo: repo.get_meta("counter")) == str(n)


def test_an_unreachable_database_is_a_store_error_that_shows_no_password() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as failed:
        PostgresStore("postgresql://recotrack:s3cret-pw@127.0.0.1:1/recotrack?connect_timeout=2")
    assert "s3cret-pw" not in str(failed.value)
    assert time.monotonic() - started < 10


# -- pipelined writes: each write's errors are its own, and it waits on the server rarely --


class TracedStore(PostgresStore):
    """A store whose writer connections log their messages to the server (libpq's trace)."""

    def __init__(self, url: str, trace_dir: Path, **kwargs: Any) -> None:
        self.trace_dir = trace_dir
        self.traces: list[IO[str]] = []
        super().__init__(url, **kwargs)

    def connect_writer(self) -> psycopg.Connection[Any]:
        conn = super().connect_writer()
        trace = (self.trace_dir / f"writer-{len(self.traces)}.trace").open("w")
        self.traces.append(trace)
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        return conn

    def waits(self) -> int:
        """How many times the writers have waited on the server: every Sync, Flush (pipeline
        mode) and simple Query message is followed by a wait for its results."""
        sent = [
            line.split("\t")
            for trace in self.traces
            for line in Path(trace.name).read_text().splitlines()
        ]
        return sum(1 for fields in sent if fields[0] == "F" and fields[2] in WAITED_ON)

    def close(self) -> None:
        super().close()
        for trace in self.traces:
            trace.close()


WAITED_ON = {"Sync", "Flush", "Query"}


def test_an_error_in_a_writes_unread_statement_fails_that_write_not_the_next(url: str) -> None:
    """The INSERT is sent without waiting for its outcome; the outcome is waited for before
    the next write starts, so the next write neither fails nor sees the failed one's change."""
    with one_writer(url) as (store, sizes):
        gate = gate_held(store)

        def bad(repo: Repository) -> None:
            repo.set_meta("bad", "written, then rolled back")
            repo.db.execute("INSERT INTO meta (key, value) VALUES (NULL, 'no key')")

        futures: list[Future[Any]] = [
            store.submit(lambda repo: repo.set_meta("k0", "0")),
            store.submit(bad),
            store.submit(lambda repo: (repo.get_meta("bad"), repo.set_meta("k2", "2"))[0]),
        ]
        gate.opened.set()
        futures[0].result(10)
        with pytest.raises(StoreError, match="null value"):
            futures[1].result(10)
        assert futures[2].result(10) is None
        stored = store.read_sync(lambda repo: [repo.get_meta(k) for k in ("k0", "bad", "k2")])
        assert stored == ["0", None, "2"]
        assert sizes == [1, 3]


def test_a_unique_violation_in_a_writes_unread_insert_runs_it_again_after_the_writes_before_it(
    url: str,
) -> None:
    with one_writer(url) as (store, sizes):
        store.write_sync(lambda repo: repo.set_meta("taken", "first"))
        gate = gate_held(store)
        runs: list[int] = []

        def insert_twice(repo: Repository) -> str | None:
            runs.append(1)
            if len(runs) <= 2:  # its outcome is only known at the write's sync
                repo.db.execute("INSERT INTO meta (key, value) VALUES ('taken', 'again')")
                return "inserted"
            return repo.get_meta("taken")

        futures: list[Future[Any]] = [
            store.submit(lambda repo: repo.set_meta("k0", "0")),
            store.submit(insert_twice),
            store.submit(lambda repo: repo.set_meta("k2", "2")),
        ]
        gate.opened.set()
        assert [future.result(10) for future in futures] == [None, "first", None]
        # Run bare, the violation came with the COMMIT; run again with savepoints, it came
        # with the write's own sync: k0 committed alone, the write then headed a transaction
        # with k2.
        assert len(runs) == 3
        assert sizes == [1, 1, 1, 2]


def test_a_batch_of_whole_order_cancels_waits_on_the_server_once_a_cancel(
    url: str, tmp_path: Path
) -> None:
    """The lock and the order with its lines, then the update, the lines and the event sent
    together, with no savepoint and no sync between writes: one wait per cancel (the order's
    read), and two per transaction."""
    with closing(TracedStore(url, tmp_path, writers=1)) as store:
        make_shop(store)
        count = 20
        for n in range(count):
            store.write_sync(
                with_site(
                    lambda r, s, n=n: place_order(
                        r, s, order(f"W{n}", ("P", 2, "1.00"), ("Q", 1, "3.00")), NOW
                    )
                )
            )
        gate = gate_held(store)
        before = store.waits()

        def cancel(order_no: str) -> Callable[[Repository, Site], Cancelled]:
            return lambda repo, site: cancel_order(
                repo, site, ONLINE, "", order_no, None, Context(), NOW
            )

        futures = [store.submit(with_site(cancel(f"W{n}"))) for n in range(count)]
        gate.opened.set()
        assert {future.result(10).state.value for future in futures} == {"cancelled"}
        assert store.waits() - before <= count + 4
        assert store.read_sync(lambda reads: check_site(reads, "shop")) == []


def test_cancel_pagex_checks_its_session_without_a_wait_of_its_own(
    url: str, tmp_path: Path
) -> None:
    """The session is marked seen and the order read before either answer is waited for: a
    batch of session-checked cancels waits no more than plain ones. A cancel in a session the
    server does not know is refused in the same batch (run again, each write in a savepoint)
    and changes nothing."""
    with closing(TracedStore(url, tmp_path, writers=1)) as store:
        make_shop(store)
        session = Session("shop", "S1|1", "cuid-1", NOW, NOW)
        store.write_sync(lambda repo: repo.save_session(session))
        count = 20
        for order_no in [*(f"W{n}" for n in range(count + 2)), "KEPT"]:
            store.write_sync(
                with_site(lambda r, s, o=order_no: place_order(r, s, order(o, ("P", 1, "2")), NOW))
            )

        def cancel(order_no: str, session_id: str) -> Callable[[Repository], Cancelled]:
            request = OnlineCancel("v1_4", "shop", session_id, "cuid-1", order_no)
            return lambda repo: cancel_online(repo, request, NOW)

        gate = gate_held(store)
        before = store.waits()
        futures = [store.submit(cancel(f"W{n}", "S1|1")) for n in range(count)]
        gate.opened.set()
        assert {future.result(10).state.value for future in futures} == {"cancelled"}
        assert store.waits() - before <= count + 4

        gate = gate_held(store)
        futures = [store.submit(cancel(f"W{n}", "S1|1")) for n in (count, count + 1)]
        refused = store.submit(cancel("KEPT", "S9|9"))
        gate.opened.set()
        assert {future.result(10).state.value for future in futures} == {"cancelled"}
        with pytest.raises(ApiError) as error:
            refused.result(10)
        assert error.value.code == "SessionNotRecognized"
        kept = store.read_sync(lambda reads: reads.find_order("shop", ONLINE, "", "KEPT", False))
        assert kept is not None and kept.state.value == "placed"
        assert store.read_sync(lambda reads: check_site(reads, "shop")) == []


# -- a server's writes: on its event loop's thread, the writer threads taking over trouble --


def test_a_loop_write_that_meets_a_lock_held_elsewhere_is_run_by_a_writer_thread(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """The loop's writer waits at most LOCK_WAIT for a lock (the loop serves no one while it
    waits); the write is then a writer thread's, which waits as long as needed."""
    a, b = two
    make_shop(a)
    a.write_sync(with_site(lambda r, s: place_order(r, s, order("L1", ("P", 1, "2")), NOW)))
    holder, release = lock_held(b, "L1")
    threads: list[threading.Thread] = []

    def cancel(repo: Repository) -> Cancelled:
        threads.append(threading.current_thread())
        return cancel_order(repo, load_site(repo, "shop"), ONLINE, "", "L1", None, Context(), NOW)

    async def main() -> Cancelled:
        task = asyncio.ensure_future(a.write(cancel))
        await asyncio.sleep(0.3)
        assert not task.done()
        release.set()
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(main()).state.value == "cancelled"
    holder.result(10)
    assert threads[0] is threading.main_thread()  # the loop's writer tried first
    assert threads[-1] is not threading.main_thread()
    assert a.stats["conflicts"] >= 1


class NotedPuts:
    """Writes of meta keys, each noting the thread it ran on (``asyncio.run`` runs the loop
    on the main thread)."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def put(self, key: str, cut: bool = False) -> Callable[[Repository], None]:
        """``cut``: on the write's first run, the server ends its session."""
        runs = 0

        def work(repo: Repository) -> None:
            nonlocal runs
            runs += 1
            self.threads.append(threading.current_thread())
            if cut and runs == 1:
                repo.db.one("SELECT pg_terminate_backend(pg_backend_pid())")
            repo.set_meta(key, "kept")

        return work

    def on_loop(self) -> list[bool]:
        return [thread is threading.main_thread() for thread in self.threads]


def test_a_loop_batch_that_lost_its_connection_is_run_by_a_writer_thread(url: str) -> None:
    """A server's writes run on its loop's thread. A batch whose connection is lost on the
    way is run again by a writer thread, and the loop's writer connects again."""
    with closing(PostgresStore(url, writers=1)) as store:
        puts = NotedPuts()

        async def main() -> None:
            for write in (puts.put("k1"), puts.put("k2", cut=True), puts.put("k3")):
                await store.write(write)

        asyncio.run(main())
        assert puts.on_loop() == [True, True, False, True]
        stored = store.read_sync(lambda repo: [repo.get_meta(k) for k in ("k1", "k2", "k3")])
        assert stored == ["kept"] * 3


def test_the_loop_writer_connects_again_after_a_restart_between_batches(url: str) -> None:
    """Sessions ended while idle (a restart, a fail-over) are found before the next batch
    starts: its writes run on the loop on a new connection, without an error or a doubt
    whether they were committed."""
    with closing(PostgresStore(url, writers=1)) as store:
        puts = NotedPuts()

        async def main() -> None:
            await store.write(puts.put("k1"))
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'recotrack' AND pid <> pg_backend_pid()"
                )
            time.sleep(0.2)  # the sessions' ends reach their sockets
            await store.write(puts.put("k2"))

        asyncio.run(main())
        assert puts.on_loop() == [True, True]
        stored = store.read_sync(lambda repo: [repo.get_meta(k) for k in ("k1", "k2")])
        assert stored == ["kept"] * 2


class RefusingStore(PostgresStore):
    """A store whose next ``refusals`` writer connections are refused, as by a server that
    is down."""

    refusals = 0
    attempts = 0

    def connect_writer(self) -> psycopg.Connection[Any]:
        self.attempts += 1
        if self.refusals:
            self.refusals -= 1
            raise psycopg.OperationalError("connection refused (by the test)")
        return super().connect_writer()


def test_after_the_loop_writer_fails_to_connect_the_threads_write_for_a_while(url: str) -> None:
    """A server that cannot reach the database does not try again before every batch (each
    try can take the whole connect timeout): for RECONNECT_PAUSE its batches go straight to
    the writer threads, which retry as they always have."""
    with closing(RefusingStore(url, writers=1)) as store:
        puts = NotedPuts()

        async def main() -> None:
            store.refusals = 1  # the loop's writer connects first: it is refused
            await store.write(puts.put("k1"))
            await store.write(puts.put("k2"))

        asyncio.run(main())
        assert store.attempts == 2  # the loop's writer once, the writer thread once
        assert puts.on_loop() == [False, False]
        stored = store.read_sync(lambda repo: [repo.get_meta(k) for k in ("k1", "k2")])
        assert stored == ["kept"] * 2


def test_held_cancellations_purged_by_a_pipelined_write_are_counted(url: str) -> None:
    with one_writer(url) as (store, _):
        make_shop(store)
        for order_no in ("H1", "H2"):
            store.write_sync(
                with_site(
                    lambda r, s, n=order_no: cancel_order(r, s, ONLINE, "", n, None, Context(), NOW)
                )
            )
        later = NOW + timedelta(days=365)
        assert store.write_sync(lambda repo: repo.purge_expired_held("shop", later)) == 2
        assert store.write_sync(lambda repo: repo.purge_expired_held("shop", later)) == 0


def test_in_one_batch_a_site_change_is_seen_by_the_writes_after_it_unless_rolled_back(
    url: str,
) -> None:
    """As in ``test_site_versions``, with one writer held so that the five are one batch."""
    with one_writer(url) as (store, sizes):
        make_shop(store)
        gate = gate_held(store)
        futures: list[Future[Any]] = [
            store.submit(cancellations),
            store.submit(lambda repo: update_site(repo, "shop", {"cancellations": False})),
            store.submit(cancellations),
            store.submit(switch_on_then_refuse),
            store.submit(cancellations),
        ]
        gate.opened.set()
        with pytest.raises(ApiError, match="refused"):
            futures[3].result(10)
        assert [futures[n].result(10) for n in (0, 2, 4)] == [True, False, False]
        assert sizes[-1] == 5
