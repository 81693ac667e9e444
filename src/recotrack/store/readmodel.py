"""The statistics of API.md section 7, read with plain SQL, and their recomputation.

Top sellers, bought together and daily reports are the ``stat_*`` tables kept by
``Repository.apply``. A buyer's history and a session's purchases are read straight from the
live quantities of the order lines through indexes, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ..domain.orders import Line, Order
from ..domain.stats import Delta, Report
from .db import Db, dec, from_iso

MAX_REPORT_DAYS = 366


@dataclass(frozen=True)
class OrderRow:
    id: int
    source: str
    channel: str
    order_no: str
    state: str
    total: Decimal
    currency: str
    ordered_at: str
    updated_at: str


class ReadModel:
    """Queries over one connection; the write side (``Repository``) extends it.

    ``data_version``, when given, returns a value that changes whenever anything is committed
    to the database (SQLite's ``PRAGMA data_version`` on a connection that does not write
    itself). Rankings are then kept between calls until the next commit: exact, and cheap
    while reads outnumber commits.
    """

    MEMO_ENTRIES = 1024

    def __init__(self, db: Db, data_version: Callable[[], object] | None = None) -> None:
        self.db = db
        self._data_version = data_version
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._memo_version: object = None

    def _memoised(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if self._data_version is None:
            return compute()
        version = self._data_version()  # read before the query: a later commit changes it
        if version != self._memo_version or len(self._memo) >= self.MEMO_ENTRIES:
            self._memo.clear()
            self._memo_version = version
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = compute()
        return found

    def top_sellers(
        self, site: str, by: str, first_day: str, last_day: str, limit: int, exclude: set[str]
    ) -> list[tuple[str, Decimal | int]]:
        """Products ranked by live units or revenue over the days given; ties by refCode."""
        ranked = self._memoised(
            ("top", site, by, first_day, last_day),
            lambda: self._ranked_sellers(site, by, first_day, last_day),
        )
        return [item for item in ranked if item[0] not in exclude][:limit]

    def _ranked_sellers(
        self, site: str, by: str, first_day: str, last_day: str
    ) -> list[tuple[str, Decimal | int]]:
        scored: list[tuple[str, Decimal | int]]
        if by == "units":  # no money sum: on SQLite it is a Python aggregate per row
            rows = self.db.all(
                "SELECT ref_code, SUM(units) FROM stat_products"
                " WHERE site = ? AND day >= ? AND day <= ? GROUP BY ref_code",
                (site, first_day, last_day),
            )
            scored = [(ref, int(units)) for ref, units in rows if int(units) > 0]
        else:
            rows = self.db.all(
                f"SELECT ref_code, SUM(units), {self.db.dialect.money_sum('revenue')}"
                " FROM stat_products WHERE site = ? AND day >= ? AND day <= ? GROUP BY ref_code",
                (site, first_day, last_day),
            )
            scored = [(ref, dec(revenue)) for ref, units, revenue in rows if int(units) > 0]
        scored.sort(key=lambda item: (-item[1], item[0]))
        return scored

    def bought_together(
        self, site: str, ref_codes: list[str], limit: int, exclude: set[str]
    ) -> list[tuple[str, int]]:
        """Products most often in the same live order as any of ``ref_codes``."""
        if not ref_codes:
            return []
        skip = exclude | set(ref_codes)
        if self._data_version is not None:
            ranked = self._memoised(
                ("together", site, *ref_codes), lambda: self._together(site, ref_codes, None)
            )
        else:
            ranked = self._together(site, ref_codes, limit + len(skip))
        return [item for item in ranked if item[0] not in skip][:limit]

    def _together(
        self, site: str, ref_codes: list[str], limit: int | None
    ) -> list[tuple[str, int]]:
        marks = ", ".join("?" for _ in ref_codes)
        rows = self.db.all(
            f"SELECT other, SUM(orders) AS n FROM stat_pairs WHERE site = ? AND ref_code IN ({marks})"
            " GROUP BY other HAVING SUM(orders) > 0 ORDER BY n DESC, other"
            + ("" if limit is None else " LIMIT ?"),
            (site, *ref_codes) + (() if limit is None else (limit,)),
        )
        return [(ref, int(n)) for ref, n in rows]

    def live_bought(self, site: str, cuid: str = "", user_id: str = "") -> set[str]:
        """refCodes this cuid or user id has bought and not cancelled."""
        return {ref for ref, _, _ in self.history(site, cuid=cuid, user_id=user_id)}

    # history and session_purchases read the buyer's orders first (through the cuid, user or
    # session index), then their lines: SQLite never reorders a CROSS JOIN, and without table
    # statistics it would otherwise start from order_lines by site, reading every line of the
    # site. For PostgreSQL a CROSS JOIN with the join condition in WHERE is a plain join.

    def history(self, site: str, cuid: str = "", user_id: str = "") -> list[tuple[str, int, str]]:
        """(refCode, live quantity, last bought) for a cuid and/or user id, newest first."""
        who: list[str] = []
        params: list[str] = []
        if cuid:  # each term whole, so that SQLite answers the OR from both indexes
            who.append("(o.site = ? AND o.cuid = ?)")
            params += [site, cuid]
        if user_id:
            who.append("(o.site = ? AND o.user_id = ?)")
            params += [site, user_id]
        if not who:
            return []
        rows = self.db.all(
            "SELECT l.ref_code, SUM(l.qty - l.cancelled), MAX(o.ordered_at) FROM orders o"
            " CROSS JOIN order_lines l WHERE l.site = o.site AND l.order_id = o.id"
            f" AND ({' OR '.join(who)}) AND l.qty > l.cancelled"
            " GROUP BY l.ref_code ORDER BY MAX(o.ordered_at) DESC, l.ref_code",
            params,
        )
        return [(ref, int(qty), last) for ref, qty, last in rows]

    def session_purchases(self, site: str, session: str) -> list[tuple[str, int]]:
        """What was bought (live) in this session."""
        rows = self.db.all(
            "SELECT l.ref_code, SUM(l.qty - l.cancelled) FROM orders o"
            " CROSS JOIN order_lines l WHERE l.site = o.site AND l.order_id = o.id"
            " AND o.site = ? AND o.session = ? AND l.qty > l.cancelled"
            " GROUP BY l.ref_code ORDER BY l.ref_code",
            (site, session),
        )
        return [(ref, int(qty)) for ref, qty in rows]

    def report_days(self, site: str, first: date, last: date) -> list[tuple[str, Report]]:
        """One row per day from ``first`` to ``last``, zeros where nothing happened."""
        rows = {
            row[0]: Report(int(row[1]), int(row[2]), dec(row[3]), int(row[4]), dec(row[5]))
            for row in self.db.all(
                "SELECT day, orders, units, revenue, cancelled_orders, cancelled_revenue"
                " FROM stat_days WHERE site = ? AND day >= ? AND day <= ?",
                (site, first.isoformat(), last.isoformat()),
            )
        }
        days = []
        day = first
        while day <= last:
            days.append((day.isoformat(), rows.get(day.isoformat(), Report())))
            day += timedelta(days=1)
        return days

    def list_orders(
        self,
        site: str,
        state: str | None,
        first_day: str | None,
        last_day: str | None,
        after_id: int,
        limit: int,
    ) -> list[OrderRow]:
        where, params = ["site = ?", "id > ?"], [site, after_id]
        if state:
            where.append("state = ?")
            params.append(state)
        if first_day:
            where.append("day >= ?")
            params.append(first_day)
        if last_day:
            where.append("day <= ?")
            params.append(last_day)
        rows = self.db.all(
            "SELECT id, source, channel, order_no, state, total, currency, ordered_at, updated_at"
            f" FROM orders WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [
            OrderRow(int(r[0]), r[1], r[2], r[3], r[4], dec(r[5]), r[6], r[7], r[8]) for r in rows
        ]

    def list_held(self, site: str, now_iso: str) -> list[tuple[Any, ...]]:
        return self.db.all(
            "SELECT source, channel_key, order_no, items, at, expires_at, session, cuid, reason"
            " FROM held_cancels WHERE site = ? AND expires_at > ? ORDER BY id",
            (site, now_iso),
        )

    # -- check ---------------------------------------------------------------------------

    def recompute(self, site: str) -> Delta:
        """The site's statistics summed afresh from its stored orders."""
        total = Delta()
        for order, _ in self._orders(site):
            total.add(order, +1)
        return total.pruned()

    def state_errors(self, site: str) -> list[str]:
        """Orders whose stored state is not what their lines make it."""
        return [
            f"order {order.source} {order.channel} {order.order_no!r}: stored state {stored},"
            f" lines make it {order.state.value}"
            for order, stored in self._orders(site)
            if stored != order.state.value
        ]

    def stored(self, site: str) -> Delta:
        """The site's statistics as the read-model tables hold them."""
        stored = Delta()
        for day, ref, units, revenue in self.db.all(
            "SELECT day, ref_code, units, revenue FROM stat_products WHERE site = ?", (site,)
        ):
            stored.products[(day, ref)] = (int(units), dec(revenue))
        for ref, other, n in self.db.all(
            "SELECT ref_code, other, orders FROM stat_pairs WHERE site = ?", (site,)
        ):
            stored.pairs[(ref, other)] = int(n)
        for row in self.db.all(
            "SELECT day, orders, units, revenue, cancelled_orders, cancelled_revenue"
            " FROM stat_days WHERE site = ?",
            (site,),
        ):
            stored.days[row[0]] = Report(
                int(row[1]), int(row[2]), dec(row[3]), int(row[4]), dec(row[5])
            )
        return stored.pruned()

    def _orders(self, site: str) -> Iterator[tuple[Order, str]]:
        """Every order of the site with its lines, and its state as stored."""
        lines: dict[int, list[Line]] = {}
        for r in self.db.all(
            "SELECT order_id, ref_code, qty, cancelled, price FROM order_lines WHERE site = ?",
            (site,),
        ):
            lines.setdefault(int(r[0]), []).append(
                Line(r[1], int(r[2]), dec(r[4]), cancelled=int(r[3]))
            )
        for r in self.db.all(
            "SELECT id, ordered_at, crowd, cancelled_whole, source, channel_key, order_no, state"
            " FROM orders WHERE site = ?",
            (site,),
        ):
            order = Order(
                site=site,
                source=r[4],
                channel=r[5],
                order_no=r[6],
                currency="",
                subtotal=Decimal(0),
                shipping=Decimal(0),
                total=Decimal(0),
                lines=lines.get(int(r[0]), []),
                ordered_at=from_iso(r[1]),
                crowd=bool(r[2]),
                cancelled_whole=bool(r[3]),
                id=int(r[0]),
            )
            yield order, r[7]
