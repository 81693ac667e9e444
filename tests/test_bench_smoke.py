"""The benchmark's own parts, quickly and without wrk: the workload generator (its shape, and
that ``recotrack import`` takes what it writes), the reference app and the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench import instructions
from bench import run as harness
from bench.reference_app import app as reference_app
from bench.workload import Config, Workload, write_jsonl
from click.testing import CliRunner
from starlette.testclient import TestClient

from recotrack.cli import main
from recotrack.demo import read_baskets

ORDERS = 3000
END = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def records() -> list[dict]:  # type: ignore[type-arg]
    return list(Workload(Config(orders=ORDERS, seed=3, end=END)).records())


def test_the_workload_has_the_orders_cancellations_and_resends_asked_for(
    records: list[dict],  # type: ignore[type-arg]
) -> None:
    kinds = Counter(r["type"] for r in records)
    numbers = [
        r["order"].get("orderNo") or r["order"].get("refCode")
        for r in records
        if r["type"] in ("order", "offline")
    ]
    assert len(set(numbers)) == ORDERS
    resends = len(numbers) - ORDERS
    assert 0.004 * ORDERS < resends < 0.02 * ORDERS
    assert 0.12 < kinds["offline"] / len(numbers) < 0.28
    cancels = [r for r in records if r["type"] in ("cancel", "offline-cancel")]
    assert 0.012 * ORDERS < len(cancels) < 0.03 * ORDERS
    partial = [r for r in cancels if "items" in r]
    assert 0.15 < len(partial) / len(cancels) < 0.5
    seen: set[str] = set()
    early = 0
    for r in records:
        if r["type"] in ("order", "offline"):
            seen.add(r["order"].get("orderNo") or r["order"].get("refCode"))
        elif r["orderNo"] not in seen:
            early += 1
    assert 0 < early < len(cancels) / 3


def test_the_workload_keeps_the_seed_baskets_shapes_and_is_repeatable(
    records: list[dict],  # type: ignore[type-arg]
) -> None:
    baskets = read_baskets()
    sizes = Counter(len(b.items) for b in baskets)
    generated = Counter(len(r["order"]["items"]) for r in records if r["type"] == "order")
    assert set(generated) <= set(sizes)
    assert abs(generated[2] / generated.total() - sizes[2] / sizes.total()) < 0.05
    popular = Counter(ref for b in baskets for ref in b.items).most_common(1)[0][0]
    counts = Counter(i["refCode"] for r in records if "order" in r for i in r["order"]["items"])
    assert counts.most_common(3)[0][0] == popular or popular in dict(counts.most_common(3))
    assert list(Workload(Config(orders=ORDERS, seed=3, end=END)).records()) == records
    dates = [r["order"]["orderDate"] for r in records if "order" in r]
    assert max(dates) == "2026-11-27T12:00:00Z" and min(dates) == "2026-09-28T12:00:00Z"


def test_the_workload_scales_products_and_customers() -> None:
    workload = Workload(Config(orders=500, products=1000, customers=50, seed=5))
    assert workload.product_count == 1000
    refs = {i["refCode"] for r in workload.records() if "order" in r for i in r["order"]["items"]}
    users = {r["user"]["id"] for r in workload.records() if "user" in r}
    assert len(refs) > 200 and any("#" in ref for ref in refs)
    assert 1 < len(users) <= 50


def test_recotrack_import_loads_a_generated_workload_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "workload.jsonl"
    lines = write_jsonl(Workload(Config(orders=1500, seed=11, site="bench")), path)
    db = tmp_path / "bench.db"
    runner = CliRunner(env={"RECOTRACK_DATABASE_URL": None, "RECOTRACK_ADMIN_TOKEN": None})
    url = f"sqlite:///{db}"
    made = runner.invoke(
        main, ["site", "create", "bench", "--enable-cancellations", "--database", url]
    )
    assert made.exit_code == 0, made.output
    loaded = runner.invoke(main, ["import", str(path), "--quiet", "--database", url])
    assert loaded.exit_code == 0, loaded.output
    assert f"{lines} records" in loaded.stdout and "created 1500" in loaded.stdout
    assert "error" not in loaded.stdout
    with sqlite3.connect(db) as conn:
        cancelled = conn.execute("SELECT COUNT(*) FROM orders WHERE state != 'placed'").fetchone()[
            0
        ]
        held = conn.execute("SELECT COUNT(*) FROM held_cancels").fetchone()[0]
    assert cancelled > 10 and held == 0
    checked = runner.invoke(main, ["check", "--database", url])
    assert checked.exit_code == 0 and "consistent" in checked.output


def test_the_reference_app_parses_the_cancel_form_and_answers_like_cancel_pagex() -> None:
    session = "123456789012|" + "a" * 43
    with TestClient(reference_app) as client:
        ok = client.post(
            "/tracker/api/v1_2/bench/order/cancel.pagex",
            data={"session": session, "cuid": "c-1", "orderNo": "W1"},
        )
        assert ok.status_code == 200
        assert ok.json() == {
            "status": "OK",
            "session": {"session": session.replace("|", "/"), "cuid": "c-1"},
            "order": {"orderNo": "W1", "state": "cancelled"},
        }
        bad = client.post("/tracker/api/v1_4/bench/order/cancel.pagex", data={"cuid": "c-1"})
        assert bad.status_code == 400


def test_the_report_has_the_figures_of_each_run(tmp_path: Path) -> None:
    suite = harness.Suite("sqlite", 10_000, 1, ceiling=10_000.0, ceiling_before=1)
    imports = [(0.52, 50_000.0, 10_321, 90.0), (0.5, 52_000.0, 10_321, 91.0)]
    imports.append((0.51, 51_000.0, 10_321, 89.0))
    suite.import_rates = [rate for _, rate, _, _ in imports]
    median = harness.median_import(imports)
    suite.import_seconds, suite.import_lines_per_s, suite.import_records, suite.import_rss_mib = (
        median
    )
    suite.ceiling_runs = [  # one before the endpoints, one after
        harness.Run("ceiling", -1, 4, rate, 1, 2, 3, 0, 0, 0.5, 1.0) for rate in (9_000, 11_000)
    ]
    for endpoint, top in (("cancel.pagex", 3000.0), ("recs top-sellers", 6000.0)):
        suite.runs += [
            harness.Run(endpoint, 1000, 4, 990, 1.5, 4.0, 9.0, 0, 0, 0.1, 0.4, 10_000),
            harness.Run(endpoint, -1, 4, top, 8.0, 20.0, 40.0, 0, 0, 0.3, 1.0, 10_000),
            harness.Run(endpoint, -top / 2, 4, top / 2, 2.0, 6.5, 12.0, 0, 0, 0.2, 0.8, 10_000),
        ]
    args = argparse.Namespace(
        sizes=[10_000], postgres="", repeats=1, seconds=4, connections=64, wrk_threads=1
    )
    info = {
        "cpu": "test cpu",
        "cores": 2,
        "memory_gib": 1,
        "kernel": "k",
        "python": "3",
        "sqlite": "3",
        "granian": "g",
        "wrk": "w",
        "load_start": (1.0, 1.0, 1.0),
        "stolen": harness.stolen_share([10, 0, 10, 70, 0, 0, 0, 10], [20, 0, 20, 140, 0, 0, 0, 20]),
    }
    text = harness.markdown([suite], info, args, [])
    assert "during the run: 10.0% of the machine's" in text
    assert "| cancel.pagex | 10,000 | 3,000 | 30.0 % | 2.0 / 6.5 / 12.0 |" in text
    assert "| recs top-sellers | 10,000 | 6,000 | 60.0 % |" in text
    assert "**10,000** requests/s (median of 2: 1 before the endpoints, median 9,000/s," in text
    assert "and 1 after, 11,000/s;" in text
    assert (
        "Import of 10,321 records: 0.5 s, 51,000 order lines/s (the median of 3 runs: 50,000,"
        " 52,000, 51,000), peak RSS 89 MiB." in text
    )
    json.dumps([harness.asdict(suite)])  # the results file can be written


def test_every_wrk_script_loads_the_shared_helpers() -> None:
    scripts = sorted((harness.LUA).glob("*.lua"))
    assert {p.name for p in scripts} >= {
        "cancel.lua",
        "rest_order.lua",
        "offline_post.lua",
        "offline_delete.lua",
        "recs.lua",
    }
    for script in scripts:
        if script.name != "common.lua":
            assert 'dofile(os.getenv("RT_BENCH_LUA") .. "/common.lua")' in script.read_text()


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="the benchmark's load generator wrk is not installed"
)
def test_every_wrk_run_places_new_orders_and_cancels_orders_no_run_cancelled(
    tmp_path: Path,
) -> None:
    """Runs of one endpoint must not repeat each other's requests: a re-sent order or a second
    cancellation is answered without writing anything, and would flatter the figures."""
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    made = json.loads(
        harness.recotrack(
            "site", "create", harness.SITE, "--enable-cancellations", "--json", database=url
        )
    )
    token = made["siteTokens"]["store"]
    products = tmp_path / "products.txt"
    products.write_text("P1\nP2\nP3\nP4\n")
    args = argparse.Namespace(wrk_threads=1, connections=4)
    load = harness.Load(args, tmp_path)
    command = [harness.RECOTRACK, "serve", "--workers", "1", "--database", url]
    with harness.serving(command) as (base, proc):
        load.base, load.server_pid = base, proc.pid
        load.scripts["offline POST"] = ["offline_post.lua", harness.SITE, token, "T", str(products)]
        posts = [load.wrk("offline POST", 100, 1) for _ in range(2)]
        placed = [round(run.throughput * run.seconds) for run in posts]
        assert min(placed) > 20 and all(run.non2xx == 0 for run in posts)
        # every 2xx reply placed an order (replies still in flight when wrk stopped add some)
        assert harness.stored_orders(url) >= sum(placed)

        with sqlite3.connect(tmp_path / "bench.db") as conn:
            numbers = [row[0] for row in conn.execute("SELECT order_no FROM orders ORDER BY id")]
        targets = tmp_path / "targets.txt"
        targets.write_text("".join(f"{number}\n" for number in numbers))
        load.scripts["offline DELETE"] = ["offline_delete.lua", str(targets), harness.SITE, token]
        deletes = [load.wrk("offline DELETE", 20, 1) for _ in range(2)]
        assert all(run.non2xx == 0 and run.wrapped == 0 for run in deletes)
    with sqlite3.connect(tmp_path / "bench.db") as conn:
        cancelled = conn.execute("SELECT COUNT(*) FROM orders WHERE state = 'cancelled'")
        assert cancelled.fetchone()[0] >= sum(round(r.throughput * r.seconds) for r in deletes)


def test_the_cpu_of_processes_is_counted_by_name() -> None:
    """PostgreSQL's backends are counted by their name: this process is found by its own."""
    sum(n * n for n in range(300_000))  # some CPU time of our own
    name = Path("/proc/self/comm").read_text().strip()
    mine = time.process_time()
    assert harness.processes_cpu_seconds(name) >= mine - 0.05 > 0
    assert harness.processes_cpu_seconds("no-such-process-name") == 0


