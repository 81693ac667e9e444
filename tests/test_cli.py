"""The command line (API.md 9) on a real SQLite file, driven by click's CliRunner."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from recotrack.cli import main
from recotrack.demo import Basket, price_of, run_demo
from recotrack.http.app import create_app
from recotrack.settings import Settings
from recotrack.store import open_store
from recotrack.store.schema import LATEST

from .support import ADMIN, AUTH, order_body

TOKEN = r"[A-Za-z0-9_-]{43}"
DEFAULTS = {
    "cancellations": False,
    "cancelAuth": "session",
    "offlineOrdersAffectCrowd": False,
    "sessionMaxAgeSeconds": 14400,
    "pendingCancelDays": 30,
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def run(db: Path, *args: str) -> Result:
    """``recotrack ARGS --database sqlite:///DB``, isolated from the caller's environment."""
    runner = CliRunner(env={"RECOTRACK_DATABASE_URL": None, "RECOTRACK_ADMIN_TOKEN": None})
    return runner.invoke(main, [*args, "--database", f"sqlite:///{db}"], catch_exceptions=False)


@contextmanager
def server(db: Path, clock: Any = None) -> Iterator[TestClient]:
    """The HTTP app over the same database file, to see what the CLI did."""
    settings = Settings(database_url=f"sqlite:///{db}", admin_token=ADMIN)
    app = create_app(settings) if clock is None else create_app(settings, clock=clock)
    with TestClient(app) as client:
        yield client


def create(db: Path, name: str = "shop", *flags: str) -> dict[str, Any]:
    result = run(db, "site", "create", name, "--json", *flags)
    assert result.exit_code == 0, result.output
    made: dict[str, Any] = json.loads(result.stdout)
    return made


def offline(client: TestClient, name: str, token: str, ref: str, channel: str = "store") -> Any:
    headers = {"site": name, "siteToken": token, "channel": channel}
    body = {
        "order": {
            "refCode": ref,
            "currency": "GBP",
            "total": "1",
            "items": [{"refCode": "A", "qty": 1, "price": "1"}],
        }
    }
    return client.post("/smart-api/orders/offline", json=body, headers=headers)


