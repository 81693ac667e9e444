"""Rankings (top sellers, bought together) and what each buyer has live-bought are exact
whoever commits and however requests interleave: the SQLite store keeps them in memory between
commits (recotrack.store.rankings), so these tests read them through one server while other
servers and threads write."""

from __future__ import annotations

import gc
import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from recotrack.importer import parsing_process, run_import
from recotrack.settings import Settings
from recotrack.store.port import Store
from recotrack.store.rankings import rank_sellers, rank_together
from recotrack.store.repository import Repository

from .conftest import Clock, app_on
from .support import Api, order_body
from .tracker_support import pair


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
    for n in range(8):  # what each buyer has live-bought
        assert api.page(site, type="home", user={"id": f"u-{n}"}).status_code == 200
    rankings = api.store._rankings  # type: ignore[attr-defined]
    assert len(rankings._together) >= 8 and rankings._ranked and len(rankings._bought) >= 16
    kept = [*rankings._together.values(), *rankings._ranked.values()]
    gc.collect()
    assert [part for ranked in kept for part in ranked if gc.is_tracked(part)] == []
    assert [buyer for buyer in rankings._bought.values() if gc.is_tracked(buyer)] == []


def test_a_ranking_is_sorted_by_score_then_key_and_read_up_to_its_limit() -> None:
    ranked = rank_together([{"B": 2, "A": 2, "C": 5, "D": 0}, {"E": 1, "D": -1}])
    assert ranked.best(10, set()) == [("C", 5), ("A", 2), ("B", 2), ("E", 1)]
    assert ranked.best(2, {"C"}) == [("A", 2), ("B", 2)]
    assert ranked.best(0, set()) == []
    sellers = rank_sellers({"X": [3, Decimal("1.50")], "Y": [0, Decimal(0)]}, "revenue")
    assert sellers.best(5, set()) == [("X", Decimal("1.50"))]


# -- what a buyer has live-bought --------------------------------------------------------------


def live_bought(store: Store, cuid: str = "", user_id: str = "", session: str = "") -> set[str]:
    return store.read_sync(lambda repo: repo.live_bought("mysite", cuid, user_id, session))


def test_what_buyers_have_live_bought_read_while_orders_change_ends_equal_to_a_fresh_server(
    api: Api, settings: Settings, clock: Clock
) -> None:
    """Pages read each buyer's purchases (held in memory on SQLite) while orders are placed,
    updated, and cancelled whole or in part, under sessions whose cuid changes."""
    site = api.create_site(cancellations=True, cancelAuth="open")
    sessions = [pair(api.page(site, type="home", user={"id": f"u-{n}"})) for n in range(4)]
    products = [f"P{i}" for i in range(1, 7)]

    def write(n: int) -> None:
        who = dict(sessions[n % 4])
        if n % 7 == 0:  # the same session under another cuid (a login on another device)
            who["cuid"] = f"cookie-{n % 3}"
        lines = [(products[(n + k) % 6], 1 + k, "1.50") for k in range(1 + n % 3)]
        user = {"id": f"u-{(n + n // 9) % 5}"}
        response = api.place(site, order_body(f"O{n}", *lines), user=user, **who)
        assert response.status_code == 200, response.text
        if n % 4 == 1:  # the same order again, changed: an update
            response = api.place(site, order_body(f"O{n}", lines[0], ("P7", 2, "1.50")), **who)
            assert response.status_code == 200, response.text
        if n % 5 == 0:
            response = api.cancel("mysite", session="s", cuid="c", orderNo=f"O{n - 3}")
            assert response.status_code in (200, 202), response.text
        if n % 3 == 0:
            part = {"refCode": products[(n - 2) % 6], "qty": 1}
            response = api.cancel("mysite", session="s", cuid="c", orderNo=f"O{n - 2}", **part)
            assert response.status_code in (200, 202, 409), response.text

    def read(n: int) -> None:
        response = api.page(site, type="home", **sessions[n % 4])
        assert response.status_code == 200, response.text

    with ThreadPoolExecutor(6) as pool:
        for job in [pool.submit(write if n % 2 else read, n) for n in range(1, 201)]:
            job.result()

    buyers = [
        *({"cuid": who["cuid"], "session": who["session"]} for who in sessions),
        *({"cuid": f"cookie-{n}"} for n in range(3)),
        *({"user_id": f"u-{n}"} for n in range(5)),
    ]
    with app_on(settings, clock) as fresh:  # read afresh from the tables
        seen = [live_bought(api.store, **buyer) for buyer in buyers]
        assert seen == [live_bought(fresh.store, **buyer) for buyer in buyers]
        assert "P7" in set().union(*seen)  # the updates were made
    api.assert_consistent()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # held on SQLite
