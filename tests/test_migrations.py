"""Schema migrations on both backends: from empty, from a populated version-1 database made by
an earlier release, several servers starting together, and a newer schema refused."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from recotrack.cli import main
from recotrack.domain.orders import ONLINE, CancelItem, Line, Order
from recotrack.domain.sites import SiteSettings
from recotrack.http.app import create_app
from recotrack.services.check import check_site
from recotrack.services.orders import Context, cancel_order, place_order
from recotrack.services.sites import create_site, load_site
from recotrack.settings import Settings
from recotrack.store import open_store
from recotrack.store.db import Db, Dialect, StoreError
from recotrack.store.migrate import migrate
from recotrack.store.repository import Repository
from recotrack.store.schema import LATEST, POSTGRES, SQLITE, migrations
from recotrack.store.sqlite import connect

from .support import ADMIN, AUTH, order_body

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
V1_TABLES = (
    "meta",
    "sites",
    "tokens",
    "sessions",
    "orders",
    "order_lines",
    "order_events",
    "held_cancels",
    "stat_products",
    "stat_pairs",
    "stat_days",
)


@contextmanager
def raw_db(url: str) -> Iterator[Db]:
    """A connection of our own in autocommit mode, outside any store."""
    if url.startswith("sqlite:///"):
        conn = connect(url.removeprefix("sqlite:///"))
        try:
            yield Db(conn, Dialect(SQLITE))
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        yield Db(pg, Dialect(POSTGRES))


@contextmanager
def transaction(db: Db) -> Iterator[Repository]:
    db.execute("BEGIN")
    try:
        yield Repository(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def versions(db: Db) -> list[tuple[int, str]]:
    return [
        (int(v), name)
        for v, name in db.all("SELECT version, name FROM schema_version ORDER BY version")
    ]


def indexes(db: Db) -> set[str]:
    if db.dialect.postgres:
        rows = db.all("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    else:
        rows = db.all("SELECT name FROM sqlite_master WHERE type = 'index'")
    return {row[0] for row in rows}


def snapshot(db: Db) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every version-1 table, in a stable order."""
    tables = {}
    for table in V1_TABLES:
        tables[table] = sorted(db.all(f"SELECT * FROM {table}"), key=repr)
    return tables


def online_order(order_no: str, *lines: tuple[str, int, str]) -> Order:
    subtotal = sum((Decimal(price) * qty for _, qty, price in lines), Decimal(0))
    return Order(
        site="shop",
        source=ONLINE,
        channel="web",
        order_no=order_no,
        currency="GBP",
        subtotal=subtotal,
        shipping=Decimal(0),
        total=subtotal,
        lines=[Line(ref, qty, Decimal(price)) for ref, qty, price in lines],
        ordered_at=NOW,
        session="s-1",
        cuid="c-1",
    )


def populate_version_1(db: Db) -> str:
    """What an earlier release stored: a site, orders, cancellations and a held one.
    Returns the site's web clientToken."""
    with transaction(db) as repo:
        made = create_site(repo, "shop", NOW, SiteSettings(cancellations=True))
    with transaction(db) as repo:
        site = load_site(repo, "shop")
        place_order(repo, site, online_order("A1", ("P1", 2, "10.00"), ("P2", 3, "2.50")), NOW)
        place_order(repo, site, online_order("A2", ("P1", 1, "10.00"), ("P3", 1, "7.25")), NOW)
        cancel_order(repo, site, ONLINE, "", "A1", [CancelItem("P2", 1)], Context(), NOW)
        cancel_order(repo, site, ONLINE, "", "A2", None, Context(reason="changed mind"), NOW)
        cancel_order(repo, site, ONLINE, "", "A9", None, Context(session="s-9"), NOW)
    return made.client_tokens["web"]


def test_an_empty_database_is_migrated_to_the_latest_version(database_url: str) -> None:
    store = open_store(Settings(database_url=database_url))
    store.close()
    assert store.schema_version == LATEST
    with raw_db(database_url) as db:
        assert versions(db) == [(m.version, m.name) for m in migrations(db.dialect.name)]
        assert {"orders_by_state", "held_by_expiry", "orders_by_number"} <= indexes(db)
        assert snapshot(db)["orders"] == []
    again = open_store(Settings(database_url=database_url))
    again.close()
    with raw_db(database_url) as db:
        assert [v for v, _ in versions(db)] == list(range(1, LATEST + 1))


def test_recotrack_migrate_prints_the_version_and_can_run_again(database_url: str) -> None:
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["migrate", "--database", database_url])
        assert result.exit_code == 0, result.output
        assert f"schema is up to date (version {LATEST})" in result.output


