"""Security: tokens are kept only as hashes and compared in constant time; no token or session
reaches a log; a request authorised for one site never reads or changes another; the
management API refuses everything without the admin token; ``cancelAuth=session`` refuses the
sessions of other sites and expired ones; and the admin token is printed once, by the first
``serve``, never again."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from bench.crash import ServerProcess, recotrack_command
from starlette.routing import Route
from starlette.testclient import TestClient

from recotrack.http.app import create_app
from recotrack.settings import Settings
from recotrack.store import open_store

from .conftest import POSTGRES_URL, Clock, postgres_schema_url
from .support import ADMIN, AUTH, Api, order_body

TABLES = (
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
SITE_TABLES = TABLES[1:]


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def every_row(api: Api) -> str:
    """Every row of every table, as text."""
    return api.store.read_sync(
        lambda repo: "\n".join(
            repr(row) for t in TABLES for row in repo.db.all(f"SELECT * FROM {t}")
        )
    )


def site_rows(api: Api, site: str) -> list[list[str]]:
    """Every row that belongs to ``site``, table by table."""
    return api.store.read_sync(
        lambda repo: [
            sorted(map(repr, repo.db.all(f"SELECT * FROM {t} WHERE site = ?", (site,))))
            for t in SITE_TABLES
        ]
    )


def tokens_of(site: dict[str, Any]) -> list[str]:
    return [*site["clientTokens"].values(), *site["siteTokens"].values()]


def code(response: Any) -> tuple[int, str]:
    body = response.json()
    return response.status_code, (body.get("errors") or [{"code": ""}])[0]["code"]


# -- tokens only as hashes, compared in constant time ---------------------------------------


def test_tokens_are_stored_only_as_their_sha256_and_never_shown_again(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    rotated = api.client.post(
        "/api/v1/sites/mysite/tokens", json={"channel": "web"}, headers=AUTH
    ).json()["site"]["clientToken"]
    added = api.client.post(
        "/api/v1/sites/mysite/tokens", json={"channel": "kiosk"}, headers=AUTH
    ).json()["site"]["siteToken"]
    tokens = [*tokens_of(site), rotated, added, ADMIN]
    assert all(len(token) >= 43 for token in tokens[:-1])  # 256 random bits
    stored = every_row(api)
    for token in tokens:
        assert token not in stored
    stored_hashes = api.store.read_sync(
        lambda repo: {row[0] for row in repo.db.all("SELECT token_hash FROM tokens")}
    )
    live = [t for t in tokens_of(site) if t != site["clientTokens"]["web"]] + [rotated, added]
    assert stored_hashes == {sha256(token) for token in live}
    shown = api.client.get("/api/v1/sites/mysite", headers=AUTH).text
    for token in tokens:
        assert token not in shown and sha256(token) not in shown
    # The rotated-out token stops working at once.
    old = api.page(site, type="home")
    assert code(old) == (401, "InvalidClientToken")
    assert api.page({**site, "clientTokens": {"web": rotated}}, type="home").status_code == 200


@contextlib.contextmanager
def counting_digest_calls() -> Iterator[list[int]]:
    """Count calls of ``hmac.compare_digest`` in this thread and in threads started inside
    (the store's writer, the test client's event loop): a profiler, not a patch."""
    calls = [0]
    target = hmac.compare_digest

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and arg is target:
            calls[0] += 1

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


def test_every_token_is_compared_with_compare_digest_and_as_often_whatever_it_is(
    database_url: str, clock: Clock
) -> None:
    settings = Settings(database_url=database_url, admin_token=ADMIN, sqlite_synchronous="NORMAL")
    with counting_digest_calls() as calls:
        store = open_store(settings)
        try:
            with TestClient(create_app(settings, store=store, clock=clock)) as client:
                api = Api(client, store, clock)

                def digests(send: Any) -> tuple[int, int]:
                    before = calls[0]
                    response = send()
                    return response.status_code, calls[0] - before

                site = api.create_site("mysite", cancellations=True, cancelAuth="token")
                other = api.create_site("other")
                web, mobile = site["clientTokens"]["web"], site["clientTokens"]["mobileweb"]
                # rest.pagex: one comparison, right or wrong, on a known channel or not.
                page = {"type": "home", "session": "new", "cuid": "c1"}
                assert digests(lambda: api.page(site, **page)) == (200, 1)
                wrong = {**site, "clientTokens": {"web": mobile, "mobileweb": web}}
                assert digests(lambda: api.page(wrong, **page)) == (401, 1)
                made_up = {**site, "clientTokens": {"pos": web}}
                assert digests(lambda: api.page(made_up, channel="pos", **page)) == (401, 1)
                theirs = {**site, "clientTokens": other["clientTokens"]}
                assert digests(lambda: api.page(theirs, **page)) == (401, 1)
                # The smart API: one comparison.
                body = {
                    "order": {
                        "refCode": "F1",
                        "currency": "GBP",
                        "total": "1",
                        "items": [{"refCode": "P", "qty": 1, "price": "1"}],
                    }
                }
                assert digests(lambda: api.offline(site, body)) == (201, 1)
                bad = {**site, "siteTokens": {"store": other["siteTokens"]["store"]}}
                assert digests(lambda: api.offline(bad, body)) == (401, 1)
                # cancelAuth token: every online channel is compared, whichever matches.
                session = api.page(site, **page).json()["session"]
                cancel = {**session, "orderNo": "X1"}
                for token, status in ((web, 202), (mobile, 202), ("x" * 43, 401)):
                    sent = lambda token=token: api.cancel("mysite", clientToken=token, **cancel)  # noqa: E731
                    assert digests(sent) == (status, 2)
                # The admin token: one comparison, sent or not.
                for headers, status in (
                    (AUTH, 200),
                    ({"Authorization": "Bearer " + "y" * len(ADMIN)}, 401),
                    ({}, 401),
                ):
                    get = lambda h=headers: client.get("/api/v1/sites/mysite", headers=h)  # noqa: E731
                    assert digests(get) == (status, 1)
        finally:
            store.close()


# -- no token or session in logs -------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def real_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    if not POSTGRES_URL:
        pytest.skip("needs RECOTRACK_TEST_POSTGRES_URL")
    yield from postgres_schema_url(POSTGRES_URL)


def env_without_recotrack(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOTRACK_")}
    env.update(extra)
    return env


@pytest.mark.slow
def test_no_token_session_or_cuid_reaches_the_log_even_when_the_database_refuses_a_row(
    tmp_path: Path, real_database: str
) -> None:
    secrets_seen: list[str] = [ADMIN]
    env = env_without_recotrack(RECOTRACK_ADMIN_TOKEN=ADMIN, RECOTRACK_LOG_LEVEL="debug")
    log = tmp_path / "server.log"
    with ServerProcess(real_database, log, env, workers=2) as server:
        server.start()
        client = httpx2.Client(base_url=server.url, timeout=30)
        with client:
            made = client.post(
                "/api/v1/sites",
                json={"name": "logs", "cancellations": True, "cancelAuth": "token"},
                headers=AUTH,
            )
            assert made.status_code == 201, made.text
            site = made.json()["site"]
            secrets_seen += tokens_of(site)
            web, store = site["clientTokens"]["web"], site["siteTokens"]["store"]
            cuid = "cuid-" + "c" * 40
            secrets_seen.append(cuid)

            def page(**fields: Any) -> Any:
                jd = {"site": "logs", "clientToken": web, "cuid": cuid, **fields}
                return client.get("/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(jd)})

            session = page(type="home", session="new").json()["session"]["session"]
            secrets_seen.append(session)
            assert (
                page(
                    type="order", session=session, order=order_body("L1", ("P", 1, "1"))
                ).status_code
                == 200
            )
            cancel = {"session": session, "cuid": cuid, "orderNo": "L1", "clientToken": web}
            assert (
                client.get("/tracker/api/v1_4/logs/order/cancel.pagex", params=cancel).status_code
                == 200
            )
            refused = client.post(
                "/tracker/api/v1_4/logs/order/cancel.pagex",
                params={**cancel, "clientToken": "wrong-" + web},
            )
            assert refused.status_code == 401
            headers = {"site": "logs", "siteToken": store, "channel": "store"}
            assert client.delete("/smart-api/orders/offline/Q1", headers=headers).status_code == 202
            assert (
                client.get(
                    "/api/v1/sites/logs", headers={"Authorization": "Bearer " + web}
                ).status_code
                == 401
            )
            # A rotated token stops working in every server process at once.
            rotated = client.post(
                "/api/v1/sites/logs/tokens", json={"channel": "store"}, headers=AUTH
            )
            secrets_seen.append(rotated.json()["site"]["siteToken"])
            for _ in range(20):
                old = client.delete("/smart-api/orders/offline/Q2", headers=headers)
                assert old.status_code == 401, old.text
            if real_database.startswith("postgres"):
                # The database refuses the session's row: the error logged must not quote it.
                import psycopg

                with psycopg.connect(real_database, autocommit=True) as conn:
                    conn.execute(
                        "ALTER TABLE sessions ADD CONSTRAINT no_poison"
                        " CHECK (user_id <> 'poison') NOT VALID"
                    )
                poisoned = page(type="home", session=session, user={"id": "poison"})
                assert code(poisoned) == (503, "Overloaded"), poisoned.text
            metrics = client.get("/metrics").text
    text = log.read_text(errors="replace")
    if real_database.startswith("postgres"):
        assert "store error on /tracker/api/v1_4/rest.pagex" in text  # the error was logged
    for secret in secrets_seen:
        assert secret not in text, f"{secret[:8]}... is in the server log"
        assert secret not in metrics
        assert sha256(secret) not in text


def test_the_database_url_is_shown_without_its_password(tmp_path: Path) -> None:
    from recotrack.cli import _shown

    assert _shown("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    assert _shown("postgresql://u@h/db?sslmode=require&password=s3cret") == (
        "postgresql://u@h/db?sslmode=require&password=***"
    )
    assert _shown("sqlite:///var/recotrack.db") == "sqlite:///var/recotrack.db"


# -- site isolation ------------------------------------------------------------------------


def test_no_request_authorised_for_one_site_reads_or_changes_another(api: Api) -> None:
    a = api.create_site("a", cancellations=True, cancelAuth="session")
    b = api.create_site("b", cancellations=True, cancelAuth="open", offlineOrdersAffectCrowd=True)
    # Site b: an online and an offline order, a held cancellation, a session with a basket.
    b_session = api.page(b, type="home", cuid="b-cuid").json()["session"]
    api.place(b, order_body("SHARED", ("B-ONLY", 2, "5.00")), **b_session)
    api.place(b, order_body("B-2", ("B-ONLY", 1, "5.00"), ("B-TOO", 1, "1.00")), **b_session)
    assert (
        api.offline(
            b,
            {
                "order": {
                    "refCode": "OFF",
                    "currency": "GBP",
                    "total": "3",
                    "items": [{"refCode": "B-ONLY", "qty": 1, "price": "3"}],
                }
            },
        ).status_code
        == 201
    )
    assert api.cancel("b", orderNo="B-HELD", **b_session).status_code == 202
    api.page(
        b,
        type="basket",
        basket={"items": [{"refCode": "B-ONLY", "qty": 1, "price": "5"}]},
        **b_session,
    )
    before = site_rows(api, "b")

    # Site b's credentials on site a: refused.
    assert code(api.page({**a, "clientTokens": b["clientTokens"]})) == (401, "InvalidClientToken")
    assert code(api.offline({**a, "siteTokens": b["siteTokens"]}, {"order": {}})) == (
        401,
        "InvalidSiteToken",
    )
    for channel in ("store", "tv"):
        crossed = {**a, "siteTokens": {channel: b["siteTokens"]["store"]}}
        assert code(api.delete_offline(crossed, "OFF", channel=channel)) == (
            401,
            "InvalidSiteToken",
        )
    # a's own store token for another of a's channels: refused too (tokens are per channel).
    per_channel = {**a, "siteTokens": {"tv": a["siteTokens"]["store"]}}
    assert code(api.delete_offline(per_channel, "OFF", channel="tv")) == (401, "InvalidSiteToken")
    # b's session on site a: a new session, not b's; cancel in it: refused.
    crossed = api.page(a, type="home", **b_session).json()["session"]
    assert crossed["session"] != b_session["session"]
    assert code(api.cancel("a", orderNo="SHARED", **b_session)) == (401, "SessionNotRecognized")
    # Requests a may make, with b's order numbers, products, cuid: they touch a's data only.
    a_session = api.page(a, type="home", cuid="b-cuid").json()["session"]
    assert code(api.cancel("a", orderNo="SHARED", **a_session))[0] == 202  # held in a
    assert code(api.cancel("a", orderNo="B-HELD", **a_session))[0] == 202
    assert code(api.delete_offline(a, "OFF")) == (202, "OrderNotFound")  # no ChannelMismatch
    placed = api.place(a, order_body("B-2", ("A-ONLY", 1, "1.00")), **a_session)
    assert placed.json()["order"] == {"orderNo": "B-2", "state": "placed"}
    recs = api.page(a, type="product", product={"refCode": "B-ONLY"}, **a_session).json()
    assert all(not r["refCode"].startswith("B-") for r in recs["smartRecs"][0]["recs"])
    assert site_rows(api, "b") == before

    # Reads through a see nothing of b.
    assert api.top_sellers("a") == [("A-ONLY", 1)]
    assert api.bought_together("a", "B-ONLY") == []
    history = api.admin_get("/api/v1/sites/a/history", cuid="b-cuid")["history"]
    assert [h["refCode"] for h in history] == ["A-ONLY"]
    missing = api.client.get("/api/v1/sites/a/orders/SHARED", headers=AUTH)
    assert code(missing) == (404, "OrderNotFound")
    # b's order that a held a cancellation for arrives in b: placed, counted.
    arrived = api.place(b, order_body("B-HELD-2", ("B-ONLY", 1, "5.00")), **b_session)
    assert arrived.json()["order"]["state"] == "placed"
    held_in_b = api.admin_get("/api/v1/sites/b/held")["held"]
    assert [h["orderNo"] for h in held_in_b] == ["B-HELD"]
    api.assert_consistent("a")
    api.assert_consistent("b")


# -- the management API without the admin token --------------------------------------------


def management_calls(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every management endpoint, with the path's parameters filled."""
    calls = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/"):
            path = re.sub(r"\{site\}", "mysite", route.path)
            path = re.sub(r"\{[a-z_]+(:[a-z]+)?\}", "O1", path)
            calls += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return calls