def test_a_buyer_held_in_memory_is_moved_by_each_commit_without_reading_its_orders(
    api: Api,
) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    placed = api.place(site, order_body("O1", ("P1", 2, "1.00"), ("P2", 1, "1.00")))
    who = pair(placed)
    statements: list[str] = []

    def traced(cuid: str, session: str = "") -> set[str]:
        def read(repo: Repository) -> set[str]:
            statements.clear()
            repo.db.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
            try:
                return repo.live_bought("mysite", cuid, "", session)
            finally:
                repo.db.conn.set_trace_callback(None)  # type: ignore[attr-defined]

        return api.store.read_sync(read)

    assert traced("a-cuid-never-seen") == set()
    assert [sql for sql in statements if "order_lines" in sql]  # not held: read from the tables
    assert traced(who["cuid"], who["session"]) == {"P1", "P2"}  # held since the order's page
    assert statements and not [sql for sql in statements if "order_lines" in sql], statements
    changes = [
        (lambda: api.place(site, order_body("O2", ("P3", 1, "1.00"), ("P1", 1, "1.00")), **who)),
        (lambda: api.cancel("mysite", orderNo="O1", refCode="P1", qty=1, **who)),
        (lambda: api.cancel("mysite", orderNo="O1", refCode="P1", **who)),
        (lambda: api.cancel("mysite", orderNo="O2", **who)),
    ]
    wanted = [{"P1", "P2", "P3"}, {"P1", "P2", "P3"}, {"P1", "P2", "P3"}, {"P2"}]
    for change, bought in zip(changes, wanted, strict=True):
        assert change().status_code == 200
        assert traced(who["cuid"], who["session"]) == bought
        assert statements and not [sql for sql in statements if "order_lines" in sql], statements
    api.assert_consistent()


def test_an_update_that_gives_an_order_another_user_moves_what_each_user_has_live_bought(
    api: Api,
) -> None:
    """The order's lines and their prices stay the same: no statistic moves, the buyers do."""
    site = api.create_site(cancellations=True, cancelAuth="open")
    first = order_body("O1", ("P1", 1, "1.00"), ("P2", 1, "1.00"))
    assert api.place(site, first, user={"id": "u-1"}).status_code == 200
    sellers = [("P1", 1), ("P2", 1)]
    assert api.top_sellers("mysite", userId="u-1") == []
    assert api.top_sellers("mysite", userId="u-2") == sellers  # held: u-2 has bought nothing
    again = {**first, "shipping": "4.00", "total": "6.00"}
    updated = api.place(site, again, user={"id": "u-2"})
    assert updated.status_code == 200, updated.text
    assert api.order("mysite", "O1")["shipping"] == "4.00"
    assert api.top_sellers("mysite", userId="u-2") == []
    assert api.top_sellers("mysite", userId="u-1") == sellers
    api.assert_consistent()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # held on SQLite
def test_orders_imported_through_the_servers_own_store_reach_the_buyers_it_holds(
    api: Api, tmp_path: Path
) -> None:
    """An import counts its new orders in sums made in its parsing process, which name no
    buyer: the store then lets go of every buyer it holds."""
    site = api.create_site()
    who = pair(api.place(site, order_body("O1", ("P1", 1, "1.00")), user={"id": "u-1"}))
    assert live_bought(api.store, user_id="u-1") == {"P1"}  # held since the order's page
    record = {
        "type": "order",
        "site": "mysite",
        "cuid": who["cuid"],
        "user": {"id": "u-1"},
        "order": {**order_body("I1", ("P2", 1, "1.00")), "orderDate": "2026-11-20T10:00:00Z"},
    }
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with parsing_process() as parser, path.open("rb") as source:
        summary = run_import(api.store, parser, source, api.clock)
    assert summary.outcomes == {"created": 1}
    assert live_bought(api.store, user_id="u-1") == {"P1", "P2"}
    assert live_bought(api.store, cuid=who["cuid"]) == {"P1", "P2"}
    api.assert_consistent()


def test_a_server_sees_at_once_what_a_buyer_bought_or_cancelled_through_another_server(
    api: Api, other: Api
) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    who = pair(api.place(site, order_body("O1", ("P1", 1, "1.00")), user={"id": "u-1"}))
    assert live_bought(api.store, user_id="u-1") == {"P1"}  # held by this server on SQLite
    response = other.place(site, order_body("O2", ("P2", 1, "1.00")), user={"id": "u-1"}, **who)
    assert response.status_code == 200, response.text
    assert live_bought(api.store, who["cuid"], "u-1", who["session"]) == {"P1", "P2"}
    assert other.cancel("mysite", orderNo="O1", **who).status_code == 200
    assert live_bought(api.store, user_id="u-1") == {"P2"}
    api.assert_consistent()