@pytest.mark.parametrize(
    ("endpoint", "cancelled", "stored"),
    [
        ("cancel", 30, instructions.PLACED),
        ("order", 0, instructions.PLACED + 30),
        ("top-sellers", 0, instructions.PLACED),
    ],
)
def test_the_instruction_counter_drives_each_endpoint_with_requests_that_succeed(
    tmp_path: Path, endpoint: str, cancelled: int, stored: int
) -> None:
    """What callgrind counts must be the work asked for: every request answered 200, each
    cancellation cancelling a placed order, each order page storing a new one."""
    database = tmp_path / "recotrack.db"
    assert asyncio.run(instructions.drive(endpoint, 30, database)) == {200: 30}
    with sqlite3.connect(database) as conn:
        states = Counter(dict(conn.execute("SELECT state, COUNT(*) FROM orders GROUP BY state")))
    assert (states["cancelled"], sum(states.values())) == (cancelled, stored)


def test_the_instruction_counter_imports_every_record_of_its_chunks(tmp_path: Path) -> None:
    """The import's count is of records that did their work: every order created, the
    cancellations and re-sends applied, none failed."""
    chunks, database = tmp_path / "chunks.pickle", tmp_path / "recotrack.db"
    records = instructions.parsed_chunks(300, chunks)
    outcomes = instructions.drive_import(chunks, database)
    assert "error" not in outcomes and sum(outcomes.values()) == records > 300
    assert outcomes["created"] == 300 and outcomes["cancelled"] > 0
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone() == (300,)