def page(client: TestClient, name: str, token: str, **fields: Any) -> Any:
    jd = {"site": name, "clientToken": token, "session": "new", "cuid": "new", **fields}
    return client.get("/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(jd)})


# -- site create ---------------------------------------------------------------------------


def test_site_create_json_prints_exactly_the_name_and_the_tokens(db: Path) -> None:
    result = run(db, "site", "create", "shop", "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    made = json.loads(result.stdout)
    assert list(made) == ["name", "clientTokens", "siteTokens"]
    assert made["name"] == "shop"
    assert list(made["clientTokens"]) == ["web", "mobileweb"]
    assert list(made["siteTokens"]) == ["store", "mobileapp", "tv", "callcentre"]
    tokens = [*made["clientTokens"].values(), *made["siteTokens"].values()]
    assert all(re.fullmatch(TOKEN, token) for token in tokens)
    assert len(set(tokens)) == 6
    assert result.stdout == json.dumps(made) + "\n"  # one line, the documented spacing
    with server(db) as client:
        for channel, token in made["siteTokens"].items():
            assert offline(client, "shop", token, "R1", channel).status_code == 201
        for channel, token in made["clientTokens"].items():
            assert page(client, "shop", token, type="home", channel=channel).status_code == 200


def test_site_create_prints_the_tokens_for_a_person(db: Path) -> None:
    result = run(db, "site", "create", "shop")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:2] == ["site shop created (cancellations off)", "tokens (shown once, keep them):"]
    pattern = [
        rf"  clientToken web         ({TOKEN})",
        rf"  clientToken mobileweb   ({TOKEN})",
        rf"  siteToken store       ({TOKEN})",
        rf"  siteToken mobileapp   ({TOKEN})",
        rf"  siteToken tv          ({TOKEN})",
        rf"  siteToken callcentre  ({TOKEN})",
    ]
    assert len(lines) == 8
    matches = [
        re.fullmatch(expected, line) for expected, line in zip(pattern, lines[2:], strict=True)
    ]
    assert all(matches), lines
    with server(db) as client:
        store_token = matches[2][1]  # type: ignore[index]
        assert offline(client, "shop", store_token, "R1").status_code == 201


def test_site_create_can_enable_cancellations(db: Path) -> None:
    result = run(db, "site", "create", "shop", "--enable-cancellations")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "site shop created (cancellations on)"
    shown = json.loads(run(db, "site", "show", "shop").stdout)
    assert {key: shown[key] for key in DEFAULTS} == {**DEFAULTS, "cancellations": True}


@pytest.mark.parametrize("name", ["my shop", "x" * 65, "caf\u00e9", ""])
def test_site_create_refuses_a_bad_name(db: Path, name: str) -> None:
    result = run(db, "site", "create", name, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: SiteNotRecognized: site name must be 1-64 of A-Z a-z 0-9 _ -; got {name!r}\n"
    )


def test_site_create_refuses_a_name_taken(db: Path) -> None:
    first = create(db)
    result = run(db, "site", "create", "shop", "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: OrderConflict: site 'shop' already exists\n"
    with server(db) as client:  # the first tokens were not replaced
        assert offline(client, "shop", first["siteTokens"]["store"], "R1").status_code == 201


# -- site update, show, rotate-token -------------------------------------------------------


def test_site_update_changes_the_settings_given(db: Path) -> None:
    create(db)
    result = run(
        db,
        "site",
        "update",
        "shop",
        "--cancellations",
        "on",
        "--cancel-auth",
        "open",
        "--offline-orders-affect-crowd",
        "on",
        "--session-max-age",
        "600",
        "--pending-cancel-days",
        "7",
    )
    assert result.exit_code == 0
    changed = {
        "cancellations": True,
        "cancelAuth": "open",
        "offlineOrdersAffectCrowd": True,
        "sessionMaxAgeSeconds": 600,
        "pendingCancelDays": 7,
    }
    assert result.stdout == json.dumps({"name": "shop", **changed}) + "\n"
    with server(db) as client:
        site = client.get("/api/v1/sites/shop", headers=AUTH).json()["site"]
        assert {key: site[key] for key in DEFAULTS} == changed
    back = run(db, "site", "update", "shop", "--cancellations", "off", "--cancel-auth", "token")
    assert back.exit_code == 0
    expected = {**changed, "cancellations": False, "cancelAuth": "token"}
    assert json.loads(back.stdout) == {"name": "shop", **expected}


def test_site_update_takes_effect_on_a_running_server(db: Path) -> None:
    made = create(db)
    with server(db) as client:
        token = made["siteTokens"]["store"]
        headers = {"site": "shop", "siteToken": token, "channel": "store"}
        assert offline(client, "shop", token, "R1").status_code == 201
        refused = client.delete("/smart-api/orders/offline/R1", headers=headers)
        assert refused.status_code == 403
        assert run(db, "site", "update", "shop", "--cancellations", "on").exit_code == 0
        allowed = client.delete("/smart-api/orders/offline/R1", headers=headers)
        assert allowed.status_code == 200
        assert allowed.json()["order"]["state"] == "cancelled"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--session-max-age", "5"],
            "error: MalformedJson: sessionMaxAgeSeconds must be a whole number from 60 to"
            " 31536000; got 5\n",
        ),
        (
            ["--pending-cancel-days", "0"],
            "error: MalformedJson: pendingCancelDays must be a whole number from 1 to 3650;"
            " got 0\n",
        ),
    ],
)
def test_site_update_refuses_a_bad_value_and_changes_nothing(
    db: Path, args: list[str], message: str
) -> None:
    create(db)
    result = run(db, "site", "update", "shop", "--cancellations", "on", *args)
    assert result.exit_code == 1
    assert result.stderr == message
    shown = json.loads(run(db, "site", "show", "shop").stdout)
    assert {key: shown[key] for key in DEFAULTS} == DEFAULTS


def test_site_update_refuses_a_choice_it_does_not_know(db: Path) -> None:
    create(db)
    result = run(db, "site", "update", "shop", "--cancel-auth", "never")
    assert result.exit_code == 2
    assert "'never' is not one of 'open', 'session', 'token'" in result.stderr


