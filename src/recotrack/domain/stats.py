"""What one order adds to the statistics of API.md section 7, and how a change moves them.

The store keeps the sums of ``contribution`` over all orders in its read-model tables. Each
change of an order applies ``delta(before, after)`` in the same transaction, and
``recotrack check`` recomputes the sums from the orders with the same function, so the two
can only differ if a change was lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import permutations

from .orders import Order

ZERO = Decimal(0)

# An order with more distinct live products than this adds nothing to bought together: its
# pairs grow with the square of its size (1,000 products make 499,500 pairs, seconds of
# writing), and a bulk purchase says little about which products go together.
MAX_PAIR_PRODUCTS = 100


@dataclass(frozen=True)
class Report:
    """One order's share of its day's report row."""

    orders: int = 0
    units: int = 0
    revenue: Decimal = ZERO
    cancelled_orders: int = 0
    cancelled_revenue: Decimal = ZERO

    def __add__(self, other: Report) -> Report:
        return Report(
            self.orders + other.orders,
            self.units + other.units,
            self.revenue + other.revenue,
            self.cancelled_orders + other.cancelled_orders,
            self.cancelled_revenue + other.cancelled_revenue,
        )

    def __neg__(self) -> Report:
        return Report(
            -self.orders,
            -self.units,
            -self.revenue,
            -self.cancelled_orders,
            -self.cancelled_revenue,
        )

    def __bool__(self) -> bool:
        return any(
            (self.orders, self.units, self.revenue, self.cancelled_orders, self.cancelled_revenue)
        )


_NO_REPORT = Report()


@dataclass
class Delta:
    """Additions (negative to remove) to the read model of one site."""

    # (day, refCode) -> (units, revenue): top sellers
    products: dict[tuple[str, str], tuple[int, Decimal]] = field(default_factory=dict)
    # (refCode, otherRefCode) -> orders, both directions: bought together
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    # day -> report row
    days: dict[str, Report] = field(default_factory=dict)

    def add(self, order: Order, sign: int) -> None:
        # Runs for every change of an order (and every order of an import): plain loops and
        # locals. Every sum starts from ZERO and adds in line order, so amounts keep the
        # decimal places they are stored with.
        live: dict[str, tuple[int, Decimal]] = {}
        cancelled_revenue = ZERO
        for line in order.lines:
            price, cancelled = line.price, line.cancelled
            cancelled_revenue += price * cancelled
            units = line.qty - cancelled  # line.live
            if units:
                found = live.get(line.ref_code)
                old_units, old_revenue = (0, ZERO) if found is None else found
                live[line.ref_code] = (old_units + units, old_revenue + price * units)
        day = order.day
        units_sum, revenue_sum = 0, ZERO
        for units, revenue in live.values():
            units_sum += units
            revenue_sum += revenue
        # cancelled orders: order.state is State.CANCELLED (no line has a live unit left)
        orders, cancelled_orders = (
            (1 if live else 0),
            (1 if order.cancelled_whole or not live else 0),
        )
        if sign < 0:
            orders, units_sum, revenue_sum = -orders, -units_sum, -revenue_sum
            cancelled_orders, cancelled_revenue = -cancelled_orders, -cancelled_revenue
        days = self.days
        old = days.get(day, _NO_REPORT)  # one Report made per order: each costs a microsecond
        days[day] = Report(
            old.orders + orders,
            old.units + units_sum,
            old.revenue + revenue_sum,
            old.cancelled_orders + cancelled_orders,
            old.cancelled_revenue + cancelled_revenue,
        )
        if not order.crowd:
            return
        products = self.products
        for ref_code, (units, revenue) in live.items():
            old_units, old_revenue = products.get((day, ref_code), (0, ZERO))
            if sign < 0:
                units, revenue = -units, -revenue
            products[(day, ref_code)] = (old_units + units, old_revenue + revenue)
        if len(live) > MAX_PAIR_PRODUCTS:
            return
        pairs = self.pairs
        for pair in permutations(live, 2):  # (a, b) and (b, a); written in key order
            pairs[pair] = pairs.get(pair, 0) + sign

    def count(self, before: Order | None, after: Order | None) -> None:
        """Add what the read model must add when ``before`` becomes ``after`` (either may be
        None): a group commit counts each of its writes into one total this way."""
        if before is not None:
            self.add(before, -1)
        if after is not None:
            self.add(after, +1)

    def merge(self, other: Delta) -> None:
        """Add ``other``, a sum made elsewhere, to this one."""
        products = self.products
        for key, (units, revenue) in other.products.items():
            old_units, old_revenue = products.get(key, (0, ZERO))
            products[key] = (old_units + units, old_revenue + revenue)
        pairs = self.pairs
        for pair, orders in other.pairs.items():
            pairs[pair] = pairs.get(pair, 0) + orders
        days = self.days
        for day, report in other.days.items():
            days[day] = days.get(day, _NO_REPORT) + report

    def __bool__(self) -> bool:
        return bool(self.products or self.pairs or self.days)

    def pruned(self) -> Delta:
        """The same delta without entries that add nothing."""
        return Delta(
            {key: value for key, value in self.products.items() if value[0] or value[1]},
            {key: value for key, value in self.pairs.items() if value},
            {key: value for key, value in self.days.items() if value},
        )


def delta(before: Order | None, after: Order | None) -> Delta:
    """What the read model must add when ``before`` becomes ``after`` (either may be None)."""
    change = Delta()
    change.count(before, after)
    if before is None or after is None:
        # One order alone has no entry that adds nothing: each line counted has live units,
        # each pair counts once, and its day counts it as an order or as cancelled.
        return change
    return change.pruned()


# A change of one order, as a write reports it: (site, before, after), either may be None.
# The orders are counted when the batch is summed, so nothing may change them after the
# write that reported them. ``after`` may instead be a ``Delta`` summed elsewhere (the import's
# parsing process sums its new orders), with ``before`` None: it is added as it is, and is
# the batch's to change from then on.
Change = tuple[str, Order | None, Order | Delta | None]


def add_by_site(totals: dict[str, Delta], changes: Iterable[Change]) -> None:
    """Count each change in its site's total in ``totals``."""
    for site, before, after in changes:
        total = totals.get(site)
        if isinstance(after, Delta):
            if total is None:
                totals[site] = after  # the first for its site: no entry to add twice
            else:
                total.merge(after)
            continue
        if total is None:
            total = totals[site] = Delta()
        total.count(before, after)


def to_write(totals: dict[str, Delta]) -> dict[str, Delta]:
    """The sites whose totals add something, each without the entries that add nothing, in
    site order (the order their rows are written and locked in)."""
    return {site: total for site in sorted(totals) if (total := totals[site].pruned())}


def moves_buyers(changes: Iterable[Change]) -> bool:
    """Whether any change moves what some buyer has live-bought, statistics or not (a re-sent
    order can change its user id alone); a sum made elsewhere is taken to."""
    for _, before, after in changes:
        if isinstance(after, Delta) or _bought(before) != _bought(after):
            return True
    return False


def _bought(order: Order | None) -> tuple[list[tuple[str, str]], list[str]] | None:
    return None if order is None else (order.buyers(), sorted(order.live_refs()))
