"""Rankings (top sellers, bought together) are exact whoever commits and however requests
interleave: the SQLite store keeps them in memory between commits (recotrack.store.rankings),
so these tests read them through one server while other servers and threads write."""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from recotrack.settings import Settings
from recotrack.store.rankings import rank_sellers, rank_together

from .conftest import Clock, app_on
from .support import Api, order_body


def figures(api: Api) -> tuple[object, ...]:
    return (
        api.top_sellers("mysite", limit=100),
        api.top_sellers("mysite", by="revenue", limit=100),
        *(api.bought_together("mysite", ref, limit=100) for ref in ("P1", "P2", "P3", "P4")),
        api.bought_together("mysite", "P1", "P2", limit=100),
    )


def test_a_server_sees_the_rankings_another_server_changed_at_once(api: Api, other: Api) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    api.place(site, order_body("O1", ("P1", 1, "2.00"), ("P2", 1, "3.00")))
    assert api.top_sellers("mysite") == [("P1", 1), ("P2", 1)]
    assert api.bought_together("mysite", "P1") == [("P2", 1)]

    other.place(site, order_body("O2", ("P2", 5, "3.00"), ("P3", 2, "1.00")))
    assert api.top_sellers("mysite") == [("P2", 6), ("P3", 2), ("P1", 1)]
    assert api.bought_together("mysite", "P2") == [("P1", 1), ("P3", 1)]
    assert figures(api) == figures(other)

    # the other server commits, then this one: its rankings must not add to stale ones
    other.place(site, order_body("O3", ("P3", 4, "1.00"), ("P4", 1, "9.00")))
    api.place(site, order_body("O4", ("P4", 1, "9.00"), ("P1", 1, "2.00")))
    assert api.top_sellers("mysite") == [("P2", 6), ("P3", 6), ("P1", 2), ("P4", 2)]
    assert api.bought_together("mysite", "P4") == [("P1", 1), ("P3", 1)]
    assert figures(api) == figures(other)

    response = other.cancel("mysite", session="s", cuid="c", orderNo="O2")
    assert response.status_code == 200, response.text
    assert api.top_sellers("mysite") == [("P3", 4), ("P1", 2), ("P4", 2), ("P2", 1)]
    assert api.bought_together("mysite", "P2") == [("P1", 1)]
    assert figures(api) == figures(other)
    api.assert_consistent()


def test_rankings_read_while_orders_are_written_end_equal_to_a_fresh_server(
    api: Api, settings: Settings, clock: Clock
) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    products = [f"P{i}" for i in range(1, 9)]

    def write(n: int) -> None:
        lines = [(products[(n + k * 3) % 8], 1 + n % 3, "1.50") for k in range(3)]
        response = api.place(site, order_body(f"O{n}", *lines))
        assert response.status_code == 200, response.text
        if n % 5 == 0:
            response = api.cancel("mysite", session="s", cuid="c", orderNo=f"O{n - 2}")
            assert response.status_code in (200, 202), response.text

    def read(n: int) -> None:
        api.top_sellers("mysite", limit=100)
        api.bought_together("mysite", products[n % 8], products[(n + 1) % 8], limit=100)

    with ThreadPoolExecutor(6) as pool:
        for job in [pool.submit(write if n % 2 else read, n) for n in range(1, 241)]:
            job.result()

    with app_on(settings, clock) as fresh:  # rankings read afresh from the tables
        assert figures(api) == figures(fresh)
        assert figures(api)[0] != []
    api.assert_consistent()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # rankings are SQLite's
def test_kept_rankings_are_left_alone_by_the_cyclic_collector(api: Api) -> None:
    """Thousands of kept rankings must not be walked by every full collection (which stops
    the event loop): once the collector has looked at them, none of them is tracked."""
    site = api.create_site(cancellations=True, cancelAuth="open")
    products = [f"P{i}" for i in range(1, 9)]
    for n in range(8):
        lines = [(products[(n + k) % 8], 1, "1.50") for k in range(3)]
        assert api.place(site, order_body(f"O{n}", *lines)).status_code == 200
    for n in range(8):  # the first read loads the pairs, the second keeps the ranking
        for _ in range(2):
            assert api.bought_together("mysite", products[n], products[(n + 3) % 8]) != []
    assert api.top_sellers("mysite") != []
    rankings = api.store._rankings  # type: ignore[attr-defined]
    assert len(rankings._together) >= 8 and rankings._ranked
    kept = [*rankings._together.values(), *rankings._ranked.values()]
    gc.collect()
    assert [part for ranked in kept for part in ranked if gc.is_tracked(part)] == []


def test_a_ranking_is_sorted_by_score_then_key_and_read_up_to_its_limit() -> None:
    ranked = rank_together([{"B": 2, "A": 2, "C": 5, "D": 0}, {"E": 1, "D": -1}])
    assert ranked.best(10, set()) == [("C", 5), ("A", 2), ("B", 2), ("E", 1)]
    assert ranked.best(2, {"C"}) == [("A", 2), ("B", 2)]
    assert ranked.best(0, set()) == []
    sellers = rank_sellers({"X": [3, Decimal("1.50")], "Y": [0, Decimal(0)]}, "revenue")
    assert sellers.best(5, set()) == [("X", Decimal("1.50"))]
