"""``recotrack import FILE``: orders, offline orders and cancellations from JSON Lines.

One JSON object per line, in the order the changes happened (blank lines are skipped):

- ``{"type": "order", "site", "channel"?, "session"?, "cuid"?, "user"?: {"id"}, "order": {...}}``:
  an online order; ``order`` is rest.pagex's (``orderNo``, ``items``, ``currency``,
  ``subtotal``, ``shipping``, ``total``) plus an optional ``orderDate`` (default: now);
- ``{"type": "offline", "site", "channel", "user"?, "order": {...}}``: an offline order; ``user``
  and ``order`` are the smart API's POST body;
- ``{"type": "cancel", "site", "orderNo", "items"?: [{"refCode", "qty"?}], "reason"?, "session"?,
  "cuid"?}``: cancel an online order, whole or (with ``items``) lines of it;
- ``{"type": "offline-cancel", "site", "channel", "orderNo", "items"?, "reason"?}``: the same for
  an offline order.

Every record is decided by the same services as HTTP (``place_order``, ``cancel_order``: held
cancellations, re-sends, updates, conflicts, the read model), without the HTTP transport and its
per-request credentials: whoever runs the command owns the database. A record that fails is
reported with its line number and changes nothing; the others are still loaded.

Import is idempotent: a re-run of the same file changes nothing. An order sent again with the
same content is left alone (as on HTTP); a whole cancellation of a cancelled order does nothing;
and a partial cancellation in a file says how many units of a line are cancelled *in all*
(``qty``, default: all of them), so a line already cancelled that far is left alone and a held
cancellation is held once.

Lines are parsed on a process of their own (``recotrack.import_records``), forked before the
store opens, while the store's writer applies the lines before them. Records are applied in
file order, many to a transaction (``--batch`` lines; the first transactions smaller, so that
the writer starts sooner, and the file's last lines in quarters of a batch, so that little is
left to apply once the last line is parsed), and a record that fails is rolled back alone: a
savepoint is taken around each record that runs a statement. On SQLite, where no other
transaction runs beside the import's, the keys of a transaction are looked up together and new
orders are written many to a statement: their rows wait until a statement could need to see
them or the transaction ends, and a record that fails drops its own. An order whose key holds
nothing (no order, no held cancellation) and whose site counts it as the parsing process took
it (the crowd) is stored from the rows that process prepared, with the statistics it summed;
any other order backs out of that sum and is placed by ``place_order``. The statistics of a
transaction are summed and written once at its end; nothing in a write reads them back.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import IO, Any

from .domain.errors import ApiError
from .domain.orders import OFFLINE, CancelItem, HeldCancel, Order
from .domain.sites import Site
from .domain.stats import Delta
from .import_records import Chunk, Entry, Key, NewOrder, Record, entries, parse_chunk, totals
from .import_records import record as decoded
from .services.orders import (
    CONFLICT,
    MAX_HELD_PER_SITE,
    cancel_order,
    place_order,
    require_cancellations,
)
from .store import Store
from .store.db import Db, iso
from .store.repository import NewRows, Repository, new_order_rows

BATCH = 20_000  # lines per transaction on SQLite
EDGE = 1_000  # lines of an import's first transaction, and of its last at most
# On PostgreSQL every record takes a transaction-scoped advisory lock on its order key, and
# the server's lock table holds a few thousand (max_locks_per_transaction x connections).
POSTGRES_BATCH = 500
IN_FLIGHT = 2  # SQLite: batches queued at once, so the writer has the next when one commits
PARSED_AHEAD = 2  # chunks of lines parsed ahead of the one the writer is given
COLLECTIONS = (1_000_000, 10, 10)  # gc thresholds while importing (default 700, 10, 10)
_KEYS_PER_QUERY = 500


# -- outcomes -----------------------------------------------------------------------------


@dataclass
class Summary:
    """What an import did, by outcome; ``errors`` are (line number, code, message)."""

    lines: int = 0
    order_lines: int = 0  # order lines (items) in the records that created or updated orders
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def add(self, other: Summary) -> None:
        """Count ``other``'s lines and outcomes too."""
        self.lines += other.lines
        self.order_lines += other.order_lines
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count
        self.errors += other.errors