def test_a_populated_version_1_database_keeps_its_data_when_upgraded(
    database_url: str,
) -> None:
    with raw_db(database_url) as db:
        assert migrate(db, target=1) == 1
        assert "orders_by_state" not in indexes(db)
        token = populate_version_1(db)
        before = snapshot(db)
    assert len(before["orders"]) == 2 and len(before["held_cancels"]) == 1

    store = open_store(Settings(database_url=database_url, admin_token=ADMIN))
    try:
        assert store.schema_version == LATEST
        with raw_db(database_url) as db:
            assert [v for v, _ in versions(db)] == list(range(1, LATEST + 1))
            assert {"orders_by_state", "held_by_expiry", "orders_by_number"} <= indexes(db)
            assert snapshot(db) == before
        assert store.read_sync(lambda reads: check_site(reads, "shop")) == []
        with TestClient(create_app(Settings(admin_token=ADMIN), store=store)) as client:
            order = client.get("/api/v1/sites/shop/orders/A1", headers=AUTH).json()["order"]
            assert order["state"] == "partially-cancelled"
            assert [line["liveQuantity"] for line in order["lines"]] == [2, 2]
            listed = client.get(
                "/api/v1/sites/shop/orders", params={"state": "cancelled"}, headers=AUTH
            ).json()["orders"]
            assert [o["orderNo"] for o in listed] == ["A2"]
            # The token issued before the upgrade still works, and the cancellation held
            # before it still meets its order after it.
            jd = _jd(token, order_body("A9", ("P1", 1, "10.00")))
            placed = client.get("/tracker/api/v1_4/rest.pagex", params={"jd": jd})
            assert placed.status_code == 200, placed.text
            assert placed.json()["errors"][0]["code"] == "CancelledOnArrival"
            assert placed.json()["order"]["state"] == "cancelled"
        assert store.read_sync(lambda reads: check_site(reads, "shop")) == []
    finally:
        store.close()


def _jd(token: str, order: dict[str, Any]) -> str:
    return json.dumps(
        {
            "site": "shop",
            "clientToken": token,
            "session": "new",
            "cuid": "new",
            "type": "order",
            "order": order,
        }
    )


def test_a_schema_newer_than_the_code_is_refused_by_the_store_and_the_cli(
    database_url: str,
) -> None:
    open_store(Settings(database_url=database_url)).close()
    with raw_db(database_url) as db:
        db.execute(
            "INSERT INTO schema_version (version, name) VALUES (?, ?)",
            (LATEST + 1, "from a newer release"),
        )
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1}, newer than"):
        open_store(Settings(database_url=database_url))
    runner = CliRunner()
    for command in (["migrate"], ["serve", "--port", "1"]):
        result = runner.invoke(main, [*command, "--database", database_url])
        assert result.exit_code == 1, result.output
        assert f"schema version {LATEST + 1}, newer than this recotrack knows" in result.output
    with raw_db(database_url) as db:
        assert [v for v, _ in versions(db)] == [*range(1, LATEST + 1), LATEST + 1]


def test_servers_starting_together_migrate_the_database_once(database_url: str) -> None:
    opened: list[Any] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait(10)
        try:
            opened.append(open_store(Settings(database_url=database_url)))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in opened:
        store.close()
    assert failures == []
    assert [store.schema_version for store in opened] == [LATEST] * 4
    with raw_db(database_url) as db:
        assert [v for v, _ in versions(db)] == list(range(1, LATEST + 1))


def test_a_sqlite_database_of_the_earlier_release_has_the_version_table_it_made(
    tmp_path: Any,
) -> None:
    """The earlier release created ``schema_version`` itself; the runner takes it as it is."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    for statement in migrations(SQLITE)[0].statements:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_version (version, name) VALUES (1, ?)", (migrations(SQLITE)[0].name,)
    )
    conn.execute("INSERT INTO meta (key, value) VALUES ('admin_token_hash', 'kept')")
    conn.close()
    store = open_store(Settings(database_url=f"sqlite:///{path}"))
    try:
        assert store.schema_version == LATEST
        assert store.read_sync(lambda repo: repo.get_meta("admin_token_hash")) == "kept"
    finally:
        store.close()


def test_the_channel_mismatch_lookup_reads_one_index_range(tmp_path: Any) -> None:
    """Which channels hold an offline order number (a DELETE on the wrong channel) is a lookup
    by (site, order_no), not a scan of the site's offline orders."""
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    open_store(Settings(database_url=url)).close()
    with raw_db(url) as db:
        statements: list[str] = []
        db.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        assert Repository(db).offline_channels_of("shop", "R-1") == []
        db.conn.set_trace_callback(None)  # type: ignore[attr-defined]
        query = next(s for s in statements if "FROM orders" in s)
        plan = " ".join(str(row[-1]) for row in db.all(f"EXPLAIN QUERY PLAN {query}"))
    assert "USING INDEX orders_by_number" in plan, plan


def test_a_buyers_lines_are_read_from_the_key_order_of_order_lines(tmp_path: Any) -> None:
    """Version 4: order lines live in their primary key's order (SQLite), so the recommendation
    read of what a buyer bought finds each order's lines with one search, not a key lookup then
    a row lookup per line."""
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    open_store(Settings(database_url=url)).close()
    with raw_db(url) as db:
        statements: list[str] = []
        db.conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        assert Repository(db).live_bought("shop", cuid="c-1", session="s-1") == set()
        db.conn.set_trace_callback(None)  # type: ignore[attr-defined]
        query = next(s for s in statements if "FROM orders" in s)
        plan = [str(row[-1]) for row in db.all(f"EXPLAIN QUERY PLAN {query}")]
    lines = [step for step in plan if step.startswith("SEARCH l ")]
    assert lines == ["SEARCH l USING PRIMARY KEY (site=? AND order_id=?)"], plan
