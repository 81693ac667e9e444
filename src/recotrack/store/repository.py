"""Sites, sessions, orders and held cancellations in SQL: the write side of the store.

A ``Repository`` lives for one unit of work inside the store's transaction; services call it
and never see SQL. The read model it keeps in step is in ``recotrack.store.readmodel``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain.orders import CancelItem, Event, HeldCancel, Line, Order
from ..domain.sessions import Session
from ..domain.sites import Site, SiteSettings
from ..domain.stats import Change, Delta, delta
from .db import Db, dec, from_iso, iso
from .rankings import Rankings
from .readmodel import ReadModel

SITES_VERSION = "sites_version"
SITE_CACHE_ENTRIES = 1024

_ORDER_COLUMNS = (
    "id, site, source, channel, order_no, currency, subtotal, shipping, total, ordered_at, "
    "session, cuid, user_id, customer_id, crowd, cancelled_whole"
)
_ORDER_WIDTH = len(_ORDER_COLUMNS.split(","))
_NEW_ORDER_COLUMNS = (
    "site, source, channel_key, order_no, channel, state, currency, subtotal, shipping, total,"
    " ordered_at, day, session, cuid, user_id, customer_id, crowd, cancelled_whole, created_at,"
    " updated_at"
)
_MARKS = ", ".join("?" for _ in _NEW_ORDER_COLUMNS.split(","))
_INSERT_ORDER = f"INSERT INTO orders ({_NEW_ORDER_COLUMNS}) VALUES ({_MARKS})"
_INSERT_ORDER_WITH_ID = f"INSERT INTO orders (id, {_NEW_ORDER_COLUMNS}) VALUES (?, {_MARKS})"
_INSERT_LINES = (
    "INSERT INTO order_lines (site, order_id, line_no, ref_code, qty, cancelled, price,"
    " variant, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


_LINE_COLUMNS = "ref_code, qty, cancelled, price, variant, attributes"
# PostgreSQL: the order (found and locked as on its own, so planned the same) with its lines.
_ORDER_AND_LINES = (
    "SELECT o.*, "
    + ", ".join(f"l.{column.strip()}" for column in _LINE_COLUMNS.split(","))
    + f" FROM (SELECT {_ORDER_COLUMNS} FROM orders"
    " WHERE site = ? AND source = ? AND channel_key = ? AND order_no = ?{lock}) AS o"
    " LEFT JOIN order_lines AS l ON l.site = o.site AND l.order_id = o.id ORDER BY l.line_no"
)


class Repository(ReadModel):
    """Everything a service may read or change, inside one transaction.

    ``site_cache``, when the store gives one, keeps sites between units of work on the same
    database: an entry is used only while the sites version (a meta value that every change of
    a site or token sets anew, in the same transaction) is the one it was loaded under, and
    that version is read in the caller's transaction, so a change is seen by the next request.
    """

    def __init__(
        self,
        db: Db,
        rankings: Rankings | None = None,
        site_cache: dict[str, tuple[str, Site]] | None = None,
    ) -> None:
        super().__init__(db, rankings)
        self.site_cache = site_cache

    # -- sites ---------------------------------------------------------------------------

    def get_site(self, name: str) -> Site | None:
        version = None
        if self.site_cache is not None:
            version = self.get_meta(SITES_VERSION)
            cached = self.site_cache.get(name)
            if version is not None and cached is not None and cached[0] == version:
                return _copy_site(cached[1])
        row = self.db.one("SELECT settings, created_at FROM sites WHERE site = ?", (name,))
        if row is None:
            return None
        site = Site(name, SiteSettings(**json.loads(row[0])), from_iso(row[1]))
        for kind, channel, token_hash in self.db.all(
            "SELECT kind, channel, token_hash FROM tokens WHERE site = ?", (name,)
        ):
            site.token_hashes[(kind, channel)] = token_hash
        if self.site_cache is not None and version is not None:
            if len(self.site_cache) >= SITE_CACHE_ENTRIES:
                self.site_cache.clear()
            self.site_cache[name] = (version, _copy_site(site))
        return site

    def insert_site(self, site: Site) -> None:
        self.db.execute(
            "INSERT INTO sites (site, settings, created_at) VALUES (?, ?, ?)",
            (site.name, _settings_json(site.settings), iso(site.created_at)),
        )
        self._sites_changed()

    def save_settings(self, name: str, settings: SiteSettings) -> None:
        self.db.execute(
            "UPDATE sites SET settings = ? WHERE site = ?", (_settings_json(settings), name)
        )
        self._sites_changed()

    def set_token(self, site: str, kind: str, channel: str, token_hash: str, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO tokens (site, kind, channel, token_hash, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (site, kind, channel) DO UPDATE SET token_hash = excluded.token_hash,"
            " created_at = excluded.created_at",
            (site, kind, channel, token_hash, iso(now)),
        )
        self._sites_changed()

    def _sites_changed(self) -> None:
        """A new sites version: every cached site is loaded again (in every process)."""
        self.set_meta(SITES_VERSION, secrets.token_hex(8))

    def site_names(self) -> list[str]:
        return [row[0] for row in self.db.all("SELECT site FROM sites ORDER BY site")]

    def get_meta(self, key: str) -> str | None:
        row = self.db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- sessions ------------------------------------------------------------------------

    def get_session(self, site: str, session_id: str) -> Session | None:
        row = self.db.one(
            "SELECT cuid, user_id, created_at, last_seen, basket, checkout FROM sessions"
            " WHERE site = ? AND id = ?",
            (site, session_id),
        )
        if row is None:
            return None
        return Session(
            site, session_id, row[0], from_iso(row[2]), from_iso(row[3]), row[1], row[4], row[5]
        )

    def save_session(self, session: Session) -> None:
        self.db.execute(
            "INSERT INTO sessions (site, id, cuid, user_id, created_at, last_seen, basket, checkout)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, id) DO UPDATE SET"
            " cuid = excluded.cuid, user_id = excluded.user_id, last_seen = excluded.last_seen,"
            " basket = excluded.basket, checkout = excluded.checkout",
            (
                session.site,
                session.id,
                session.cuid,
                session.user_id,
                iso(session.created_at),
                iso(session.last_seen),
                session.basket,
                session.checkout,
            ),
        )

    def touch_session(
        self, site: str, session_id: str, now: datetime, oldest: datetime
    ) -> Callable[[], bool]:
        """Mark the session seen at ``now`` if it was last seen at ``oldest`` or later; a
        function that tells whether it was (one statement: a cancellation needs no more of the
        session, and on PostgreSQL its answer comes with the next read)."""
        changed = self.db.changed_later(
            "UPDATE sessions SET last_seen = ? WHERE site = ? AND id = ? AND last_seen >= ?",
            (iso(now), site, session_id, iso(oldest)),
        )
        return lambda: changed() == 1

    # -- orders --------------------------------------------------------------------------

    def lock_order_key(self, site: str, source: str, channel_key: str, order_no: str) -> None:
        """Serialise every change of one order key, including its held cancellations, until
        the transaction ends. SQLite has one writer, so only PostgreSQL needs the lock."""
        if self.db.dialect.postgres:
            self.db.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
                ("\x1f".join((site, source, channel_key, order_no)),),
            )

    def find_order(
        self, site: str, source: str, channel_key: str, order_no: str, lock: bool = True
    ) -> Order | None:
        """The order under its key, with its lines; locked for update on PostgreSQL."""
        if self.db.dialect.postgres:  # the order and its lines in one round trip
            rows = self.db.all(
                _ORDER_AND_LINES.format(lock=" FOR UPDATE" if lock else ""),
                (site, source, channel_key, order_no),
            )
            if not rows:
                return None
            lines = [r[_ORDER_WIDTH:] for r in rows if r[_ORDER_WIDTH] is not None]
            return self._with_lines(rows[0], lines)
        row = self.db.one(
            f"SELECT {_ORDER_COLUMNS} FROM orders"
            " WHERE site = ? AND source = ? AND channel_key = ? AND order_no = ?"
            + (self.db.dialect.for_update if lock else ""),
            (site, source, channel_key, order_no),
        )
        return None if row is None else self._with_lines(row)

    def order_by_id(self, site: str, order_id: int) -> Order | None:
        row = self.db.one(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE site = ? AND id = ?", (site, order_id)
        )
        return None if row is None else self._with_lines(row)

    def offline_channels_of(self, site: str, order_no: str) -> list[str]:
        return [
            row[0]
            for row in self.db.all(
                "SELECT channel FROM orders WHERE site = ? AND source = 'offline'"
                " AND order_no = ? ORDER BY channel",
                (site, order_no),
            )
        ]

    def insert_order(self, order: Order, now: datetime) -> None:
        postgres = self.db.dialect.postgres
        # SQLite hands back the new rowid without RETURNING, which costs Python's sqlite3
        # about twice the insert itself.
        cursor = self.db.execute(
            _INSERT_ORDER + (" RETURNING id" if postgres else ""),
            order_row(order, iso(now), self.db.dialect.money),
        )
        order.id = int(cursor.fetchone()[0] if postgres else cursor.lastrowid)
        self._insert_lines(order)
        self._insert_events(order, new_order=True)

    def update_order(self, order: Order, now: datetime, lines_replaced: bool) -> None:
        self.db.execute(
            "UPDATE orders SET state = ?, currency = ?, subtotal = ?, shipping = ?, total = ?,"
            " ordered_at = ?, day = ?, user_id = ?, customer_id = ?, crowd = ?,"
            " cancelled_whole = ?, updated_at = ? WHERE site = ? AND id = ?",
            (
                *order_terms(order, self.db.dialect.money),
                order.user_id,
                order.customer_id,
                int(order.crowd),
                int(order.cancelled_whole),
                iso(now),
                order.site,
                order.id,
            ),
        )
        if lines_replaced:
            self.db.execute(
                "DELETE FROM order_lines WHERE site = ? AND order_id = ?", (order.site, order.id)
            )
            self._insert_lines(order)
        elif all(line.cancelled == line.qty for line in order.lines):  # e.g. a whole cancel
            self.db.execute(
                "UPDATE order_lines SET cancelled = qty WHERE site = ? AND order_id = ?",
                (order.site, order.id),
            )
        else:
            self.conn_executemany(
                "UPDATE order_lines SET cancelled = ? WHERE site = ? AND order_id = ?"
                " AND line_no = ?",
                [(line.cancelled, order.site, order.id, n) for n, line in enumerate(order.lines)],
            )
        self._insert_events(order)

    def order_events(self, site: str, order_id: int) -> list[Event]:
        return [
            Event(row[0], from_iso(row[1]), row[2], row[3], row[4], row[5], row[6])
            for row in self.db.all(
                "SELECT kind, at, channel, session, cuid, reason, detail FROM order_events"
                " WHERE site = ? AND order_id = ? ORDER BY seq",
                (site, order_id),
            )
        ]

    def _with_lines(
        self, row: tuple[Any, ...], lines: list[tuple[Any, ...]] | None = None
    ) -> Order:
        order = Order(
            site=row[1],
            source=row[2],
            channel=row[3],
            order_no=row[4],
            currency=row[5],
            subtotal=dec(row[6]),
            shipping=dec(row[7]),
            total=dec(row[8]),
            lines=[],
            ordered_at=from_iso(row[9]),
            session=row[10],
            cuid=row[11],
            user_id=row[12],
            customer_id=row[13],
            crowd=bool(row[14]),
            cancelled_whole=bool(row[15]),
            id=int(row[0]),
        )
        if lines is None:
            lines = self.db.all(
                f"SELECT {_LINE_COLUMNS} FROM order_lines"
                " WHERE site = ? AND order_id = ? ORDER BY line_no",
                (order.site, order.id),
            )
        order.lines = [Line(r[0], int(r[1]), dec(r[3]), r[4], r[5], int(r[2])) for r in lines]
        return order

    def _insert_lines(self, order: Order) -> None:
        head = (order.site, order.id)
        self.conn_executemany(
            _INSERT_LINES, [head + values for values in line_values(order, self.db.dialect.money)]
        )

    def _insert_events(self, order: Order, new_order: bool = False) -> None:
        if not order.new_events:
            return
        # An order inserted just now has no history: its events are numbered from 1. Otherwise
        # each insert finds its own number, with no read first (one statement less; on
        # PostgreSQL, in pipeline mode, no result to wait for).
        next_seq = "?"
        if not new_order:
            next_seq = (
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM order_events"
                " WHERE site = ? AND order_id = ?)"
            )
        head = (order.site, order.id)
        if new_order:
            rows = [head + values for values in new_event_values(order)]
        else:
            rows = [
                (*head, *head, e.kind, iso(e.at), e.channel, e.session, e.cuid, e.reason, e.detail)
                for e in order.new_events
            ]
        self.conn_executemany(
            "INSERT INTO order_events (site, order_id, seq, kind, at, channel, session, cuid,"
            f" reason, detail) VALUES (?, ?, {next_seq}, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        order.new_events = []

    # -- held cancellations --------------------------------------------------------------

    def held_for(
        self, site: str, source: str, channel_key: str, order_no: str, now: datetime
    ) -> list[HeldCancel]:
        """Held cancellations for this order key that have not expired, oldest first."""
        return [
            _held(row)
            for row in self.db.all(
                "SELECT id, site, source, channel_key, order_no, items, at, expires_at, session,"
                " cuid, reason FROM held_cancels WHERE site = ? AND source = ?"
                " AND channel_key = ? AND order_no = ? AND expires_at > ? ORDER BY id",
                (site, source, channel_key, order_no, iso(now)),
            )
        ]

    def insert_held(self, held: HeldCancel) -> None:
        items = (
            None
            if held.items is None
            else json.dumps([[item.ref_code, item.qty] for item in held.items])
        )
        self.db.execute(
            "INSERT INTO held_cancels (site, source, channel_key, order_no, items, at,"
            " expires_at, session, cuid, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                held.site,
                held.source,
                held.channel,
                held.order_no,
                items,
                iso(held.at),
                iso(held.expires_at),
                held.session,
                held.cuid,
                held.reason,
            ),
        )

    def delete_held(self, site: str, ids: list[int]) -> None:
        self.conn_executemany(
            "DELETE FROM held_cancels WHERE site = ? AND id = ?", [(site, i) for i in ids]
        )

    def count_held(self, site: str, at_most: int) -> int:
        """How many cancellations the site holds (expired ones too), counting to ``at_most``."""
        row = self.db.one(
            "SELECT COUNT(*) FROM (SELECT 1 FROM held_cancels WHERE site = ? LIMIT ?) AS held",
            (site, at_most),
        )
        return int(row[0])

    def purge_expired_held(self, site: str, now: datetime) -> int:
        """Forget the site's held cancellations whose time is up; how many there were."""
        return self.db.changed(
            "DELETE FROM held_cancels WHERE site = ? AND expires_at <= ?", (site, iso(now))
        )

    # -- read model ----------------------------------------------------------------------

    def count(self, site: str, before: Order | None, after: Order | None) -> None:
        """Move the site's statistics from what ``before`` counted to what ``after`` counts
        (same transaction as the order)."""
        self.write_statistics(site, delta(before, after))

    def count_sum(self, site: str, total: Delta) -> None:
        """Add ``total``, the changes of several orders summed elsewhere, to the site's
        statistics (same transaction as the orders)."""
        self.write_statistics(site, total.pruned())

    def write_statistics(self, site: str, change: Delta) -> None:
        """Add ``change`` to the site's statistics now."""
        money = self.db.dialect.money
        dialect = self.db.dialect
        if change.products:
            self.conn_executemany(
                "INSERT INTO stat_products (site, day, ref_code, units, revenue)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, day, ref_code) DO UPDATE SET"
                " units = stat_products.units + excluded.units, revenue = "
                f"{_add(dialect.postgres, 'stat_products.revenue', 'excluded.revenue')}",
                [
                    (site, day, ref, units, money(revenue))
                    for (day, ref), (units, revenue) in sorted(change.products.items())
                ],
            )
        if change.pairs:
            self.conn_executemany(
                "INSERT INTO stat_pairs (site, ref_code, other, orders) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (site, ref_code, other) DO UPDATE SET"
                " orders = stat_pairs.orders + excluded.orders",
                [(site, a, b, n) for (a, b), n in sorted(change.pairs.items())],
            )
        for day, r in sorted(change.days.items()):
            self.db.execute(
                "INSERT INTO stat_days (site, day, orders, units, revenue, cancelled_orders,"
                " cancelled_revenue) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, day)"
                " DO UPDATE SET orders = stat_days.orders + excluded.orders,"
                " units = stat_days.units + excluded.units,"
                f" revenue = {_add(dialect.postgres, 'stat_days.revenue', 'excluded.revenue')},"
                " cancelled_orders = stat_days.cancelled_orders + excluded.cancelled_orders,"
                " cancelled_revenue = "
                f"{_add(dialect.postgres, 'stat_days.cancelled_revenue', 'excluded.cancelled_revenue')}",
                (
                    site,
                    day,
                    r.orders,
                    r.units,
                    money(r.revenue),
                    r.cancelled_orders,
                    money(r.cancelled_revenue),
                ),
            )

    def conn_executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.db.many(sql, rows)

    # -- bulk loading: ``recotrack import`` on SQLite's one writer -----------------------

    def next_order_id(self) -> int:
        """The id SQLite gives the next order inserted (one more than the largest), which
        stays true while this transaction is the only one that inserts orders."""
        return int(self.db.one("SELECT COALESCE(MAX(id), 0) + 1 FROM orders")[0])

    def insert_new_orders(
        self,
        orders: list[tuple[Any, ...]],
        lines: list[tuple[Any, ...]],
        events: list[tuple[Any, ...]],
    ) -> None:
        """Write new orders' rows (``new_order_rows``, each with its id), many orders to a
        statement."""
        self.conn_executemany(
            _INSERT_ORDER_WITH_ID,
            orders,
        )
        self.conn_executemany(_INSERT_LINES, lines)
        self.conn_executemany(
            "INSERT INTO order_events (site, order_id, seq, kind, at, channel, session, cuid,"
            " reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            events,
        )


