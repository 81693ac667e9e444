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

Records are applied in file order, many to a transaction (``--batch``), each in its own
savepoint. The statistics of a transaction are summed and written once at its end; nothing in
a write reads them back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from .domain.errors import ApiError
from .domain.orders import OFFLINE, ONLINE, CancelItem, HeldCancel, Order
from .domain.sessions import well_formed
from .domain.sites import Site, check_channel, is_site_name
from .domain.stats import Delta
from .http.parse import (
    parse_cancel_items,
    parse_lines,
    parse_money_fields,
    parse_offline,
    parse_order_date,
    text,
)
from .services.orders import (
    CONFLICT,
    MAX_HELD_PER_SITE,
    Context,
    cancel_order,
    place_order,
    require_cancellations,
)
from .store import Store
from .store.repository import Repository

BATCH = 5_000  # records per transaction on SQLite
# On PostgreSQL every record takes a transaction-scoped advisory lock on its order key, and
# the server's lock table holds a few thousand (max_locks_per_transaction x connections).
POSTGRES_BATCH = 500
IN_FLIGHT = 2  # SQLite: batches queued at once, the next one parsed while one commits
_KEYS_PER_QUERY = 500

Key = tuple[str, str, str, str]  # site, source, channel_key, order_no


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


CREATED, SAME, UPDATED = "created", "same", "updated"
CANCELLED, HELD, UNCHANGED = "cancelled", "held", "unchanged"


# -- parsing: a line into a record --------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One parsed line: a change of one order key."""

    line: int
    kind: str  # order, offline, cancel, offline-cancel
    site: str
    key: Key
    order: Order | None = None
    items: list[CancelItem] | None = None
    context: Context = Context()