CREATED, SAME, UPDATED = "created", "same", "updated"
CANCELLED, HELD, UNCHANGED = "cancelled", "held", "unchanged"


# -- applying: a batch of records in one transaction --------------------------------------


class BulkRepository(Repository):
    """The repository of one import transaction.

    Keys looked up once for the whole batch: an order or held cancellation known to be absent
    is not asked for again (until this transaction adds one). The records' changes of the
    statistics are kept and handed to the store's repository at the end of the batch, which
    counts them into one total, with the sums of prepared orders (``sums``).

    Each record runs between ``begin`` and ``keep`` (it succeeded) or ``discard`` (it failed:
    what it did is undone). With ``buffered`` (a store with one writer, whose transactions
    never run side by side) a new order is not inserted at once: it gets the id the database
    would give it and its rows wait, to be written many to a statement before the next
    statement of any kind (which might need to see them) or at the end. A record's savepoint
    is then taken at its first statement, after the rows of the records before it are written:
    a record that only places new orders runs no statement at all. Without ``buffered``
    every record has its savepoint from the start.
    """

    def __init__(self, outer: Repository, buffered: bool = False) -> None:
        super().__init__(_Announced(outer.db, self._before_statement) if buffered else outer.db)
        self.outer = outer
        self.buffered = buffered
        self.no_order: set[Key] = set()
        self.no_held: set[Key] = set()
        self.changes: list[tuple[str, Order | None, Order | None]] = []  # to ``outer`` at the end
        self.sums: dict[str, Delta] = {}  # prepared orders' statistics, handed over first
        self.changes_kept = 0  # the first ones are those of records that succeeded
        # Rows of new orders not written yet; the first ``kept`` of each list are those of
        # records that succeeded, the rest the current record's.
        self.order_rows: list[tuple[Any, ...]] = []
        self.line_rows: list[tuple[Any, ...]] = []
        self.event_rows: list[tuple[Any, ...]] = []
        self.kept = (0, 0, 0)
        self.next_id = 0  # the id of the next new order; 0 until the first one is placed
        self.first_id = 0  # the id of the current record's first new order
        self.in_record = False
        self.savepoint = False

    def prefetch(self, keys: Iterable[Key]) -> None:
        raw = self.outer.db  # before any record: nothing to write, no savepoint to take
        groups: dict[tuple[str, str, str], set[str]] = {}
        for site, source, channel, order_no in keys:
            groups.setdefault((site, source, channel), set()).add(order_no)
        for (site, source, channel), numbers in groups.items():
            wanted = sorted(numbers)
            found_orders: set[str] = set()
            found_held: set[str] = set()
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                part = wanted[start : start + _KEYS_PER_QUERY]
                marks = ", ".join("?" for _ in part)
                where = f"site = ? AND source = ? AND channel_key = ? AND order_no IN ({marks})"
                params = (site, source, channel, *part)
                found_orders.update(
                    row[0] for row in raw.all(f"SELECT order_no FROM orders WHERE {where}", params)
                )
                found_held.update(
                    row[0]
                    for row in raw.all(f"SELECT order_no FROM held_cancels WHERE {where}", params)
                )
            self.no_order.update((site, source, channel, n) for n in numbers - found_orders)
            self.no_held.update((site, source, channel, n) for n in numbers - found_held)

    # -- one record ------------------------------------------------------------------------

    def begin(self) -> None:
        """A record starts."""
        self.in_record = True
        self.first_id = self.next_id
        if not self.buffered:
            self._take_savepoint()

    def keep(self) -> None:
        """The record succeeded: its rows and statistics join the batch's."""
        if self.savepoint:
            self.outer.db.execute("RELEASE import_record")
        self.in_record = self.savepoint = False
        self.kept = (len(self.order_rows), len(self.line_rows), len(self.event_rows))
        self.changes_kept = len(self.changes)

    def discard(self) -> None:
        """The record failed: nothing of it stays."""
        if self.savepoint:
            self.outer.db.execute("ROLLBACK TO import_record")
            self.outer.db.execute("RELEASE import_record")
        self.in_record = self.savepoint = False
        orders, lines, events = self.kept
        del self.order_rows[orders:], self.line_rows[lines:], self.event_rows[events:]
        self.next_id = self.first_id  # its orders, written or not, are gone
        del self.changes[self.changes_kept :]

    def place_new(self, key: Key, new: NewOrder) -> bool:
        """Store a prepared order, as a record of its own, if this batch knows that nothing is
        stored or held under its key; False, with nothing done, otherwise."""
        if not self.buffered or key not in self.no_order or key not in self.no_held:
            return False
        self.begin()
        self.no_order.discard(key)
        _, order_row, lines, events = new
        self._add_rows(key[0], self._new_id(), (order_row, lines, events))
        self.keep()
        return True

    def uncount(self, site: str, order: Order) -> None:
        """Take a prepared order back out of ``sums`` (between records: whatever becomes of
        the record that places it now, this stays)."""
        assert not self.in_record
        self.changes.append((site, order, None))
        self.changes_kept = len(self.changes)

    def flush(self) -> None:
        """At the end of the batch: the rows still waiting, then the statistics."""
        self._write_rows()
        for site, total in self.sums.items():
            self.outer.count_sum(site, total)
        for site, before, after in self.changes:
            self.outer.count(site, before, after)
        self.sums = {}
        self.changes.clear()

    def _before_statement(self) -> None:
        """Whatever runs next sees every order placed so far, and the current record's
        changes stay inside its savepoint."""
        if self.in_record and not self.savepoint:
            self._write_rows(kept_only=True)
            self._take_savepoint()
        self._write_rows()

    def _take_savepoint(self) -> None:
        self.outer.db.execute("SAVEPOINT import_record")
        self.savepoint = True

    def _write_rows(self, kept_only: bool = False) -> None:
        """Write the waiting rows: those of the records that succeeded, or all."""
        if kept_only:
            orders, lines, events = self.kept
        else:
            orders, lines, events = map(len, (self.order_rows, self.line_rows, self.event_rows))
        if orders or lines or events:
            self.outer.insert_new_orders(
                self.order_rows[:orders], self.line_rows[:lines], self.event_rows[:events]
            )
            del self.order_rows[:orders], self.line_rows[:lines], self.event_rows[:events]
        self.kept = (0, 0, 0)

    # -- the repository ----------------------------------------------------------------------

    def find_order(
        self, site: str, source: str, channel_key: str, order_no: str, lock: bool = True
    ) -> Order | None:
        if (site, source, channel_key, order_no) in self.no_order:
            return None
        return super().find_order(site, source, channel_key, order_no, lock)

    def insert_order(self, order: Order, now: datetime) -> None:
        self.no_order.discard((order.site, order.source, order.key_channel, order.order_no))
        if not self.buffered:
            super().insert_order(order, now)
            return
        order.id = self._new_id()
        self._add_rows(order.site, order.id, new_order_rows(order, iso(now), self.db.dialect.money))

    def _new_id(self) -> int:
        if not self.next_id:  # read on the store's connection: no rows wait yet
            self.next_id = self.outer.next_order_id()
        self.next_id += 1
        return self.next_id - 1

    def _add_rows(self, site: str, order_id: int, rows: NewRows) -> None:
        order_row, lines, events = rows
        self.order_rows.append((order_id, *order_row))
        head = (site, order_id)
        self.line_rows += [head + values for values in lines]
        self.event_rows += [head + values for values in events]

    def held_for(
        self, site: str, source: str, channel_key: str, order_no: str, now: datetime
    ) -> list[HeldCancel]:
        if (site, source, channel_key, order_no) in self.no_held:
            return []
        return super().held_for(site, source, channel_key, order_no, now)

    def insert_held(self, held: HeldCancel) -> None:
        self.no_held.discard((held.site, held.source, held.channel, held.order_no))
        super().insert_held(held)

    def count(self, site: str, before: Order | None, after: Order | None) -> None:
        self.changes.append((site, before, after))


