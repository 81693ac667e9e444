"""``recotrack import``: JSON Lines of orders and cancellations through the real CLI on SQLite."""

from __future__ import annotations

import gc
import io
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from recotrack.cli import main
from recotrack.http.app import create_app
from recotrack.import_records import decode, parse_chunk
from recotrack.importer import (
    BATCH,
    EDGE,
    BulkRepository,
    Summary,
    apply_batch,
    parsing_process,
    run_import,
    slices,
)
from recotrack.services.orders import place_order
from recotrack.settings import Settings
from recotrack.store import open_store
from recotrack.store.repository import Repository

from .support import ADMIN, AUTH
from .test_writers import traced

TABLES = ("orders", "order_lines", "order_events", "held_cancels") + (
    "stat_products",
    "stat_pairs",
    "stat_days",
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "import.db"
    made = run(path, "site", "create", "shop", "--enable-cancellations", "--json")
    assert made.exit_code == 0, made.output
    return path


def run(db: Path, *args: str) -> Result:
    runner = CliRunner(env={"RECOTRACK_DATABASE_URL": None, "RECOTRACK_ADMIN_TOKEN": None})
    return runner.invoke(main, [*args, "--database", f"sqlite:///{db}"], catch_exceptions=False)


def write(tmp_path: Path, *records: dict[str, Any] | str, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records),
        encoding="utf-8",
    )
    return path


def import_file(db: Path, path: Path, *flags: str) -> Result:
    return run(db, "import", str(path), "--quiet", *flags)