class WriterRepository(Repository):
    """A writer's repository, for one transaction at a time (``new_transaction``).

    Read-model changes are collected per write (``changes``: the orders before and after), for
    the store to count into one total and write once before the commit: nothing in a write
    reads the statistics back. The sites version is read once per transaction: every write of
    a batch was queued before its transaction began, so the version read then is at least as
    new as the one each request would have read itself. A transaction that changes a site reads the version afresh for the rest of it.
    """

    def __init__(self, db: Db, sites: dict[str, tuple[str, Site]]) -> None:
        super().__init__(db, site_cache=sites)
        self.new_transaction()

    def new_transaction(self) -> None:
        """Forget what the last transaction collected and read."""
        self.changes: list[Change] = []
        self._sites_version: str | None = None
        self._version_known = False
        self._sites_changed_here = False

    def get_meta(self, key: str) -> str | None:
        if key != SITES_VERSION or self._sites_changed_here:
            return super().get_meta(key)
        if not self._version_known:
            self._sites_version = super().get_meta(key)
            self._version_known = True
        return self._sites_version

    def set_meta(self, key: str, value: str) -> None:
        if key == SITES_VERSION:
            # Its own change may yet be rolled back with its write: read it each time.
            self._sites_changed_here = True
        super().set_meta(key, value)

    def count(self, site: str, before: Order | None, after: Order | None) -> None:
        self.changes.append((site, before, after))

    def count_sum(self, site: str, total: Delta) -> None:
        self.changes.append((site, None, total))