class _Announced(Db):
    """The store's connection, calling ``before`` ahead of each statement.

    ``before`` is a method of the repository that holds this connection, so it is held weakly:
    the two would otherwise make a cycle, which only the cycle collector frees, and an import
    runs that rarely (``COLLECTIONS``)."""

    def __init__(self, db: Db, before: Callable[[], None]) -> None:
        self.__dict__.update(db.__dict__)  # whatever the store's ``Db`` carries
        self._before = weakref.WeakMethod(before)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._announce()
        return super().execute(sql, params)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._announce()
        super().many(sql, rows)

    def _announce(self) -> None:
        before = self._before()
        assert before is not None, "a repository's connection outlived it"
        before()


def apply_batch(
    chunk: Chunk,
    now: datetime,
    repo: Repository,
    prefetch: bool = True,
    max_held: int = MAX_HELD_PER_SITE,
    buffered: bool | None = None,
) -> Summary:
    """Apply the chunk's records in order inside the store's transaction, each alone: the
    outcomes, and the records that failed as errors.

    ``prefetch`` is only for a store whose transactions never run side by side (SQLite's one
    writer): an order another transaction is placing would otherwise be taken as absent. New
    orders are then written many to a statement too, and prepared ones taken as prepared,
    unless ``buffered`` is False.

    Each run builds the records afresh (the services change the orders they place).

    A record that raises ``ApiError`` is rolled back alone and reported; a database error
    fails the whole batch (the store reports it, and on PostgreSQL runs it again after a
    conflict: this function decides only from what it reads).
    """
    bulk = BulkRepository(repo, buffered=prefetch if buffered is None else buffered)
    batch = entries(chunk.records)
    if prefetch:
        bulk.prefetch(entry.key for entry in batch)
    bulk.sums = totals(chunk)
    sites: dict[str, Site | None] = {}
    summary = Summary()
    outcomes = summary.outcomes
    for entry in batch:
        if entry.new is not None and _place_prepared(bulk, sites, entry):
            outcomes[CREATED] = outcomes.get(CREATED, 0) + 1
            summary.order_lines += len(entry.new[2])
            continue
        record = decoded(entry, now)
        if entry.new is not None:  # out of the sum, placed below as any other order
            assert record.order is not None
            record.order.crowd = entry.new[0]
            bulk.uncount(entry.site, record.order.copy())
        bulk.begin()
        try:
            site = _site(bulk, sites, record.site)
            outcome, order_lines = _apply(bulk, site, record, now, max_held)
        except ApiError as error:
            bulk.discard()
            summary.errors.append((record.line, error.code, error.message))
            outcome, order_lines = "error", 0
        else:
            bulk.keep()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        summary.order_lines += order_lines
    bulk.flush()
    return summary