def test_site_update_without_a_setting_says_which_there_are(db: Path) -> None:
    create(db)
    result = run(db, "site", "update", "shop")
    assert result.exit_code == 2
    assert (
        "give one or more settings to change: --cancellations, --cancel-auth,"
        " --offline-orders-affect-crowd, --session-max-age, --pending-cancel-days"
    ) in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["site", "update", "nosite", "--cancellations", "on"],
        ["site", "show", "nosite"],
        ["site", "rotate-token", "nosite", "store"],
        ["check", "--site", "nosite"],
    ],
)
def test_commands_on_an_unknown_site_fail(db: Path, args: list[str]) -> None:
    create(db)
    result = run(db, *args)
    assert result.exit_code == 1
    assert result.stderr == "error: SiteNotRecognized: site 'nosite' is not known to this server\n"


def test_site_show_prints_settings_and_channels_but_no_token(db: Path) -> None:
    made = create(db)
    result = run(db, "site", "show", "shop")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    created_at = shown.pop("createdAt")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", created_at)
    assert shown == {
        "name": "shop",
        **DEFAULTS,
        "channels": {
            "online": ["mobileweb", "web"],
            "offline": ["callcentre", "mobileapp", "store", "tv"],
        },
    }
    for token in [*made["clientTokens"].values(), *made["siteTokens"].values()]:
        assert token not in result.stdout


def test_site_rotate_token_replaces_a_site_token(db: Path) -> None:
    made = create(db)
    result = run(db, "site", "rotate-token", "shop", "store")
    assert result.exit_code == 0
    match = re.fullmatch(rf"siteToken store ({TOKEN})\n", result.stdout)
    assert match
    new = match[1]
    with server(db) as client:
        old = offline(client, "shop", made["siteTokens"]["store"], "R1")
        assert old.status_code == 401
        assert old.json()["errors"][0]["code"] == "InvalidSiteToken"
        assert offline(client, "shop", new, "R1").status_code == 201
        assert offline(client, "shop", made["siteTokens"]["tv"], "R1", "tv").status_code == 201


def test_site_rotate_token_replaces_a_client_token(db: Path) -> None:
    made = create(db)
    result = run(db, "site", "rotate-token", "shop", "web")
    assert result.exit_code == 0
    match = re.fullmatch(rf"clientToken web ({TOKEN})\n", result.stdout)
    assert match
    with server(db) as client:
        assert page(client, "shop", made["clientTokens"]["web"], type="home").status_code == 401
        assert page(client, "shop", match[1], type="home").status_code == 200


def test_site_rotate_token_adds_a_new_channel(db: Path) -> None:
    create(db)
    result = run(db, "site", "rotate-token", "shop", "kiosk")
    assert result.exit_code == 0
    token = re.fullmatch(rf"siteToken kiosk ({TOKEN})\n", result.stdout)
    assert token
    shown = json.loads(run(db, "site", "show", "shop").stdout)
    assert shown["channels"]["offline"] == ["callcentre", "kiosk", "mobileapp", "store", "tv"]
    with server(db) as client:
        assert offline(client, "shop", token[1], "R1", "kiosk").status_code == 201


def test_site_rotate_token_refuses_a_malformed_channel(db: Path) -> None:
    create(db)
    result = run(db, "site", "rotate-token", "shop", "Front Desk")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: MissingOrMalformedChannel: channel must be 1-32 of a-z 0-9 _ -; got 'Front Desk'\n"
    )


# -- check ---------------------------------------------------------------------------------


def place_orders(db: Path, made: dict[str, Any], clock: Any) -> None:
    """Orders, a partial and a whole cancellation, through the HTTP app."""
    with server(db, clock) as client:
        token = made["clientTokens"]["web"]
        first = page(
            client,
            made["name"],
            token,
            type="order",
            order=order_body("O1", ("A", 3, "1.50"), ("B", 1, "2")),
        ).json()["session"]
        page(client, made["name"], token, type="order", order=order_body("O2", ("A", 1, "1.50")))
        cancel = f"/tracker/api/v1_4/{made['name']}/order/cancel.pagex"
        who = {"session": first["session"], "cuid": first["cuid"]}
        assert client.post(cancel, params={**who, "orderNo": "O1", "refCode": "A", "qty": "1"})
        assert client.post(cancel, params={**who, "orderNo": "O2"}).status_code == 200
        totals = client.get(f"/api/v1/sites/{made['name']}/recs/top-sellers", headers=AUTH)
        assert totals.json()["recs"] == [
            {"refCode": "A", "score": 2},
            {"refCode": "B", "score": 1},
        ]