def test_the_management_api_refuses_every_call_without_the_admin_token(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.place(site, order_body("O1", ("P1", 1, "1.00")))
    calls = management_calls(api.client.app)
    assert len(calls) >= 10, calls
    refusals = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {ADMIN}x"},
        {"Authorization": f"Bearer {ADMIN[:-1]}"},
        {"Authorization": f"Basic {ADMIN}"},
        {"Authorization": ADMIN},
        {"Authorization": f"Bearer {site['clientTokens']['web']}"},
        {"Authorization": f"Bearer {sha256(ADMIN)}"},
    ]
    before = every_row(api)
    for method, path in calls:
        for headers in refusals:
            response = api.client.request(
                method, path, headers=headers, json={"name": "evil", "channel": "web"}
            )
            assert code(response) == (401, "InvalidAdminToken"), (method, path, headers)
        # With the token the same call is not refused for want of it.
        allowed = api.client.request(method, path, headers=AUTH, json={"channel": "web"})
        assert allowed.status_code != 401, (method, path, allowed.text)
    assert every_row(api).count("evil") == 0
    assert len(before) > 0


def test_without_an_admin_token_set_or_stored_the_management_api_refuses_everything(
    database_url: str, clock: Clock
) -> None:
    settings = Settings(database_url=database_url, admin_token="")
    store = open_store(settings)
    try:
        with TestClient(create_app(settings, store=store, clock=clock)) as client:
            for method, path in management_calls(client.app):
                for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
                    response = client.request(method, path, headers=headers, json={"name": "s"})
                    assert code(response) == (401, "InvalidAdminToken"), (method, path, headers)
    finally:
        store.close()