def _place_prepared(bulk: BulkRepository, sites: dict[str, Site | None], entry: Entry) -> bool:
    """Store a prepared order as prepared, if that is how placing it would store it."""
    assert entry.new is not None
    try:
        site = _site(bulk, sites, entry.site)
    except ApiError:
        return False
    crowd = entry.kind != "offline" or site.settings.offline_orders_affect_crowd
    return entry.new[0] == crowd and bulk.place_new(entry.key, entry.new)


def _site(repo: Repository, sites: dict[str, Site | None], name: str) -> Site:
    """The site named, looked up once a batch. An error is raised anew for each record: one
    raised again would hold, in its traceback, the frames that hold it."""
    if name in sites:
        found = sites[name]
    else:
        found = sites[name] = repo.get_site(name)
    if found is None:
        raise ApiError("SiteNotRecognized", f"site {name!r:.80} is not known to this server")
    return found


def _apply(
    repo: Repository, site: Site, record: Record, now: datetime, max_held: int
) -> tuple[str, int]:
    """(outcome, order lines stored) of one record."""
    if record.order is not None:
        order = record.order
        order.crowd = record.kind != "offline" or site.settings.offline_orders_affect_crowd
        placed = place_order(repo, site, order, now)
        if placed.outcome == CONFLICT:
            raise ApiError(
                "OrderConflict",
                f"order {order.order_no!r:.80} was already placed with different content;"
                " updates need cancellations enabled",
            )
        return placed.outcome, len(order.lines) if placed.outcome != SAME else 0
    require_cancellations(site)
    _, source, channel, order_no = record.key
    if source == OFFLINE:
        _check_offline_channel(repo, site.name, channel, order_no)
    items = record.items
    # What is still to cancel is decided from the order as it is under its key's lock.
    repo.lock_order_key(site.name, source, channel, order_no)
    existing = repo.find_order(site.name, source, channel, order_no)
    if existing is not None and items is not None:
        items = _still_to_cancel(existing, items)
        if not items:
            return UNCHANGED, 0
    if existing is None and items is not None:
        pending = repo.held_for(site.name, source, channel, order_no, now)
        if any(held.items == items for held in pending):
            return UNCHANGED, 0
    before = None if existing is None else existing.state
    done = cancel_order(repo, site, source, channel, order_no, items, record.context, now, max_held)
    if done.held:
        return HELD, 0
    return CANCELLED if done.state != before or items else UNCHANGED, 0


