"""The statistics of API.md section 7, read with plain SQL, and their recomputation.

Top sellers, bought together and daily reports are the ``stat_*`` tables kept by
``Repository.apply``. A buyer's history and a session's purchases are read straight from the
live quantities of the order lines through indexes, so they cannot drift; on SQLite what a buyer
has live-bought is kept in memory between commits as well (``recotrack.store.rankings``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ..domain.orders import Line, Order, buyers
from ..domain.stats import ZERO, Delta, Report
from .db import Db, dec, from_iso
from .rankings import (
    STAMP_KEY,
    Bought,
    Buyer,
    Rankings,
    Scores,
    rank_sellers,
    rank_together,
)

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

    ``rankings``, when given (the SQLite store's readers), keeps top sellers and
    bought-together counts in memory between commits; they are used only for the exact state
    the database is in (``recotrack.store.rankings``).
    """

    def __init__(self, db: Db, rankings: Rankings | None = None) -> None:
        self.db = db
        self._rankings = rankings

    def top_sellers(
        self, site: str, by: str, first_day: str, last_day: str, limit: int, exclude: set[str]
    ) -> list[tuple[str, Decimal | int]]:
        """Products ranked by live units or revenue over the days given; ties by refCode."""
        key = (site, by, first_day, last_day)
        rankings = self._rankings
        ranked = None if rankings is None else rankings.sellers(self._stamp(), key)
        if ranked is None:
            with self._consistent():
                stamp = self._stamp()
                scores = self._seller_scores(site, by, first_day, last_day)
            ranked = rank_sellers(scores, by)
            if rankings is not None:
                rankings.keep_sellers(stamp, key, scores)
        return ranked.best(limit, exclude)

    def _seller_scores(self, site: str, by: str, first_day: str, last_day: str) -> Scores:
        if by == "units":  # no money sum: on SQLite it is a Python aggregate per row
            rows = self.db.all(
                "SELECT ref_code, SUM(units) FROM stat_products"
                " WHERE site = ? AND day >= ? AND day <= ? GROUP BY ref_code",
                (site, first_day, last_day),
            )
            return {ref: [int(units), ZERO] for ref, units in rows}
        rows = self.db.all(
            f"SELECT ref_code, SUM(units), {self.db.dialect.money_sum('revenue')}"
            " FROM stat_products WHERE site = ? AND day >= ? AND day <= ? GROUP BY ref_code",
            (site, first_day, last_day),
        )
        return {ref: [int(units), dec(revenue)] for ref, units, revenue in rows}

    def bought_together(
        self, site: str, ref_codes: list[str], limit: int, exclude: set[str]
    ) -> list[tuple[str, int]]:
        """Products most often in the same live order as any of ``ref_codes``."""
        refs = list(dict.fromkeys(ref_codes))
        if not refs:
            return []
        rankings = self._rankings
        ranked = None if rankings is None else rankings.together(self._stamp(), site, refs)
        if ranked is None:
            with self._consistent():
                stamp = self._stamp()
                loaded = self._pair_counts(site, refs)
            ranked = rank_together(list(loaded.values()))
            if rankings is not None:
                rankings.keep_pairs(stamp, site, loaded)
        return ranked.best(limit, exclude | set(refs))

    def _pair_counts(self, site: str, refs: list[str]) -> dict[str, dict[str, int]]:
        loaded: dict[str, dict[str, int]] = {ref: {} for ref in refs}
        marks = ", ".join("?" for _ in refs)
        for ref, other, n in self.db.all(
            "SELECT ref_code, other, orders FROM stat_pairs"
            f" WHERE site = ? AND ref_code IN ({marks})",
            (site, *refs),
        ):
            loaded[ref][other] = int(n)
        return loaded

    def _stamp(self) -> str:
        row = self.db.one("SELECT value FROM meta WHERE key = ?", (STAMP_KEY,))
        return "" if row is None else str(row[0])

    @contextlib.contextmanager
    def _consistent(self) -> Iterator[None]:
        """Every query inside sees the same commit (a read transaction, unless in one)."""
        if getattr(self.db.conn, "in_transaction", True):
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def live_bought(
        self, site: str, cuid: str = "", user_id: str = "", session: str = ""
    ) -> set[str]:
        """refCodes this cuid, user id or session has bought and not cancelled (read on every
        page and recommendation request): from the rankings when they hold these buyers for
        the state the database is in, else with one query."""
        who = buyers(cuid, user_id, session)
        if not who:
            return set()
        rankings = self._rankings
        if rankings is None:
            return self._live_refs(site, who)
        found = rankings.bought(self._stamp(), site, who)
        if found is None:
            with self._consistent():
                stamp = self._stamp()
                loaded = {buyer: self._live_lines(site, *buyer) for buyer in who}
            rankings.keep_bought(stamp, site, loaded)
            found = set().union(*loaded.values())
        return found

    def _live_refs(self, site: str, who: list[Buyer]) -> set[str]:
        # each term whole, so that SQLite answers the OR from the indexes
        terms = " OR ".join(f"(o.site = ? AND o.{name} = ?)" for name, _ in who)
        params = [param for _, value in who for param in (site, value)]
        dialect = self.db.dialect
        (found,) = self.db.one(
            f"SELECT {dialect.text_array('l.ref_code')} FROM orders o CROSS JOIN order_lines l"
            " WHERE l.site = o.site AND l.order_id = o.id"
            f" AND ({terms}) AND l.qty > l.cancelled",
            params,
        )
        return set(dialect.texts(found))

    def _live_lines(self, site: str, name: str, value: str) -> Bought:
        """What one buyer has live-bought, as the rankings keep it: its order lines with a
        live unit, counted per refCode."""
        return {
            ref: int(n)
            for ref, n in self.db.all(
                "SELECT l.ref_code, COUNT(*) FROM orders o CROSS JOIN order_lines l"
                " WHERE l.site = o.site AND l.order_id = o.id"
                f" AND o.site = ? AND o.{name} = ? AND l.qty > l.cancelled GROUP BY l.ref_code",
                (site, value),
            )
        }

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