@contextmanager
def server(db: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{db}", admin_token=ADMIN)
    with TestClient(create_app(settings)) as client:
        yield client


def online(order_no: str, *lines: tuple[str, int, str], **extra: Any) -> dict[str, Any]:
    total = sum(int(qty) * float(price) for _, qty, price in lines)
    return {
        "type": "order",
        "site": "shop",
        "cuid": "cuid-1",
        "user": {"id": "user-1"},
        **extra,
        "order": {
            "orderNo": order_no,
            "currency": "GBP",
            "items": [{"refCode": r, "qty": q, "price": p} for r, q, p in lines],
            "subtotal": f"{total:.2f}",
            "shipping": "0",
            "total": f"{total:.2f}",
            "orderDate": "2026-11-20T10:00:00Z",
        },
    }


def offline(order_no: str, *lines: tuple[str, int, str], channel: str = "store") -> dict[str, Any]:
    total = sum(int(qty) * float(price) for _, qty, price in lines)
    return {
        "type": "offline",
        "site": "shop",
        "channel": channel,
        "user": {"id": "user-2"},
        "order": {
            "refCode": order_no,
            "currency": "GBP",
            "items": [{"refCode": r, "qty": q, "price": p} for r, q, p in lines],
            "subTotal": f"{total:.2f}",
            "total": f"{total:.2f}",
            "orderDate": "2026-11-21T09:30:00Z",
        },
    }


def cancel(
    order_no: str, items: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "cancel", "site": "shop", "orderNo": order_no, **extra}
    if items is not None:
        record["items"] = items
    return record


def order_of(client: TestClient, order_no: str, source: str = "online") -> dict[str, Any]:
    response = client.get(f"/api/v1/sites/shop/orders/{order_no}?source={source}", headers=AUTH)
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()["order"]
    return order


def live(order: dict[str, Any]) -> dict[str, int]:
    return {line["refCode"]: line["liveQuantity"] for line in order["lines"]}


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def assert_consistent(db: Path) -> None:
    checked = run(db, "check")
    assert checked.exit_code == 0, checked.output
    assert "site shop: consistent" in checked.output


def test_import_stores_online_and_offline_orders_with_their_dates(db: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        online("W1", ("milk", 2, "1.10"), ("bread", 1, "2.00")),
        online("W2", ("milk", 1, "1.10")),
        offline("S1", ("eggs", 3, "0.50")),
    )
    result = import_file(db, path)
    assert result.exit_code == 0, result.output
    assert "3 records" in result.stdout and "created 3" in result.stdout
    assert "6 order lines stored" not in result.stdout  # 2 + 1 + 1 lines, not units
    assert "4 order lines stored" in result.stdout
    with server(db) as client:
        w1 = order_of(client, "W1")
        assert (w1["state"], w1["orderDate"], w1["cuid"], w1["userId"]) == (
            "placed",
            "2026-11-20T10:00:00.000000Z",
            "cuid-1",
            "user-1",
        )
        assert live(w1) == {"milk": 2, "bread": 1}
        s1 = order_of(client, "S1", "offline")
        assert (s1["channel"], s1["countsInCrowd"], live(s1)) == ("store", False, {"eggs": 3})
        days = client.get(
            "/api/v1/sites/shop/reports/daily?from=2026-11-20&to=2026-11-21", headers=AUTH
        ).json()["days"]
        assert [(d["date"], d["orders"], d["units"]) for d in days] == [
            ("2026-11-20", 2, 4),
            ("2026-11-21", 1, 3),
        ]
    assert_consistent(db)


def test_a_rerun_of_the_same_file_changes_nothing(db: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        cancel("W3"),  # before its order: held
        cancel("W4", [{"refCode": "jam", "qty": 1}]),  # partial, before its order
        online("W1", ("milk", 2, "1.10"), ("bread", 1, "2.00")),
        online("W2", ("milk", 1, "1.10"), ("jam", 2, "3.00")),
        online("W3", ("tea", 1, "4.00")),
        online("W4", ("jam", 2, "3.00"), ("tea", 1, "4.00")),
        cancel("W1"),
        cancel("W2", [{"refCode": "jam", "qty": 1}]),
        online("W2", ("milk", 1, "1.10"), ("jam", 2, "3.00")),  # a re-send
        cancel("W9", [{"refCode": "tea"}]),  # its order never comes: stays held
        offline("S1", ("eggs", 3, "0.50")),
        {"type": "offline-cancel", "site": "shop", "channel": "store", "orderNo": "S1"},
    )
    first = import_file(db, path, "--batch", "3")
    assert first.exit_code == 0, first.output
    assert "created 5" in first.stdout and "held 3" in first.stdout
    before = snapshot(db)
    second = import_file(db, path, "--batch", "3")
    assert second.exit_code == 0, second.output
    assert "created" not in second.stdout and "cancelled" not in second.stdout
    assert "held" not in second.stdout
    assert "same 6" in second.stdout and "unchanged 6" in second.stdout
    assert snapshot(db) == before
    assert len(before["held_cancels"]) == 1
    assert_consistent(db)


def test_errors_are_reported_with_their_line_numbers_and_the_rest_is_loaded(
    db: Path, tmp_path: Path
) -> None:
    no_items = online("W3", ("milk", 1, "1.10"))
    no_items["order"]["items"] = []
    path = write(
        tmp_path,
        online("W1", ("milk", 1, "1.10")),
        "{not json",
        {**online("W2", ("milk", 1, "1.10")), "site": "nowhere"},
        no_items,
        "",
        online("W5", ("bread", 1, "2.00")),
        cancel("W1", [{"refCode": "caviar"}]),
        {"type": "refund", "site": "shop"},
        online("W1", ("milk", 9, "1.10")),  # same number, other content: an update
        offline("S1", ("eggs", 1, "0.50"), channel="tv"),
        {"type": "offline-cancel", "site": "shop", "channel": "store", "orderNo": "S1"},
    )
    result = import_file(db, path)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0:2] for line in lines] == [
        ["line 2", " MalformedJson"],
        ["line 3", " SiteNotRecognized"],
        ["line 4", " MissingOrMalformedItems"],
        ["line 7", " LineNotFound"],
        ["line 8", " TypeNotRecognized"],
        ["line 11", " ChannelMismatch"],
    ]
    assert "order.items must be a list of 1-1000 lines" in lines[2]
    assert "created 3" in result.stdout and "updated 1" in result.stdout
    assert "error 6" in result.stdout
    with server(db) as client:
        assert live(order_of(client, "W1")) == {"milk": 9}
        assert live(order_of(client, "W5")) == {"bread": 1}
        assert order_of(client, "S1", "offline")["state"] == "placed"
        missing = client.get("/api/v1/sites/shop/orders/W3?source=online", headers=AUTH)
        assert missing.status_code == 404
    assert_consistent(db)