def test_check_passes_on_an_empty_database(db: Path) -> None:
    result = run(db, "check")
    assert (result.exit_code, result.stdout) == (0, "")


def test_check_passes_on_a_consistent_database(db: Path, clock: Any) -> None:
    made = create(db, "shop", "--enable-cancellations")
    create(db, "other")
    place_orders(db, made, clock)
    result = run(db, "check")
    assert result.exit_code == 0
    assert result.stdout == "site other: consistent\nsite shop: consistent\n"
    only = run(db, "check", "--site", "shop")
    assert (only.exit_code, only.stdout) == (0, "site shop: consistent\n")


def test_check_finds_a_lost_write_in_each_statistic(db: Path, clock: Any) -> None:
    made = create(db, "shop", "--enable-cancellations")
    create(db, "other")
    place_orders(db, made, clock)
    with sqlite3.connect(db) as conn:  # as if one write to each table had been lost
        conn.execute(
            "UPDATE stat_products SET units = units + 1 WHERE site = 'shop' AND ref_code = 'A'"
        )
        conn.execute("DELETE FROM stat_pairs WHERE site = 'shop' AND ref_code = 'B'")
        conn.execute("UPDATE stat_days SET cancelled_orders = 0 WHERE site = 'shop'")
    result = run(db, "check")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "site other: consistent",
        "shop: products ('2026-11-27', 'A'): stored (3, Decimal('3.00')),"
        " recomputed (2, Decimal('3.00'))",
        "shop: pairs ('B', 'A'): stored None, recomputed 1",
        "shop: days 2026-11-27: stored Report(orders=1, units=3, revenue=Decimal('5.00'),"
        " cancelled_orders=0, cancelled_revenue=Decimal('3.00')), recomputed"
        " Report(orders=1, units=3, revenue=Decimal('5.00'), cancelled_orders=1,"
        " cancelled_revenue=Decimal('3.00'))",
        "site shop: 3 differences",
    ]
    assert run(db, "check", "--site", "other").exit_code == 0
    assert run(db, "check", "--site", "shop").exit_code == 1


def test_check_finds_a_statistic_no_order_explains(db: Path) -> None:
    create(db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO stat_products (site, day, ref_code, units, revenue)"
            " VALUES ('shop', '2026-11-27', 'GHOST', 1, '1.00')"
        )
    result = run(db, "check")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "shop: products ('2026-11-27', 'GHOST'): stored (1, Decimal('1.00')), recomputed None",
        "site shop: 1 differences",
    ]


# -- demo and migrate ----------------------------------------------------------------------


def test_demo_with_a_small_csv_shows_before_and_after_and_stays_consistent(
    db: Path, tmp_path: Path
) -> None:
    rows = ["transaction_number,date,items"]
    for member, day in [("1", "01-01-2015"), ("2", "02-01-2015"), ("1", "03-01-2015")]:
        rows += [
            f"{member},{day},whole milk",
            f"{member},{day},rolls",
            f"{member},{day},whole milk",
        ]
    csv = tmp_path / "baskets.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = run(db, "demo", "--csv", str(csv))
    assert result.exit_code == 0, result.output
    milk, rolls = price_of("whole milk"), price_of("rolls")
    basket = 2 * milk + rolls
    assert result.stdout.splitlines() == [
        "placing 3 orders in site 'demo' ...",
        "",
        "== before cancellations ==",
        f"orders 3, units 9, revenue {3 * basket:.2f} GBP, cancelled orders 0,"
        " cancelled revenue 0.00 GBP",
        "top sellers (units):",
        "       6  whole milk",
        "       3  rolls",
        "bought together with 'rolls' (orders):",
        "       3  whole milk",
        "",
        "cancelled 1 orders whole and 0 in part (1 of 3)",
        "",
        "== after cancellations ==",
        f"orders 2, units 6, revenue {2 * basket:.2f} GBP, cancelled orders 1,"
        f" cancelled revenue {basket:.2f} GBP",
        "top sellers (units):",
        "       4  whole milk",
        "       2  rolls",
        "bought together with 'rolls' (orders):",
        "       2  whole milk",
    ]
    assert isinstance(basket, Decimal)
    checked = run(db, "check")
    assert (checked.exit_code, checked.stdout) == (0, "site demo: consistent\n")
    again = run(db, "demo", "--csv", str(csv))
    assert again.exit_code == 1
    assert again.stderr == "error: OrderConflict: site 'demo' already exists\n"
    other = run(db, "demo", "--csv", str(csv), "--site", "demo2", "--cancel-percent", "0")
    assert other.exit_code == 0
    assert "cancelled 0 orders whole and 0 in part (0 of 3)" in other.stdout.splitlines()
    tiny = run(db, "demo", "--csv", str(csv), "--site", "demo3", "--cancel-percent", "0.1")
    assert "cancelled 1 orders whole and 0 in part (1 of 3)" in tiny.stdout.splitlines()