# -- rows --------------------------------------------------------------------------------

Money = Callable[[Decimal], Any]  # an amount as the driver takes it (``Dialect.money``)
# A new order's rows without what the database gives it: its ``_NEW_ORDER_COLUMNS``, then the
# values of each line and of each event after (site, order_id).
NewRows = tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]


def new_order_rows(order: Order, at: str, money: Money) -> NewRows:
    """The rows ``insert_order`` writes for the new ``order``, stored at ``at``, but for its
    id; its new events are taken, as ``insert_order`` takes them."""
    rows = (order_row(order, at, money), line_values(order, money), new_event_values(order))
    order.new_events = []
    return rows


def order_row(order: Order, at: str, money: Money) -> tuple[Any, ...]:
    """An order's values for ``_NEW_ORDER_COLUMNS``; ``at`` is when it is stored."""
    return (
        order.site,
        order.source,
        order.key_channel,
        order.order_no,
        order.channel,
        *order_terms(order, money),
        order.session,
        order.cuid,
        order.user_id,
        order.customer_id,
        int(order.crowd),
        int(order.cancelled_whole),
        at,
        at,
    )


def order_terms(order: Order, money: Money) -> tuple[Any, ...]:
    """State, currency, subtotal, shipping, total, ordered_at and day, as stored: the columns
    an update rewrites, in the order both statements list them."""
    return (
        order.state.value,
        order.currency,
        money(order.subtotal),
        money(order.shipping),
        money(order.total),
        iso(order.ordered_at),
        order.day,
    )


