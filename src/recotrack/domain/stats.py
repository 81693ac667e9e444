"""What one order adds to the statistics of API.md section 7, and how a change moves them.

The store keeps the sums of ``contribution`` over all orders in its read-model tables. Each
change of an order applies ``delta(before, after)`` in the same transaction, and
``recotrack check`` recomputes the sums from the orders with the same function, so the two
can only differ if a change was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import combinations

from .orders import Order, State

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
        live: dict[str, tuple[int, Decimal]] = {}
        cancelled_revenue = ZERO
        for line in order.lines:
            cancelled_revenue += line.price * line.cancelled
            if line.live:
                units, revenue = live.get(line.ref_code, (0, ZERO))
                live[line.ref_code] = (units + line.live, revenue + line.price * line.live)
        day = order.day
        report = Report(
            orders=1 if live else 0,
            units=sum(units for units, _ in live.values()),
            revenue=sum((revenue for _, revenue in live.values()), ZERO),
            cancelled_orders=1 if order.state is State.CANCELLED else 0,
            cancelled_revenue=cancelled_revenue,
        )
        self.days[day] = self.days.get(day, Report()) + (report if sign > 0 else -report)
        if not order.crowd:
            return
        for ref_code, (units, revenue) in live.items():
            old_units, old_revenue = self.products.get((day, ref_code), (0, ZERO))
            self.products[(day, ref_code)] = (
                old_units + sign * units,
                old_revenue + sign * revenue,
            )
        if len(live) > MAX_PAIR_PRODUCTS:
            return
        for a, b in combinations(sorted(live), 2):
            self.pairs[(a, b)] = self.pairs.get((a, b), 0) + sign
            self.pairs[(b, a)] = self.pairs.get((b, a), 0) + sign

    def merge(self, change: Delta) -> None:
        """Add ``change`` to this delta (a group commit sums its writes' changes)."""
        for key, (units, revenue) in change.products.items():
            old_units, old_revenue = self.products.get(key, (0, ZERO))
            self.products[key] = (old_units + units, old_revenue + revenue)
        for pair, orders in change.pairs.items():
            self.pairs[pair] = self.pairs.get(pair, 0) + orders
        for day, report in change.days.items():
            self.days[day] = self.days.get(day, Report()) + report

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
    if before is not None:
        change.add(before, -1)
    if after is not None:
        change.add(after, +1)
    return change.pruned()