def parse_record(line_no: int, raw: bytes | str, now: datetime) -> Record:
    """A line of the file as a record; ``ApiError`` naming the field at fault otherwise."""
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0][:160]
        raise ApiError("MalformedJson", f"the line is not valid JSON: {detail}") from None
    except RecursionError:
        raise ApiError("MalformedJson", "the line is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError("MalformedJson", "each line must be a JSON object with a type")
    kind = data.get("type")
    site = data.get("site")
    if not is_site_name(site):
        raise ApiError(
            "SiteNotRecognized",
            f"site must be a site name (1-64 of A-Z a-z 0-9 _ -); got {site!r:.80}",
        )
    assert isinstance(site, str)
    if kind == "order":
        return _online_order(line_no, site, data, now)
    if kind == "offline":
        order, _ = parse_offline(data, now)
        channel = check_channel(data.get("channel"))
        order.site, order.channel = site, channel
        key = (site, OFFLINE, channel, order.order_no)
        return Record(line_no, kind, site, key, order=order)
    if kind in ("cancel", "offline-cancel"):
        return _cancel(line_no, site, kind, data)
    raise ApiError(
        "TypeNotRecognized",
        f"type must be order, offline, cancel or offline-cancel; got {kind!r:.80}",
    )


def _online_order(line_no: int, site: str, data: dict[str, Any], now: datetime) -> Record:
    channel = check_channel(data.get("channel", "web"))
    body = data.get("order")
    if not isinstance(body, dict):
        raise ApiError("MissingOrMalformedOrderNo", "order must be an object with an orderNo")
    order_no = text(body.get("orderNo"), "order.orderNo", "MissingOrMalformedOrderNo")
    lines = parse_lines(body.get("items"), "order")
    money = parse_money_fields(body, lines, "order")
    user = data.get("user")
    user_id = ""
    if user is not None:
        if not isinstance(user, dict):
            raise ApiError("MissingOrMalformedUser", "user must be an object with an id")
        if user.get("id") is not None:
            user_id = text(user["id"], "user.id", "MissingOrMalformedUser", 256)
    order = Order(
        site=site,
        source=ONLINE,
        channel=channel,
        order_no=order_no,
        currency=money.currency,
        subtotal=money.subtotal,
        shipping=money.shipping,
        total=money.total,
        lines=lines,
        ordered_at=parse_order_date(body.get("orderDate"), now),
        session=_identity(data, "session", "MissingOrMalformedSession"),
        cuid=_identity(data, "cuid", "MissingOrMalformedCuid"),
        user_id=user_id,
    )
    return Record(line_no, "order", site, (site, ONLINE, "", order_no), order=order)


def _cancel(line_no: int, site: str, kind: str, data: dict[str, Any]) -> Record:
    order_no = text(data.get("orderNo"), "orderNo", "MissingOrMalformedOrderNo")
    items = None
    if data.get("items") is not None:
        items = parse_cancel_items({"items": data["items"]})
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 256 or not reason.isprintable():
        raise ApiError(
            "MissingOrMalformedParameter", "reason must be at most 256 printable characters"
        )
    session = _identity(data, "session", "MissingOrMalformedSession")
    cuid = _identity(data, "cuid", "MissingOrMalformedCuid")
    if kind == "cancel":
        key = (site, ONLINE, "", order_no)
        context = Context("", session, cuid, reason)
    else:
        channel = check_channel(data.get("channel"))
        key = (site, OFFLINE, channel, order_no)
        context = Context(channel, session, cuid, reason)
    return Record(line_no, kind, site, key, items=items, context=context)


def _identity(data: dict[str, Any], name: str, code: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or not well_formed(value):
        raise ApiError(code, f"{name} must be 1-128 printable characters; got {value!r:.40}")
    return value


# -- applying: a batch of records in one transaction --------------------------------------


class BulkRepository(Repository):
    """The repository of one import transaction.

    Keys looked up once for the whole batch: an order or held cancellation known to be absent
    is not asked for again (until this transaction adds one). Statistics are summed per
    record and handed to the store's repository once, at the end of the batch.
    """

    def __init__(self, outer: Repository) -> None:
        super().__init__(outer.db)
        self.outer = outer
        self.no_order: set[Key] = set()
        self.no_held: set[Key] = set()
        self.record_changes: list[tuple[str, Delta]] = []
        self.totals: dict[str, Delta] = {}

    def prefetch(self, keys: Iterable[Key]) -> None:
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
                    row[0]
                    for row in self.db.all(f"SELECT order_no FROM orders WHERE {where}", params)
                )
                found_held.update(
                    row[0]
                    for row in self.db.all(
                        f"SELECT order_no FROM held_cancels WHERE {where}", params
                    )
                )
            self.no_order.update((site, source, channel, n) for n in numbers - found_orders)
            self.no_held.update((site, source, channel, n) for n in numbers - found_held)

    def find_order(
        self, site: str, source: str, channel_key: str, order_no: str, lock: bool = True
    ) -> Order | None:
        if (site, source, channel_key, order_no) in self.no_order:
            return None
        return super().find_order(site, source, channel_key, order_no, lock)

    def insert_order(self, order: Order, now: datetime) -> None:
        self.no_order.discard((order.site, order.source, order.key_channel, order.order_no))
        super().insert_order(order, now)

    def held_for(
        self, site: str, source: str, channel_key: str, order_no: str, now: datetime
    ) -> list[HeldCancel]:
        if (site, source, channel_key, order_no) in self.no_held:
            return []
        return super().held_for(site, source, channel_key, order_no, now)

    def insert_held(self, held: HeldCancel) -> None:
        self.no_held.discard((held.site, held.source, held.channel, held.order_no))
        super().insert_held(held)

    def apply(self, site: str, change: Delta) -> None:
        self.record_changes.append((site, change))

    def keep(self) -> None:
        """The record succeeded: its statistics join the batch's."""
        for site, change in self.record_changes:
            self.totals.setdefault(site, Delta()).merge(change)
        self.record_changes.clear()

    def discard(self) -> None:
        self.record_changes.clear()

    def flush(self) -> None:
        for site in sorted(self.totals):
            total = self.totals[site].pruned()
            if total.products or total.pairs or total.days:
                self.outer.apply(site, total)
        self.totals.clear()


@dataclass(frozen=True)
class Result:
    line: int
    outcome: str  # an outcome above, or "error"
    order_lines: int = 0
    code: str = ""
    message: str = ""


def apply_batch(
    records: list[Record],
    now: datetime,
    repo: Repository,
    prefetch: bool = True,
    max_held: int = MAX_HELD_PER_SITE,
) -> list[Result]:
    """Apply ``records`` in order inside the store's transaction, each in a savepoint.

    ``prefetch`` is only for a store whose transactions never run side by side (SQLite's one
    writer): an order another transaction is placing would otherwise be taken as absent.

    A record that raises ``ApiError`` is rolled back alone and reported; a database error
    fails the whole batch (the store reports it, and on PostgreSQL runs it again after a
    conflict: this function decides only from what it reads).
    """
    bulk = BulkRepository(repo)
    if prefetch:
        bulk.prefetch(record.key for record in records)
    sites: dict[str, Site | ApiError] = {}
    results = []
    execute = bulk.db.execute
    for record in records:
        execute("SAVEPOINT import_record")
        try:
            site = _site(bulk, sites, record.site)
            result = _apply(bulk, site, record, now, max_held)
        except ApiError as error:
            execute("ROLLBACK TO import_record")
            execute("RELEASE import_record")
            bulk.discard()
            results.append(Result(record.line, "error", code=error.code, message=error.message))
        else:
            execute("RELEASE import_record")
            bulk.keep()
            results.append(result)
    bulk.flush()
    return results


def _site(repo: Repository, sites: dict[str, Site | ApiError], name: str) -> Site:
    found = sites.get(name)
    if found is None:
        site = repo.get_site(name)
        found = sites[name] = site or ApiError(
            "SiteNotRecognized", f"site {name!r:.80} is not known to this server"
        )
    if isinstance(found, ApiError):
        raise found
    return found


def _apply(repo: Repository, site: Site, record: Record, now: datetime, max_held: int) -> Result:
    if record.order is not None:
        crowd = record.kind != "offline" or site.settings.offline_orders_affect_crowd
        order = _fresh(record.order, crowd)
        placed = place_order(repo, site, order, now)
        if placed.outcome == CONFLICT:
            raise ApiError(
                "OrderConflict",
                f"order {order.order_no!r:.80} was already placed with different content;"
                " updates need cancellations enabled",
            )
        changed = len(order.lines) if placed.outcome != SAME else 0
        return Result(record.line, placed.outcome, changed)
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
            return Result(record.line, UNCHANGED)
    if existing is None and items is not None:
        pending = repo.held_for(site.name, source, channel, order_no, now)
        if any(held.items == items for held in pending):
            return Result(record.line, UNCHANGED)
    before = None if existing is None else existing.state
    done = cancel_order(repo, site, source, channel, order_no, items, record.context, now, max_held)
    if done.held:
        return Result(record.line, HELD)
    return Result(record.line, CANCELLED if done.state != before or items else UNCHANGED)


def _fresh(parsed: Order, crowd: bool) -> Order:
    """A new order from a parsed one: the services change the order they place, and the store
    may run a batch again (PostgreSQL, after a conflict)."""
    order = parsed.copy()
    order.crowd = crowd
    return order


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


def read_records(
    source: IO[bytes], now: datetime, summary: Summary
) -> Iterator[tuple[int, Record | None, int]]:
    """(line number, record or None for a line that failed to parse, bytes read)."""
    for line_no, raw in enumerate(source, start=1):
        if not raw.strip():
            yield line_no, None, len(raw)
            continue
        summary.lines += 1
        try:
            yield line_no, parse_record(line_no, raw, now), len(raw)
        except ApiError as error:
            summary.errors.append((line_no, error.code, error.message))
            summary.count("error")
            yield line_no, None, len(raw)


def _one_writer(store: Store) -> bool:
    """SQLite commits one transaction at a time; PostgreSQL runs several writers at once."""
    from .store.sqlite import SqliteStore

    return isinstance(store, SqliteStore)


def default_batch(store: Store) -> int:
    return BATCH if _one_writer(store) else POSTGRES_BATCH


def run_import(
    store: Store,
    source: IO[bytes],
    now: Callable[[], datetime],
    batch: int | None = None,
    progress: Callable[[int], None] | None = None,
    max_held: int = MAX_HELD_PER_SITE,
) -> Summary:
    """Load every record of ``source``; per-record errors are in the summary."""
    batch = batch or default_batch(store)
    one_writer = _one_writer(store)
    # With several writers, a batch waits for the one before it to commit: records are
    # applied in file order (a cancellation after its order finds it).
    in_flight_max = IN_FLIGHT if one_writer else 0
    summary = Summary()
    started = time.perf_counter()
    moment = now()
    in_flight: list[tuple[Future[list[Result]], int]] = []
    records: list[Record] = []
    size = 0

    def collect(future: Future[list[Result]], consumed: int) -> None:
        try:
            results = future.result()
        except Exception as exc:  # the whole transaction failed: nothing in it was stored
            message = f"the database did not take this batch: {exc}"
            for record in batch_records[id(future)]:
                summary.errors.append((record.line, "StoreError", message))
                summary.count("error")
        else:
            for result in results:
                summary.count(result.outcome)
                summary.order_lines += result.order_lines
                if result.outcome == "error":
                    summary.errors.append((result.line, result.code, result.message))
        batch_records.pop(id(future), None)
        if progress is not None:
            progress(consumed)

    batch_records: dict[int, list[Record]] = {}

    def send() -> None:
        nonlocal records, size
        chunk, records = records, []
        future = store.submit(lambda repo: apply_batch(chunk, moment, repo, one_writer, max_held))
        batch_records[id(future)] = chunk
        in_flight.append((future, size))
        size = 0
        while len(in_flight) > in_flight_max:
            collect(*in_flight.pop(0))

    for _, record, consumed in read_records(source, moment, summary):
        size += consumed
        if record is not None:
            records.append(record)
            if len(records) >= batch:
                send()
    if records:
        send()
    for future, consumed in in_flight:
        collect(future, consumed)
    if size and progress is not None:
        progress(size)
    summary.errors.sort()
    summary.seconds = time.perf_counter() - started
    return summary