# -- cancelAuth ----------------------------------------------------------------------------


def test_cancel_auth_session_refuses_other_sites_sessions_and_expired_ones(
    api: Api, clock: Clock
) -> None:
    a = api.create_site("a", cancellations=True, sessionMaxAgeSeconds=600)
    b = api.create_site("b", cancellations=True)
    a_session = api.page(a, type="home").json()["session"]
    b_session = api.page(b, type="home").json()["session"]
    api.place(a, order_body("O1", ("P1", 3, "1.00")), **a_session)
    api.place(a, order_body("O2", ("P1", 1, "1.00")), **a_session)
    before = site_rows(api, "a")
    # b's session, b's session with a's cuid, a made-up one: refused, nothing changed.
    for who in (
        b_session,
        {**b_session, "cuid": a_session["cuid"]},
        {**a_session, "session": "123456789012|" + "z" * 43},
    ):
        for extra in ({}, {"refCode": "P1", "qty": "1"}):
            refused = api.cancel("a", orderNo="O1", **who, **extra)
            assert code(refused) == (401, "SessionNotRecognized"), refused.text
        assert code(api.cancel("a", orderNo="UNSEEN", **who)) == (401, "SessionNotRecognized")
    assert site_rows(api, "a") == before
    # Active: taken. A cancel is activity too: it keeps the session alive.
    clock.advance(seconds=590)
    assert api.cancel("a", orderNo="O1", refCode="P1", qty="1", **a_session).status_code == 200
    clock.advance(seconds=590)
    assert api.cancel("a", orderNo="O1", refCode="P1", qty="1", **a_session).status_code == 200
    # Expired: refused, and the order keeps its live quantity.
    clock.advance(seconds=601)
    expired = api.cancel("a", orderNo="O2", **a_session)
    assert code(expired) == (401, "SessionNotRecognized")
    assert api.order("a", "O2")["state"] == "placed"
    assert api.order("a", "O1")["lines"][0]["liveQuantity"] == 1
    api.assert_consistent("a")


