"""The crash harness (``bench/crash.py``), short: SIGKILL a real server three times under a
mixed stream of order changes on each backend; every acknowledged change must be there once.
And the harness must notice when one is not (the database damaged between a kill and the
restart)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from bench.crash import Config, Harness

from .conftest import POSTGRES_URL

pytestmark = pytest.mark.slow


def run(config: Config) -> dict[str, Any]:
    return Harness(config, say=lambda _message: None).run()


def assert_clean(summary: dict[str, Any], kills: int) -> None:
    shown = {k: v for k, v in summary.items() if k not in ("kill_points", "requests_by_kind")}
    assert summary["ok"], shown
    assert summary["kills"] == kills, shown
    assert summary["lost"] == 0 and summary["double_counted"] == 0, shown
    assert summary["check_failures"] == 0 and summary["check_runs"] == kills + 1, shown
    assert summary["server_errors"] == 0, shown
    # The kills met requests in flight, and the run did real work around them.
    assert summary["cut_off"] > 0, shown
    assert summary["retried_after_doubt"] + summary["resolved_by_reading"] > 0, shown
    assert summary["acknowledged_changes"] >= 1000, shown
    assert summary["acknowledged_changes_checked"] == summary["acknowledged_changes"], shown


def test_sigkills_on_sqlite_lose_nothing_acknowledged_and_count_nothing_twice(
    tmp_path: Path,
) -> None:
    summary = run(
        Config(database="sqlite", kills=3, requests=2000, connections=8, seed=11, work=tmp_path)
    )
    assert summary["backend"] == "sqlite"
    assert_clean(summary, kills=3)


@pytest.mark.skipif(not POSTGRES_URL, reason="needs RECOTRACK_TEST_POSTGRES_URL")
def test_sigkills_on_postgresql_lose_nothing_acknowledged_and_count_nothing_twice(
    tmp_path: Path,
) -> None:
    summary = run(
        Config(database=POSTGRES_URL, kills=3, requests=2000, connections=8, seed=12, work=tmp_path)
    )
    assert summary["backend"] == "postgresql"
    assert_clean(summary, kills=3)


def test_the_harness_reports_an_order_lost_and_a_figure_counted_twice(tmp_path: Path) -> None:
    def damage(url: str) -> None:
        """While the server is down: forget the first order, count one unit twice."""
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            first = conn.execute("SELECT site, MIN(id) FROM orders").fetchone()
            conn.execute("DELETE FROM orders WHERE site = ? AND id = ?", first)
            conn.execute("DELETE FROM order_lines WHERE site = ? AND order_id = ?", first)
            conn.execute(
                "UPDATE stat_products SET units = units + 1"
                " WHERE rowid = (SELECT MIN(rowid) FROM stat_products)"
            )

    summary = run(
        Config(
            database="sqlite",
            kills=1,
            requests=600,
            connections=4,
            seed=13,
            work=tmp_path,
            after_kill=damage,
        )
    )
    assert not summary["ok"]
    assert summary["orders_not_as_acknowledged"] >= 1
    assert summary["lost"] >= 1 and summary["double_counted"] >= 1
    assert summary["check_failures"] >= 1