def _check_offline_channel(repo: Repository, site: str, channel: str, order_no: str) -> None:
    if repo.find_order(site, OFFLINE, channel, order_no, lock=False) is not None:
        return
    others = [c for c in repo.offline_channels_of(site, order_no) if c != channel]
    if others:
        raise ApiError(
            "ChannelMismatch",
            f"offline order {order_no!r:.80} was created on channel {others[0]!r}, not {channel!r}",
        )


def _still_to_cancel(order: Order, items: list[CancelItem]) -> list[CancelItem]:
    """A file's partial cancellation names how much of each line is cancelled in all; what
    of that is not cancelled yet (nothing on a re-run)."""
    wanted: dict[str, int | None] = {}
    for item in items:
        if item.ref_code not in wanted or item.qty is None:
            wanted[item.ref_code] = item.qty
        elif wanted[item.ref_code] is not None:
            wanted[item.ref_code] = max(wanted[item.ref_code] or 0, item.qty)
    missing = []
    for ref, qty in wanted.items():
        lines = [line for line in order.lines if line.ref_code == ref]
        if not lines:
            missing.append(CancelItem(ref, qty))  # cancel_order answers LineNotFound
            continue
        cancelled = sum(line.cancelled for line in lines)
        live = sum(line.live for line in lines)
        more = live if qty is None else min(qty - cancelled, live)
        if qty is not None and qty > cancelled + live:
            missing.append(CancelItem(ref, qty - cancelled))  # QuantityExceedsRemaining
        elif more > 0:
            missing.append(CancelItem(ref, more))
    return missing


# -- the command ---------------------------------------------------------------------------


def _one_writer(store: Store) -> bool:
    """SQLite commits one transaction at a time; PostgreSQL runs several writers at once."""
    from .store.sqlite import SqliteStore

    return isinstance(store, SqliteStore)


def default_batch(store: Store) -> int:
    return BATCH if _one_writer(store) else POSTGRES_BATCH


