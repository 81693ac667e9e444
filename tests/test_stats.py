"""What one order adds to the statistics, exactly: the amounts keep their decimal places
(they are stored as text on SQLite), and only a change of an order has entries to prune."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from recotrack.domain.orders import ONLINE, Line, Order
from recotrack.domain.stats import Delta, Report, add_by_site, delta, to_write

DAY = "2026-11-20"


def order(*lines: tuple[str, int, str, int], crowd: bool = True) -> Order:
    return Order(
        site="shop",
        source=ONLINE,
        channel="web",
        order_no="W1",
        currency="GBP",
        subtotal=Decimal("0"),
        shipping=Decimal("0"),
        total=Decimal("0"),
        lines=[
            Line(ref, qty, Decimal(price), cancelled=cancelled)
            for ref, qty, price, cancelled in lines
        ],
        ordered_at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        crowd=crowd,
    )


def shown(change: Delta) -> tuple[object, ...]:
    """The delta with every amount as its text, exponent included."""
    return (
        {key: (units, str(revenue)) for key, (units, revenue) in change.products.items()},
        change.pairs,
        {
            day: (r.orders, r.units, str(r.revenue), r.cancelled_orders, str(r.cancelled_revenue))
            for day, r in change.days.items()
        },
    )


def test_a_new_order_adds_its_live_units_and_revenue_and_its_cancelled_revenue() -> None:
    placed = order(("milk", 3, "1.10", 1), ("bread", 1, "2", 0), ("jam", 2, "0.50", 2))
    assert shown(delta(None, placed)) == (
        {(DAY, "milk"): (2, "2.20"), (DAY, "bread"): (1, "2")},
        {("bread", "milk"): 1, ("milk", "bread"): 1},
        {DAY: (1, 3, "4.20", 0, "2.10")},
    )
    assert shown(delta(placed, None)) == (
        {(DAY, "milk"): (-2, "-2.20"), (DAY, "bread"): (-1, "-2")},
        {("bread", "milk"): -1, ("milk", "bread"): -1},
        {DAY: (-1, -3, "-4.20", 0, "-2.10")},
    )


def test_an_order_without_live_units_counts_as_cancelled_outside_the_crowd_too() -> None:
    gone = order(("milk", 1, "1.10", 1), crowd=False)
    assert shown(delta(None, gone)) == ({}, {}, {DAY: (0, 0, "0", 1, "1.10")})


def test_a_change_keeps_only_what_moved() -> None:
    before = order(("milk", 2, "1.10", 0), ("bread", 1, "2.00", 0))
    after = order(("milk", 2, "1.10", 1), ("bread", 1, "2.00", 0))
    assert shown(delta(before, after)) == (
        {(DAY, "milk"): (-1, "-1.10")},
        {},
        {DAY: (0, -1, "-1.10", 0, "1.10")},
    )


def test_counting_changes_into_one_total_sums_entry_by_entry() -> None:
    total = Delta()
    total.count(None, order(("milk", 1, "1.10", 0), ("tea", 1, "4", 0)))
    total.count(None, order(("milk", 2, "1.1", 0)))
    total.count(order(("tea", 1, "4", 0)), order(("tea", 1, "4", 1)))
    assert shown(total) == (
        {(DAY, "milk"): (3, "3.30"), (DAY, "tea"): (0, "0")},
        {("milk", "tea"): 1, ("tea", "milk"): 1},
        {DAY: (1, 3, "3.30", 1, "4.00")},
    )
    assert shown(total.pruned()) == (
        {(DAY, "milk"): (3, "3.30")},
        {("milk", "tea"): 1, ("tea", "milk"): 1},
        {DAY: (1, 3, "3.30", 1, "4.00")},
    )
    assert Report() + Report(1) == Report(1)


def test_a_batch_writes_each_site_once_and_only_what_adds_something() -> None:
    """A writer sums its batch's changes by site; a site whose changes cancel out is not
    written at all (no statement, no new stamp), and the others in site order, pruned."""
    placed = order(("P1", 1, "2.50", 0), ("P2", 1, "1.00", 0))
    totals: dict[str, Delta] = {}
    add_by_site(totals, [("zeta", None, placed), ("beta", None, placed), ("alpha", None, placed)])
    add_by_site(totals, [("zeta", placed, None), ("alpha", None, placed)])
    written = to_write(totals)
    assert list(written) == ["alpha", "beta"]
    assert shown(written["alpha"]) == shown(
        Delta(
            {(DAY, "P1"): (2, Decimal("5.00")), (DAY, "P2"): (2, Decimal("2.00"))},
            {("P1", "P2"): 2, ("P2", "P1"): 2},
            {DAY: Report(2, 4, Decimal("7.00"), 0, Decimal("0.00"))},
        )
    )
    assert not to_write({"zeta": totals["zeta"]}) and not Delta()


def test_sums_made_elsewhere_count_as_the_changes_they_sum_wherever_they_come() -> None:
    """The import's parsing process sums its new orders; the writer's batch takes that sum
    as its site's total when it comes first and adds it entry by entry when it does not."""
    first = order(("milk", 2, "1.10", 0), ("tea", 1, "4", 0))
    second = order(("milk", 1, "1.1", 0), ("jam", 3, "0.50", 1))
    third = order(("tea", 2, "4.00", 0))
    one_by_one: dict[str, Delta] = {}
    add_by_site(one_by_one, [("shop", None, first), ("shop", None, second)])
    add_by_site(one_by_one, [("shop", None, third), ("shop", first, None)])

    summed = Delta()
    summed.count(None, first)
    summed.count(None, second)
    later = Delta()
    later.count(None, third)
    totals: dict[str, Delta] = {}
    add_by_site(totals, [("shop", None, summed), ("shop", None, later), ("shop", first, None)])
    assert totals["shop"] is summed  # the first sum is taken, not copied
    assert shown(totals["shop"]) == shown(one_by_one["shop"])

    again = Delta()
    again.count(None, first)
    again.count(None, second)
    after_a_change: dict[str, Delta] = {}
    add_by_site(after_a_change, [("shop", first, None), ("shop", None, again)])
    add_by_site(after_a_change, [("shop", None, third)])
    assert shown(after_a_change["shop"]) == shown(one_by_one["shop"])