def line_values(order: Order, money: Money) -> list[tuple[Any, ...]]:
    """Each line's values after (site, order_id) in ``_INSERT_LINES``."""
    return [
        (
            n,
            line.ref_code,
            line.qty,
            line.cancelled,
            money(line.price),
            line.variant,
            line.attributes,
        )
        for n, line in enumerate(order.lines)
    ]


def new_event_values(order: Order) -> list[tuple[Any, ...]]:
    """The new events of an order stored just now, after (site, order_id): numbered from 1,
    since it has no history."""
    return [
        (n, e.kind, iso(e.at), e.channel, e.session, e.cuid, e.reason, e.detail)
        for n, e in enumerate(order.new_events, start=1)
    ]


def _add(postgres: bool, left: str, right: str) -> str:
    return f"{left} + {right}" if postgres else f"dec_add({left}, {right})"


def _copy_site(site: Site) -> Site:
    """Services may change the site they load (settings, tokens): never the cached one."""
    return Site(site.name, site.settings, site.created_at, dict(site.token_hashes))


def _settings_json(settings: SiteSettings) -> str:
    return json.dumps(settings.__dict__, sort_keys=True)


def _held(row: tuple[Any, ...]) -> HeldCancel:
    items = None if row[5] is None else [CancelItem(ref, qty) for ref, qty in json.loads(row[5])]
    return HeldCancel(
        site=row[1],
        source=row[2],
        channel=row[3],
        order_no=row[4],
        items=items,
        at=from_iso(row[6]),
        expires_at=from_iso(row[7]),
        session=row[8],
        cuid=row[9],
        reason=row[10],
        id=int(row[0]),
    )