def run_import(
    store: Store,
    parser: Executor,
    source: IO[bytes],
    now: Callable[[], datetime],
    batch: int | None = None,
    progress: Callable[[int], None] | None = None,
    max_held: int = MAX_HELD_PER_SITE,
) -> Summary:
    """Load every record of ``source``, up to ``batch`` lines to a transaction (``slices``),
    parsed on ``parser`` (``parsing_process``); per-record errors are in the summary."""
    batch = batch or default_batch(store)
    one_writer = _one_writer(store)
    # With several writers, a batch waits for the one before it to commit: records are
    # applied in file order (a cancellation after its order finds it).
    in_flight_max = IN_FLIGHT if one_writer else 0
    summary = Summary()
    started = time.perf_counter()
    moment = now()
    in_flight: deque[tuple[Future[Summary], list[int], int]] = deque()

    def collect() -> None:
        future, lines, consumed = in_flight.popleft()
        try:
            summary.add(future.result())
        except Exception as exc:  # the whole transaction failed: nothing in it was stored
            message = f"the database did not take this batch: {exc}"
            for line in lines:
                summary.errors.append((line, "StoreError", message))
                summary.count("error")
        if progress is not None:
            progress(consumed)

    def send(chunk: Chunk, consumed: int) -> None:
        summary.lines += chunk.nonblank
        for error in chunk.errors:
            summary.errors.append(error)
            summary.count("error")
        if not chunk.lines:
            if progress is not None:
                progress(consumed)
            return
        future = store.submit(lambda repo: apply_batch(chunk, moment, repo, one_writer, max_held))
        in_flight.append((future, chunk.lines, consumed))
        while len(in_flight) > in_flight_max:
            collect()

    # On SQLite the parsing process prepares orders too, for the crowd of each site as it is now.
    offline_crowd = _offline_crowd(store) if one_writer else None
    with _collections_spaced(), store.bulk_load():
        # After a failure, what is queued is dropped when ``parsing_process`` closes.
        parsing: deque[tuple[Future[Chunk], int]] = deque()
        first_line = 1
        for raws in slices(source, batch):
            chunk = parser.submit(parse_chunk, first_line, raws, moment, offline_crowd)
            parsing.append((chunk, _size(raws)))
            first_line += len(raws)
            while len(parsing) > PARSED_AHEAD:
                parsed, consumed = parsing.popleft()
                send(parsed.result(), consumed)
        while parsing:
            parsed, consumed = parsing.popleft()
            send(parsed.result(), consumed)
        while in_flight:
            collect()
    summary.errors.sort()
    summary.seconds = time.perf_counter() - started
    return summary


def _offline_crowd(store: Store) -> dict[str, bool]:
    """Whether each site counts its offline orders in the crowd."""

    def read(repo: Repository) -> dict[str, bool]:
        sites = (repo.get_site(name) for name in repo.site_names())
        return {s.name: s.settings.offline_orders_affect_crowd for s in sites if s is not None}

    return store.submit(read).result()


@contextmanager
def parsing_process() -> Iterator[ProcessPoolExecutor]:
    """The process that parses an import's lines, started at once: open it before the store,
    so that the fork copies none of the store's threads (or the locks they may hold). A fork
    starts in milliseconds, with every module already imported; a spawned process took 0.1 s.
    On leaving, work still queued (after a failure) is dropped."""
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("fork"),
        initializer=gc.set_threshold,
        initargs=COLLECTIONS,
    )
    try:
        pool.submit(int).result()  # a fork context starts its process at the first task
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _collections_spaced() -> Iterator[None]:
    """An import makes millions of objects that reference counting frees; those of the lines
    in flight (a few hundred thousand) live until their transaction ends. The cycle collector
    runs once the objects made outnumber those freed by its first threshold: at 700, it took a
    fifth of the writer's time; at 100,000, each run went through the live objects of a
    transaction's lines (11 ms a run, 6 % of the writer's time at 20,000 lines a transaction).
    At a million, its runs took 4 ms in all for 300,000 orders. Nothing an import makes is kept
    alive only by a cycle, which a test holds it to."""
    before = gc.get_threshold()
    gc.set_threshold(*COLLECTIONS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def slices(source: IO[bytes], batch: int, edge: int = EDGE) -> Iterator[list[bytes]]:
    """The lines of ``source`` in slices of ``batch``, each a transaction, except at both ends.

    The writer cannot apply a slice before it is parsed, and once the last line is parsed only
    the writer works: so the first slice is ``edge`` lines and each next twice the one before
    (the writer starts sooner), and the last lines (one to two batches' worth) are cut in
    halves, each half of what is left, down to a slice of ``edge`` lines or fewer (little is
    left to apply after the parsing). Either end matters only to a file of a few batches."""
    small = min(batch, edge)
    size = small
    ahead = list(islice(source, size))
    while ahead:
        size = min(batch, 2 * size)
        following = list(islice(source, size))
        if len(following) < size:  # the end: ``ahead`` and ``following`` are the last lines
            rest = ahead + following
            while len(rest) > small:
                half = (len(rest) + 1) // 2
                yield rest[:half]
                rest = rest[half:]
            yield rest
            return
        yield ahead
        ahead = following


def _size(raws: list[bytes]) -> int:
    return sum(len(raw) for raw in raws)