def test_cancel_auth_token_refuses_another_sites_client_token(api: Api) -> None:
    a = api.create_site("a", cancellations=True, cancelAuth="token")
    b = api.create_site("b", cancellations=True, cancelAuth="token")
    session = api.page(a, type="home").json()["session"]
    api.place(a, order_body("O1", ("P1", 1, "1.00")), **session)
    for token in (b["clientTokens"]["web"], a["siteTokens"]["store"], ""):
        refused = api.cancel("a", orderNo="O1", clientToken=token, **session)
        assert code(refused) == (401, "InvalidClientToken"), refused.text
    assert api.order("a", "O1")["state"] == "placed"
    taken = api.cancel("a", orderNo="O1", clientToken=a["clientTokens"]["mobileweb"], **session)
    assert taken.json()["order"]["state"] == "cancelled"


# -- the admin token is printed once -------------------------------------------------------


ANNOUNCED = re.compile(r"admin token \(shown once, keep it\): (\S+)")


@pytest.mark.slow
def test_the_first_serve_prints_the_admin_token_once_and_later_ones_never(
    tmp_path: Path, real_database: str
) -> None:
    env = env_without_recotrack()
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    with ServerProcess(real_database, first, env) as server:
        server.start()
        announced = ANNOUNCED.findall(first.read_text())
        assert len(announced) == 1, first.read_text()
        token = announced[0]
        assert len(token) >= 43
        with httpx2.Client(base_url=server.url, timeout=30) as client:
            ok = client.get("/api/v1/sites/nosuch", headers={"Authorization": f"Bearer {token}"})
            assert code(ok) == (404, "SiteNotRecognized")
            wrong = client.get("/api/v1/sites/nosuch", headers={"Authorization": "Bearer x"})
            assert code(wrong) == (401, "InvalidAdminToken")
    with ServerProcess(real_database, second, env, workers=2) as server:
        server.start()
        with httpx2.Client(base_url=server.url, timeout=30) as client:
            ok = client.get("/api/v1/sites/nosuch", headers={"Authorization": f"Bearer {token}"})
            assert code(ok) == (404, "SiteNotRecognized")
    later = second.read_text()
    assert token not in later and "admin token" not in later, later
    # The other commands do not print it either, and the database keeps only its hash.
    made = subprocess.run(
        [*recotrack_command(), "site", "create", "shop", "--database", real_database],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert token not in made.stdout + made.stderr
    if real_database.startswith("sqlite:///"):
        path = Path(real_database.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert token.encode() not in raw
        assert sha256(token).encode() in raw