def test_partial_cancellations_cancel_the_quantity_given_of_a_line(
    db: Path, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        online("W1", ("milk", 3, "1.10"), ("bread", 1, "2.00")),
        cancel("W1", [{"refCode": "milk", "qty": 2}], reason="two were broken"),
        online("W2", ("milk", 1, "1.10"), ("bread", 1, "2.00")),
        cancel("W2", [{"refCode": "bread"}]),
    )
    result = import_file(db, path)
    assert result.exit_code == 0, result.output
    assert "cancelled 2" in result.stdout
    with server(db) as client:
        w1 = order_of(client, "W1")
        assert (w1["state"], live(w1)) == ("partially-cancelled", {"milk": 1, "bread": 1})
        assert w1["history"][-1]["event"] == "line-cancelled"
        assert w1["history"][-1]["reason"] == "two were broken"
        assert live(order_of(client, "W2")) == {"milk": 1, "bread": 0}
        recs = client.get(
            "/api/v1/sites/shop/recs/top-sellers?days=3650&limit=5", headers=AUTH
        ).json()["recs"]
        assert [(r["refCode"], r["score"]) for r in recs] == [("milk", 2), ("bread", 1)]
    assert_consistent(db)


def test_a_cancellation_before_its_order_is_applied_when_the_order_comes_later_in_the_file(
    db: Path, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        cancel("W1", reason="fraud"),
        cancel("W2", [{"refCode": "jam", "qty": 1}]),
        online("W0", ("tea", 1, "4.00")),
        online("W1", ("milk", 1, "1.10"), ("bread", 1, "2.00")),
        online("W2", ("jam", 2, "3.00")),
    )
    result = import_file(db, path, "--batch", "2")  # held and placed in other transactions
    assert result.exit_code == 0, result.output
    assert "held 2" in result.stdout and "created 3" in result.stdout
    with server(db) as client:
        w1 = order_of(client, "W1")
        assert (w1["state"], live(w1)) == ("cancelled", {"milk": 0, "bread": 0})
        assert [e["event"] for e in w1["history"]] == ["held", "placed", "applied"]
        assert w1["history"][0]["reason"] == "fraud"
        assert live(order_of(client, "W2")) == {"jam": 1}
        recs = client.get("/api/v1/sites/shop/recs/top-sellers?days=3650", headers=AUTH).json()[
            "recs"
        ]
        assert [(r["refCode"], r["score"]) for r in recs] == [("jam", 1), ("tea", 1)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM held_cancels").fetchone()[0] == 0
    assert_consistent(db)


def test_cancellations_need_the_site_switch_like_over_http(tmp_path: Path) -> None:
    db = tmp_path / "off.db"
    assert run(db, "site", "create", "shop").exit_code == 0
    path = write(tmp_path, online("W1", ("milk", 1, "1.10")), cancel("W1"))
    result = import_file(db, path)
    assert result.exit_code == 1
    assert "line 2: CancellationsNotEnabled" in result.stderr
    assert "created 1" in result.stdout
    assert_consistent(db)


def test_every_backend_applies_records_in_file_order_across_transactions(
    database_url: str, tmp_path: Path
) -> None:
    """PostgreSQL runs several writers at once; the import still applies a file in order, so a
    cancellation one transaction after its order finds it, and a re-run changes nothing."""
    runner = CliRunner(env={"RECOTRACK_DATABASE_URL": None, "RECOTRACK_ADMIN_TOKEN": None})

    def cli(*args: str) -> Result:
        return runner.invoke(main, [*args, "--database", database_url], catch_exceptions=False)

    assert cli("site", "create", "shop", "--enable-cancellations").exit_code == 0
    records: list[dict[str, Any]] = [cancel("W0")]
    for n in range(1, 601):
        records.append(online(f"W{n}", ("milk", 1, "1.10"), (f"p{n % 4}", 2, "3.00")))
        if n % 3 == 0:  # often the first record of the next transaction
            records.append(cancel(f"W{n}", [{"refCode": "milk"}]))
    records.append(online("W0", ("tea", 1, "4.00")))
    path = write(tmp_path, *records)
    first = cli("import", str(path), "--quiet", "--batch", "3")
    assert first.exit_code == 0, first.output
    assert "(cancelled 200, created 601, held 1)" in first.stdout
    second = cli("import", str(path), "--quiet", "--batch", "3")
    assert second.exit_code == 0, second.output
    assert "(same 601, unchanged 201)" in second.stdout
    checked = cli("check")
    assert checked.exit_code == 0 and "consistent" in checked.output


# -- one transaction, new orders written many to a statement (SQLite) ----------------------

MOMENT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def mixed_batch(update: bool = True) -> list[dict[str, Any] | str]:
    """Every way a record of one transaction can depend on one before or after it (an update
    is applied again by a re-run: the file changes the order twice)."""
    return [
        online("W1", ("milk", 2, "1.10"), ("bread", 1, "2.00")),
        cancel("W5", reason="fraud"),  # its order comes later in the batch: held
        cancel("W6", [{"refCode": "jam", "qty": 1}]),  # held, partial
        online("W2", ("milk", 1, "1.10"), ("jam", 2, "3.00")),
        cancel("W1", [{"refCode": "milk", "qty": 1}]),  # an order placed in this batch
        cancel("W2", [{"refCode": "caviar"}]),  # fails: LineNotFound
        online("W3", ("tea", 1, "4.00")),
        online("W2", ("milk", 1, "1.10"), ("jam", 2, "3.00")),  # a re-send: same
        online("W3", ("tea", 2 if update else 1, "4.00")),  # an update, or a re-send
        online("W5", ("eggs", 6, "0.30")),  # takes its held cancellation
        online("W6", ("jam", 2, "3.00"), ("tea", 1, "4.00")),
        offline("S1", ("eggs", 3, "0.50")),
        {"type": "offline-cancel", "site": "shop", "channel": "tv", "orderNo": "S1"},  # fails
        {"type": "offline-cancel", "site": "shop", "channel": "store", "orderNo": "S1"},
        {**online("W7", ("milk", 1, "1.10")), "site": "nowhere"},  # fails: no such site
        online("W8", ("bread", 2, "2.00"), ("milk", 1, "1.10")),
        cancel("W8"),
        online("W9", ("milk", 1, "1.10")),
    ]


def apply_in_one_transaction(
    db: Path, path: Path, buffered: bool, offline_crowd: dict[str, bool] | None = None
) -> Summary:
    """``path`` as one batch, through the store's writer, new orders buffered or not, and
    prepared by the parsing process (for the crowd given) or not."""
    chunk = parse_chunk(1, path.read_bytes().splitlines(keepends=True), MOMENT, offline_crowd)
    store = open_store(Settings(database_url=f"sqlite:///{db}"))
    try:
        work = store.submit(lambda repo: apply_batch(chunk, MOMENT, repo, buffered=buffered))
        return work.result()
    finally:
        store.close()


# (buffered, crowd the parsing process prepares offline orders for); each loads as the last.
WAYS = {
    "prepared": (True, {"shop": False}),
    "prepared for the wrong crowd": (True, {"shop": True}),  # S1 is placed by the services
    "prepared, unbuffered": (False, {}),  # every order backs out of the sum
    "buffered": (True, None),
    "unbuffered": (False, None),
}


def test_one_transaction_of_mixed_records_stores_what_unbuffered_inserts_store(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, *mixed_batch())
    stored = {}
    for way, (buffered, offline_crowd) in WAYS.items():
        db = tmp_path / f"{way}.db"
        assert run(db, "site", "create", "shop", "--enable-cancellations").exit_code == 0
        summary = apply_in_one_transaction(db, path, buffered, offline_crowd)
        assert summary.outcomes == {
            "created": 8,
            "held": 2,
            "cancelled": 3,
            "same": 1,
            "updated": 1,
            "error": 3,
        }
        assert [(line, code) for line, code, _ in summary.errors] == [
            (6, "LineNotFound"),
            (13, "ChannelMismatch"),
            (15, "SiteNotRecognized"),
        ]
        assert_consistent(db)
        stored[way] = snapshot(db)
    for way in WAYS:
        assert stored[way] == stored["unbuffered"], way
    with sqlite3.connect(tmp_path / "prepared.db") as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM orders ORDER BY id")]
        numbers = [row[0] for row in conn.execute("SELECT order_no FROM orders ORDER BY id")]
    assert ids == list(range(1, 9))
    assert numbers == ["W1", "W2", "W3", "W5", "W6", "S1", "W8", "W9"]


def test_a_batch_of_mixed_records_loads_as_record_by_record_and_a_rerun_changes_nothing(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, *mixed_batch(update=False))
    stored = {}
    for batch in ("5000", "1"):
        db = tmp_path / f"batch-{batch}.db"
        assert run(db, "site", "create", "shop", "--enable-cancellations").exit_code == 0
        first = import_file(db, path, "--batch", batch)
        assert first.exit_code == 1
        assert "created 8" in first.stdout and "error 3" in first.stdout
        stored[batch] = snapshot(db)
        again = import_file(db, path, "--batch", batch)
        assert "created" not in again.stdout and "cancelled" not in again.stdout
        assert "held" not in again.stdout and "updated" not in again.stdout
        assert snapshot(db) == stored[batch]
        assert_consistent(db)
    # created_at and the events' times are the moment of each import: compare the rest
    assert without_times(stored["5000"]) == without_times(stored["1"])
    with server(tmp_path / "batch-5000.db") as client:
        w1 = order_of(client, "W1")
        assert (w1["state"], live(w1)) == ("partially-cancelled", {"milk": 1, "bread": 1})
        w5 = order_of(client, "W5")
        assert (w5["state"], [e["event"] for e in w5["history"]]) == (
            "cancelled",
            ["held", "placed", "applied"],
        )
        assert live(order_of(client, "W6")) == {"jam": 1, "tea": 1}
        assert live(order_of(client, "W3")) == {"tea": 1}
        assert order_of(client, "W8")["state"] == "cancelled"
        assert order_of(client, "S1", "offline")["state"] == "cancelled"
        assert live(order_of(client, "W2")) == {"milk": 1, "jam": 2}


def without_times(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The orders without created_at and updated_at, the events without their time."""
    return {
        **tables,
        "orders": [row[:-2] for row in tables["orders"]],
        "order_events": [row[:4] + row[5:] for row in tables["order_events"]],
    }


def test_a_failing_record_takes_its_orders_with_it_written_or_waiting(db: Path) -> None:
    now = MOMENT
    lines = [
        json.dumps(online(n, ("milk", 1, "1.10"))).encode() + b"\n"
        for n in ("W1", "W2", "W3", "W4")
    ]
    w1, w2, w3, w4 = (r.order for r in decode(parse_chunk(1, lines, now).records, now))
    assert w1 is not None and w2 is not None and w3 is not None and w4 is not None
    store = open_store(Settings(database_url=f"sqlite:///{db}"))

    def work(repo: Repository) -> None:
        bulk = BulkRepository(repo, buffered=True)
        site = repo.get_site("shop")
        assert site is not None
        bulk.begin()
        place_order(bulk, site, w1, now)  # waits
        bulk.keep()
        bulk.begin()
        place_order(bulk, site, w2, now)  # waits
        # A statement: W1 is written before the record's savepoint, W2 inside it.
        assert bulk.find_order("shop", "online", "", "W0") is None
        bulk.discard()
        bulk.begin()
        place_order(bulk, site, w4, now)  # waits, and is dropped
        bulk.discard()
        bulk.begin()
        place_order(bulk, site, w3, now)
        bulk.keep()
        bulk.flush()

    try:
        store.submit(work).result()
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, order_no FROM orders ORDER BY id").fetchall()
        lines_of = conn.execute("SELECT DISTINCT order_id FROM order_lines").fetchall()
        events_of = conn.execute("SELECT DISTINCT order_id FROM order_events").fetchall()
    assert rows == [(1, "W1"), (2, "W3")]  # W3 takes the id W2 and W4 gave back
    assert sorted(lines_of) == sorted(events_of) == [(1,), (2,)]
    assert_consistent(db)


def test_slices_start_small_and_cut_the_last_lines_in_halves() -> None:
    def sizes(lines: int, batch: int, edge: int = EDGE) -> list[int]:
        source = io.BytesIO(b"".join(b"%d\n" % n for n in range(lines)))
        cut = list(slices(source, batch, edge))
        assert b"".join(b"".join(part) for part in cut) == source.getvalue()  # all, in order
        return [len(part) for part in cut]

    assert sizes(40, 8, edge=1) == [1, 2, 4, 8, 8, 8, 5, 2, 1, 1]  # 9 last lines, halved
    assert sizes(48, 8, edge=1) == [1, 2, 4, 8, 8, 8, 8, 5, 2, 1, 1]
    assert sizes(5, 8, edge=1) == [1, 2, 1, 1]  # a small file is all end
    assert sizes(40, 8) == [8] * 5  # a batch under the edge: every slice a batch
    assert sizes(3, 1) == [1, 1, 1]
    assert sizes(0, 8) == []
    assert sizes(10_321, BATCH) == [1_000, 2_000, 3_661, 1_830, 915, 915]
    start = [1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000]
    end = [14_500, 7_250, 3_625, 1_813, 906, 906]  # the last 29,000 lines
    assert sizes(100_000, BATCH) == start + end


def traced_import(
    db: Path, path: Path, batch: int, sizes: list[int] | None = None
) -> tuple[Summary, list[str]]:
    """``run_import`` of ``path`` on a store of its own; the statements its writer ran (and
    the write count of each transaction, in ``sizes``)."""
    with parsing_process() as parser:  # before the store, as the CLI does
        store = open_store(Settings(database_url=f"sqlite:///{db}"))
        try:
            statements = traced(store)
            if sizes is not None:
                store.on_batch = sizes.append
            with path.open("rb") as source:
                summary = run_import(
                    store, parser, source, lambda: datetime(2026, 11, 27, 12, tzinfo=UTC), batch
                )
        finally:
            store.close()
    return summary, statements


def test_each_slice_of_an_import_is_a_transaction_of_its_own(db: Path, tmp_path: Path) -> None:
    path = write(tmp_path, *(online(f"S{n}", ("P1", 1, "2.00")) for n in range(5_000)))
    summary, statements = traced_import(db, path, batch=2_000)
    assert summary.outcomes == {"created": 5_000}
    start = statements.index("PRAGMA wal_autocheckpoint = 20000")  # the bulk load's
    loading = statements[start : statements.index("PRAGMA wal_autocheckpoint = 4000")]
    assert loading.count("COMMIT") == 4  # 1,000, 2,000, then 1,000 and 1,000 lines
    assert_consistent(db)


def test_an_import_leaves_nothing_for_the_cycle_collector(db: Path, tmp_path: Path) -> None:
    """An import runs the cycle collector rarely (``COLLECTIONS``): what it makes, records that
    fail included, is freed by reference counting alone."""
    records = [*mixed_batch(), "{not json", {"type": "refund", "site": "shop"}]
    path = write(tmp_path, *records)
    with parsing_process() as parser:
        store = open_store(Settings(database_url=f"sqlite:///{db}"))
        try:
            gc.collect()
            gc.disable()
            try:
                with path.open("rb") as source:
                    summary = run_import(store, parser, source, lambda: MOMENT, batch=4)
                left = gc.collect()
                # The parsing process's part, here: with orders prepared, and without.
                lines = path.read_bytes().splitlines(keepends=True)
                parse_chunk(1, lines, MOMENT, {"shop": False})
                parse_chunk(1, lines, MOMENT)
                left_parsing = gc.collect()
            finally:
                gc.enable()
        finally:
            store.close()
    assert summary.outcomes["error"] == 5, summary.outcomes
    assert left == left_parsing == 0


def test_an_import_on_sqlite_commits_each_batch_alone_with_rarer_checkpoints_then_restores(
    db: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, *(online(f"B{n}", ("P1", 1, "2.00")) for n in range(4)))
    sizes: list[int] = []
    summary, statements = traced_import(db, path, batch=1, sizes=sizes)
    assert summary.outcomes == {"created": 4}
    checkpoints = [s for s in statements if "wal_autocheckpoint" in s]
    assert checkpoints == ["PRAGMA wal_autocheckpoint = 20000", "PRAGMA wal_autocheckpoint = 4000"]
    assert sizes and set(sizes) == {1}  # each batch of records in a transaction of its own
    assert "SAVEPOINT w" not in statements
