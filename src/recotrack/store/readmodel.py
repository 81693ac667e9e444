"""The statistics of API.md section 7, read with plain SQL, and their recomputation.

Top sellers, bought together and daily reports are the ``stat_*`` tables kept by
``Repository.apply``. A buyer's history and a session's purchases are read straight from the
live quantities of the order lines through indexes, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    """Queries over one connection; the write side (``Repository``) extends it."""

    def __init__(self, db: Db) -> None:
        self.db = db

    def top_sellers(
        self, site: str, by: str, first_day: str, last_day: str, limit: int, exclude: set[str]
    ) -> list[tuple[str, Decimal | int]]:
        """Products ranked by live units or revenue over the days given; ties by refCode."""
        rows = self.db.all(
            f"SELECT ref_code, SUM(units), {self.db.dialect.money_sum('revenue')}"
            " FROM stat_products WHERE site = ? AND day >= ? AND day <= ? GROUP BY ref_code",
            (site, first_day, last_day),
        )
        scored: list[tuple[str, Decimal | int]] = [
            (ref, int(units) if by == "units" else dec(revenue))
            for ref, units, revenue in rows
            if int(units) > 0 and ref not in exclude
        ]
        scored.sort(key=lambda item: (-item[1], item[0]))
        return scored[:limit]

    def bought_together(
        self, site: str, ref_codes: list[str], limit: int, exclude: set[str]
    ) -> list[tuple[str, int]]:
        """Products most often in the same live order as any of ``ref_codes``."""
        if not ref_codes:
            return []
        marks = ", ".join("?" for _ in ref_codes)
        skip = exclude | set(ref_codes)
        rows = self.db.all(
            f"SELECT other, SUM(orders) AS n FROM stat_pairs WHERE site = ? AND ref_code IN ({marks})"
            " GROUP BY other HAVING SUM(orders) > 0 ORDER BY n DESC, other LIMIT ?",
            (site, *ref_codes, limit + len(skip)),
        )
        return [(ref, int(n)) for ref, n in rows if ref not in skip][:limit]

    def live_bought(self, site: str, cuid: str = "", user_id: str = "") -> set[str]:
        """refCodes this cuid or user id has bought and not cancelled."""
        return {ref for ref, _, _ in self.history(site, cuid=cuid, user_id=user_id)}

    def history(self, site: str, cuid: str = "", user_id: str = "") -> list[tuple[str, int, str]]:
        """(refCode, live quantity, last bought) for a cuid and/or user id, newest first."""
        who, params = [], [site]
        if cuid:
            who.append("o.cuid = ?")
            params.append(cuid)
        if user_id:
            who.append("o.user_id = ?")
            params.append(user_id)
        if not who:
            return []
        rows = self.db.all(
            "SELECT l.ref_code, SUM(l.qty - l.cancelled), MAX(o.ordered_at) FROM orders o"
            " JOIN order_lines l ON l.site = o.site AND l.order_id = o.id"
            f" WHERE o.site = ? AND ({' OR '.join(who)}) AND l.qty > l.cancelled"
            " GROUP BY l.ref_code ORDER BY MAX(o.ordered_at) DESC, l.ref_code",
            params,
        )
        return [(ref, int(qty), last) for ref, qty, last in rows]

    def session_purchases(self, site: str, session: str) -> list[tuple[str, int]]:
        """What was bought (live) in this session."""
        rows = self.db.all(
            "SELECT l.ref_code, SUM(l.qty - l.cancelled) FROM orders o"
            " JOIN order_lines l ON l.site = o.site AND l.order_id = o.id"
            " WHERE o.site = ? AND o.session = ? AND l.qty > l.cancelled"
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
        for order in self._orders(site):
            total.add(order, +1)
        return total.pruned()

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

    def _orders(self, site: str) -> Iterator[Order]:
        lines: dict[int, list[Line]] = {}
        for r in self.db.all(
            "SELECT order_id, ref_code, qty, cancelled, price FROM order_lines WHERE site = ?",
            (site,),
        ):
            lines.setdefault(int(r[0]), []).append(
                Line(r[1], int(r[2]), dec(r[4]), cancelled=int(r[3]))
            )
        for r in self.db.all(
            "SELECT id, ordered_at, crowd, cancelled_whole FROM orders WHERE site = ?", (site,)
        ):
            yield Order(
                site=site,
                source="",
                channel="",
                order_no="",
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