def test_demo_with_the_shipped_baskets_runs_and_leaves_check_clean(db: Path) -> None:
    result = run(db, "demo")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "placing 14963 orders in site 'demo' ..."
    cancelled = [line for line in lines if line.startswith("cancelled ")]
    assert cancelled == ["cancelled 200 orders whole and 99 in part (299 of 14963)"]
    before = lines.index("== before cancellations ==")
    after = lines.index("== after cancellations ==")
    assert re.fullmatch(
        r"orders 14963, units \d+, revenue [\d.]+ GBP, cancelled orders 0,"
        r" cancelled revenue 0\.00 GBP",
        lines[before + 1],
    )
    # A part-cancel of a one-line basket cancels the whole order, so count both ways.
    left = re.fullmatch(
        r"orders (\d+), units \d+, revenue [\d.]+ GBP, cancelled orders (\d+),"
        r" cancelled revenue [\d.]+ GBP",
        lines[after + 1],
    )
    assert left
    assert int(left[1]) + int(left[2]) == 14963
    assert 200 <= int(left[2]) <= 299
    assert lines[before + 2] == lines[after + 2] == "top sellers (units):"
    checked = run(db, "check")
    assert (checked.exit_code, checked.stdout) == (0, "site demo: consistent\n")


def test_migrate_creates_the_schema_and_is_repeatable(db: Path) -> None:
    first = run(db, "migrate")
    assert (first.exit_code, first.stdout) == (0, f"schema is up to date (version {LATEST})\n")
    again = run(db, "migrate")
    assert (again.exit_code, again.stdout) == (0, f"schema is up to date (version {LATEST})\n")
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"sites", "tokens", "orders", "order_lines", "stat_products", "stat_days"} <= tables
    assert run(db, "check").exit_code == 0


def test_a_database_url_of_another_kind_is_a_usage_error(tmp_path: Path) -> None:
    runner = CliRunner(env={"RECOTRACK_DATABASE_URL": None})
    result = runner.invoke(main, ["check", "--database", "mysql://localhost/x"])
    assert result.exit_code == 2
    assert "RECOTRACK_DATABASE_URL must be sqlite:///PATH or postgresql://..." in result.stderr


def test_check_reports_an_order_whose_stored_state_its_lines_contradict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    runner = CliRunner()
    made = runner.invoke(main, ["site", "create", "s", "--json", "--database", url])
    assert made.exit_code == 0, made.output
    store = open_store(Settings(database_url=url))
    try:
        run_demo(
            store,
            "d",
            [Basket("u1", "01-01-2015", {"milk": 1, "soda": 2})],
            0.0,
            1,
            lambda: datetime.now(UTC),
            lambda line: None,
        )
    finally:
        store.close()
    assert runner.invoke(main, ["check", "--database", url]).exit_code == 0
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE orders SET state = 'cancelled' WHERE site = 'd'")
    result = runner.invoke(main, ["check", "--database", url])
    assert result.exit_code == 1
    assert "stored state cancelled, lines make it placed" in result.output
