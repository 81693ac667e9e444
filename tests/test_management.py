"""The management API (API.md 8): sites, settings, tokens, orders, recs, history, reports."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from .support import ADMIN, AUTH, Api, order_body

SITE_KEYS = {
    "name",
    "cancellations",
    "cancelAuth",
    "offlineOrdersAffectCrowd",
    "sessionMaxAgeSeconds",
    "pendingCancelDays",
    "channels",
    "createdAt",
}
DEFAULTS = {
    "cancellations": False,
    "cancelAuth": "session",
    "offlineOrdersAffectCrowd": False,
    "sessionMaxAgeSeconds": 14400,
    "pendingCancelDays": 30,
}
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # 256 random bits, URL-safe


def advance(api: Api, **delta: float) -> None:
    """Move the server's clock (the conftest ``Clock`` behind ``api.clock``)."""
    api.clock.advance(**delta)  # type: ignore[attr-defined]


def fail(code: str, message: str) -> dict[str, Any]:
    return {"status": "fail", "errors": [{"code": code, "message": message}]}


def offline_body(ref: str, *lines: tuple[str, int, str], user: str = "") -> dict[str, Any]:
    total = sum((Decimal(price) * qty for _, qty, price in lines), Decimal(0))
    body: dict[str, Any] = {
        "order": {
            "refCode": ref,
            "currency": "GBP",
            "total": str(total),
            "items": [{"refCode": r, "qty": q, "price": p} for r, q, p in lines],
        }
    }
    if user:
        body["user"] = {"id": user}
    return body


def place(api: Api, site: dict[str, Any], order_no: str, *lines: Any, **fields: Any) -> Any:
    """An online order through rest.pagex; returns the envelope's session."""
    response = api.place(site, order_body(order_no, *lines), **fields)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "OK", response.text
    return response.json()["session"]


def cancel(api: Api, session: dict[str, str], order_no: str, **params: Any) -> Any:
    response = api.cancel(
        "mysite", session=session["session"], cuid=session["cuid"], orderNo=order_no, **params
    )
    assert response.status_code == 200, response.text
    return response.json()


def report(api: Api, first: str, last: str) -> list[dict[str, Any]]:
    days: list[dict[str, Any]] = api.admin_get(
        "/api/v1/sites/mysite/reports/daily", **{"from": first, "to": last}
    )["days"]
    return days


def history(api: Api, **who: str) -> list[tuple[str, int, str]]:
    rows = api.admin_get("/api/v1/sites/mysite/history", **who)["history"]
    return [(row["refCode"], row["quantity"], row["lastBought"]) for row in rows]


# -- the admin token -----------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/api/v1/sites", {"name": "newsite"}),
    ("GET", "/api/v1/sites/mysite", None),
    ("PATCH", "/api/v1/sites/mysite", {"cancellations": True}),
    ("POST", "/api/v1/sites/mysite/tokens", {"channel": "store"}),
    ("GET", "/api/v1/sites/mysite/orders/O1", None),
    ("GET", "/api/v1/sites/mysite/orders", None),
    ("GET", "/api/v1/sites/mysite/held", None),
    ("GET", "/api/v1/sites/mysite/recs/top-sellers", None),
    ("GET", "/api/v1/sites/mysite/recs/bought-together?refCode=A", None),
    ("GET", "/api/v1/sites/mysite/history?cuid=c1", None),
    ("GET", "/api/v1/sites/mysite/reports/daily?from=2026-11-27&to=2026-11-27", None),
    ("GET", "/api/v1/sites/nosuchsite", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_management_endpoint_refuses_a_missing_or_wrong_admin_token(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    site = api.create_site("mysite")
    place(api, site, "O1", ("A", 1, "1"))
    attempts = {
        "missing": {},
        "wrong token": {"Authorization": f"Bearer {ADMIN}x"},
        "empty bearer": {"Authorization": "Bearer "},
        "no scheme": {"Authorization": ADMIN},
        "basic scheme": {"Authorization": "Basic dGVzdC1hZG1pbi10b2tlbg=="},
        "a site token": {"Authorization": f"Bearer {site['siteTokens']['store']}"},
    }
    answers = {}
    for name, sent in attempts.items():
        response = api.client.request(method, path, json=body, headers=sent)
        answers[name] = (response.status_code, response.json())
    expected = fail(
        "InvalidAdminToken", "send Authorization: Bearer <admin token> for the management API"
    )
    assert answers == {name: (401, expected) for name in attempts}
    # Nothing was changed by the refused calls.
    shown = api.admin_get("/api/v1/sites/mysite")["site"]
    assert {k: shown[k] for k in DEFAULTS} == DEFAULTS
    assert api.client.get("/api/v1/sites/newsite", headers=AUTH).status_code == 404
    assert api.offline(site, offline_body("R1", ("A", 1, "1"))).status_code == 201


def test_the_bearer_scheme_is_matched_in_any_case(api: Api) -> None:
    api.create_site("mysite")
    response = api.client.get("/api/v1/sites/mysite", headers={"Authorization": f"bearer {ADMIN}"})
    assert response.status_code == 200
    assert response.json()["site"]["name"] == "mysite"


# -- sites ---------------------------------------------------------------------------------


def test_creating_a_site_returns_it_with_its_tokens_once(api: Api) -> None:
    response = api.client.post("/api/v1/sites", json={"name": "my-Site_2"}, headers=AUTH)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"status", "site"}
    assert body["status"] == "OK"
    site = body["site"]
    client_tokens, site_tokens = site.pop("clientTokens"), site.pop("siteTokens")
    assert site == {
        "name": "my-Site_2",
        **DEFAULTS,
        "channels": {
            "online": ["mobileweb", "web"],
            "offline": ["callcentre", "mobileapp", "store", "tv"],
        },
        "createdAt": "2026-11-27T12:00:00.000000Z",
    }
    assert list(client_tokens) == ["web", "mobileweb"]
    assert list(site_tokens) == ["store", "mobileapp", "tv", "callcentre"]
    tokens = [*client_tokens.values(), *site_tokens.values()]
    assert all(TOKEN.fullmatch(token) for token in tokens)
    assert len(set(tokens)) == 6
    shown = api.client.get("/api/v1/sites/my-Site_2", headers=AUTH)
    assert shown.status_code == 200
    assert shown.json() == {"status": "OK", "site": site}
    assert not any(token in shown.text for token in tokens)


def test_site_tokens_are_stored_only_as_hashes(api: Api) -> None:
    site = api.create_site("mysite")
    tokens = {*site["clientTokens"].values(), *site["siteTokens"].values()}
    stored = api.store.read_sync(lambda repo: repo.db.all("SELECT token_hash FROM tokens"))
    assert len(stored) == 6
    assert not tokens & {row[0] for row in stored}


def test_a_site_is_created_with_the_settings_given(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, cancelAuth="open", pendingCancelDays=7)
    assert {k: site[k] for k in DEFAULTS} == {
        **DEFAULTS,
        "cancellations": True,
        "cancelAuth": "open",
        "pendingCancelDays": 7,
    }


def test_a_site_name_of_64_characters_is_accepted(api: Api) -> None:
    name = "a" * 60 + "Z_-9"
    assert api.create_site(name)["name"] == name


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("", "''"),
        ("my site", "'my site'"),
        ("my.site", "'my.site'"),
        ("a/b", "'a/b'"),
        ("caf\u00e9", "'caf\u00e9'"),
        ("x" * 65, "'" + "x" * 65 + "'"),
        ("x" * 100, "'" + "x" * 79),
        (5, "5"),
        (1.5, "1.5"),
        (None, "None"),
        (["mysite"], "['mysite']"),
    ],
)
def test_a_site_name_outside_the_allowed_characters_is_refused(
    api: Api, name: Any, shown: str
) -> None:
    response = api.client.post("/api/v1/sites", json={"name": name}, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail(
        "SiteNotRecognized", f"site name must be 1-64 of A-Z a-z 0-9 _ -; got {shown}"
    )
    assert api.client.get("/api/v1/sites/x", headers=AUTH).status_code == 404


def test_a_site_without_a_name_is_refused(api: Api) -> None:
    response = api.client.post("/api/v1/sites", json={}, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail(
        "SiteNotRecognized", "site name must be 1-64 of A-Z a-z 0-9 _ -; got None"
    )


def test_a_site_that_exists_is_not_created_again(api: Api) -> None:
    first = api.create_site("mysite")
    again = api.client.post("/api/v1/sites", json={"name": "mysite"}, headers=AUTH)
    assert again.status_code == 409
    assert again.json() == fail("OrderConflict", "site 'mysite' already exists")
    # The first tokens still work: nothing was re-issued.
    placed = api.offline(first, offline_body("R1", ("A", 1, "1")))
    assert placed.status_code == 201


def test_a_site_body_must_be_a_json_object(api: Api) -> None:
    form = api.client.post(
        "/api/v1/sites",
        content=b"name=mysite",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert form.json() == fail("UnsupportedMediaType", "send the body as application/json")
    listed = api.client.post("/api/v1/sites", json=["mysite"], headers=AUTH)
    assert listed.status_code == 400
    assert listed.json() == fail("MalformedJson", "the body must be a JSON object")
    broken = api.client.post(
        "/api/v1/sites", content=b'{"name": ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["errors"][0]["code"] == "MalformedJson"
    assert api.client.get("/api/v1/sites/mysite", headers=AUTH).status_code == 404


def test_an_unknown_site_is_404(api: Api) -> None:
    for method, path, body in [
        ("GET", "/api/v1/sites/nosite", None),
        ("PATCH", "/api/v1/sites/nosite", {"cancellations": True}),
        ("POST", "/api/v1/sites/nosite/tokens", {"channel": "store"}),
        ("GET", "/api/v1/sites/nosite/orders", None),
        ("GET", "/api/v1/sites/nosite/orders/O1", None),
        ("GET", "/api/v1/sites/nosite/held", None),
        ("GET", "/api/v1/sites/nosite/recs/top-sellers", None),
        ("GET", "/api/v1/sites/nosite/recs/bought-together?refCode=A", None),
        ("GET", "/api/v1/sites/nosite/history?userId=u1", None),
        ("GET", "/api/v1/sites/nosite/reports/daily?from=2026-11-27&to=2026-11-27", None),
    ]:
        response = api.client.request(method, path, json=body, headers=AUTH)
        assert (path, response.status_code, response.json()) == (
            path,
            404,
            fail("SiteNotRecognized", "site 'nosite' is not known to this server"),
        )


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("cancellations", True),
        ("cancelAuth", "open"),
        ("cancelAuth", "token"),
        ("offlineOrdersAffectCrowd", True),
        ("sessionMaxAgeSeconds", 60),
        ("sessionMaxAgeSeconds", 31_536_000),
        ("pendingCancelDays", 1),
        ("pendingCancelDays", 3650),
    ],
)
def test_patch_changes_one_setting_and_leaves_the_others(
    api: Api, setting: str, value: Any
) -> None:
    api.create_site("mysite")
    response = api.client.patch("/api/v1/sites/mysite", json={setting: value}, headers=AUTH)
    assert response.status_code == 200
    expected = {**DEFAULTS, setting: value}
    assert {k: response.json()["site"][k] for k in DEFAULTS} == expected
    assert set(response.json()["site"]) == SITE_KEYS
    shown = api.admin_get("/api/v1/sites/mysite")["site"]
    assert {k: shown[k] for k in DEFAULTS} == expected


def test_patch_changes_several_settings_and_back(api: Api) -> None:
    api.create_site("mysite")
    changes = {"cancellations": True, "cancelAuth": "token", "offlineOrdersAffectCrowd": True}
    api.client.patch("/api/v1/sites/mysite", json=changes, headers=AUTH)
    back = {"cancellations": False, "cancelAuth": "session", "offlineOrdersAffectCrowd": False}
    response = api.client.patch("/api/v1/sites/mysite", json=back, headers=AUTH)
    assert {k: response.json()["site"][k] for k in DEFAULTS} == DEFAULTS


SETTINGS_ARE = (
    "cancellations, cancelAuth, offlineOrdersAffectCrowd, sessionMaxAgeSeconds, pendingCancelDays"
)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"cancellations": "yes"}, "cancellations must be true or false; got 'yes'"),
        ({"cancellations": 1}, "cancellations must be true or false; got 1"),
        (
            {"offlineOrdersAffectCrowd": None},
            "offlineOrdersAffectCrowd must be true or false; got None",
        ),
        (
            {"cancelAuth": "never"},
            "cancelAuth must be one of open, session, token; got 'never'",
        ),
        (
            {"cancelAuth": "Open"},
            "cancelAuth must be one of open, session, token; got 'Open'",
        ),
        (
            {"sessionMaxAgeSeconds": 59},
            "sessionMaxAgeSeconds must be a whole number from 60 to 31536000; got 59",
        ),
        (
            {"sessionMaxAgeSeconds": 31_536_001},
            "sessionMaxAgeSeconds must be a whole number from 60 to 31536000; got 31536001",
        ),
        (
            {"sessionMaxAgeSeconds": "3600"},
            "sessionMaxAgeSeconds must be a whole number from 60 to 31536000; got '3600'",
        ),
        (
            {"sessionMaxAgeSeconds": True},
            "sessionMaxAgeSeconds must be a whole number from 60 to 31536000; got True",
        ),
        (
            {"pendingCancelDays": 0},
            "pendingCancelDays must be a whole number from 1 to 3650; got 0",
        ),
        (
            {"pendingCancelDays": 3651},
            "pendingCancelDays must be a whole number from 1 to 3650; got 3651",
        ),
        (
            {"pendingCancelDays": 1.5},
            "pendingCancelDays must be a whole number from 1 to 3650; got 1.5",
        ),
        ({"bogus": 1}, f"unknown setting 'bogus'; settings are: {SETTINGS_ARE}"),
        ({"cancel_auth": "open"}, f"unknown setting 'cancel_auth'; settings are: {SETTINGS_ARE}"),
        ({"name": "other"}, f"unknown setting 'name'; settings are: {SETTINGS_ARE}"),
        ({}, f"give an object with one or more of: {SETTINGS_ARE}"),
        (
            {"cancellations": True, "cancelAuth": "never"},
            "cancelAuth must be one of open, session, token; got 'never'",
        ),
    ],
)
def test_patch_refuses_a_bad_value_naming_the_setting_and_changes_nothing(
    api: Api, patch: dict[str, Any], message: str
) -> None:
    api.create_site("mysite")
    response = api.client.patch("/api/v1/sites/mysite", json=patch, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail("MalformedJson", message)
    shown = api.admin_get("/api/v1/sites/mysite")["site"]
    assert {k: shown[k] for k in DEFAULTS} == DEFAULTS


def test_create_with_a_bad_setting_creates_nothing(api: Api) -> None:
    response = api.client.post(
        "/api/v1/sites", json={"name": "mysite", "cancelAuth": "never"}, headers=AUTH
    )
    assert response.status_code == 400
    assert response.json() == fail(
        "MalformedJson", "cancelAuth must be one of open, session, token; got 'never'"
    )
    assert api.client.get("/api/v1/sites/mysite", headers=AUTH).status_code == 404


# -- tokens --------------------------------------------------------------------------------


def rotate(api: Api, channel: Any, site: str = "mysite") -> Any:
    return api.client.post(f"/api/v1/sites/{site}/tokens", json={"channel": channel}, headers=AUTH)


def test_rotating_a_site_token_stops_the_old_one_on_the_smart_api(api: Api) -> None:
    site = api.create_site("mysite")
    response = rotate(api, "store")
    assert response.status_code == 201
    new = response.json()["site"]["siteToken"]
    assert response.json() == {
        "status": "OK",
        "site": {"name": "mysite", "channel": "store", "siteToken": new},
    }
    assert TOKEN.fullmatch(new)
    assert new != site["siteTokens"]["store"]
    old = api.offline(site, offline_body("R1", ("A", 1, "1")))
    assert old.status_code == 401
    assert old.json()["errors"][0]["code"] == "InvalidSiteToken"
    rotated = {**site, "siteTokens": {**site["siteTokens"], "store": new}}
    assert api.offline(rotated, offline_body("R1", ("A", 1, "1"))).status_code == 201
    # The other channels' tokens are untouched.
    assert api.offline(site, offline_body("R2", ("A", 1, "1")), channel="tv").status_code == 201


def test_rotating_a_client_token_stops_the_old_one_on_rest_pagex(api: Api) -> None:
    site = api.create_site("mysite")
    response = rotate(api, "web")
    assert response.status_code == 201
    new = response.json()["site"]["clientToken"]
    assert response.json() == {
        "status": "OK",
        "site": {"name": "mysite", "channel": "web", "clientToken": new},
    }
    old = api.page(site, type="home")
    assert old.status_code == 401
    assert old.json() == fail(
        "InvalidClientToken", "clientToken is not valid for site 'mysite' and channel 'web'"
    )
    rotated = {**site, "clientTokens": {**site["clientTokens"], "web": new}}
    assert api.page(rotated, type="home").status_code == 200
    assert api.page(site, type="home", channel="mobileweb").status_code == 200


def test_rotating_a_new_channel_adds_it(api: Api) -> None:
    site = api.create_site("mysite")
    response = rotate(api, "kiosk")
    assert response.status_code == 201
    token = response.json()["site"]["siteToken"]
    shown = api.admin_get("/api/v1/sites/mysite")["site"]
    assert shown["channels"] == {
        "online": ["mobileweb", "web"],
        "offline": ["callcentre", "kiosk", "mobileapp", "store", "tv"],
    }
    with_kiosk = {**site, "siteTokens": {**site["siteTokens"], "kiosk": token}}
    placed = api.offline(with_kiosk, offline_body("R1", ("A", 1, "1")), channel="kiosk")
    assert placed.status_code == 201


@pytest.mark.parametrize(
    ("channel", "shown"), [("Store", "'Store'"), ("", "''"), (None, "None"), (7, "7")]
)
def test_rotating_a_malformed_channel_is_400(api: Api, channel: Any, shown: str) -> None:
    site = api.create_site("mysite")
    response = rotate(api, channel)
    assert response.status_code == 400
    assert response.json() == fail(
        "MissingOrMalformedChannel", f"channel must be 1-32 of a-z 0-9 _ -; got {shown}"
    )
    assert api.admin_get("/api/v1/sites/mysite")["site"]["channels"] == site["channels"]


# -- one order -----------------------------------------------------------------------------


def test_an_order_shows_lines_totals_state_and_history(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    placer = place(api, site, "O1", ("A", 2, "10.25"), ("B", 1, "15"), user={"id": "u1"})
    sid, cuid = placer["session"], placer["cuid"]
    order = api.order("mysite", "O1")
    assert order == {
        "orderNo": "O1",
        "source": "online",
        "channel": "web",
        "state": "placed",
        "orderDate": "2026-11-27T12:00:00.000000Z",
        "currency": "GBP",
        "subtotal": "35.50",
        "shipping": "0.00",
        "total": "35.50",
        "liveTotal": "35.50",
        "cuid": cuid,
        "userId": "u1",
        "customerId": "",
        "session": sid,
        "countsInCrowd": True,
        "lines": [
            {"refCode": "A", "quantity": 2, "liveQuantity": 2, "price": "10.25"},
            {"refCode": "B", "quantity": 1, "liveQuantity": 1, "price": "15.00"},
        ],
        "history": [
            {
                "event": "placed",
                "at": "2026-11-27T12:00:00.000000Z",
                "channel": "web",
                "session": sid,
                "cuid": cuid,
                "reason": "",
            }
        ],
    }
    advance(api, minutes=10)
    cancel(api, placer, "O1", refCode="A", qty="1", reason="damaged in transit")
    advance(api, minutes=10)
    other = api.page(site, type="home").json()["session"]  # another session of this site
    cancel(api, other, "O1", reason="changed mind")
    order = api.order("mysite", "O1")
    assert (order["state"], order["total"], order["liveTotal"]) == ("cancelled", "35.50", "0.00")
    assert [(line["quantity"], line["liveQuantity"]) for line in order["lines"]] == [
        (2, 0),
        (1, 0),
    ]
    assert order["history"][1:] == [
        {
            "event": "line-cancelled",
            "at": "2026-11-27T12:10:00.000000Z",
            "channel": "",
            "session": sid,
            "cuid": cuid,
            "reason": "damaged in transit",
            "detail": "A x1",
        },
        {
            "event": "cancelled",
            "at": "2026-11-27T12:20:00.000000Z",
            "channel": "",
            "session": other["session"],
            "cuid": other["cuid"],
            "reason": "changed mind",
        },
    ]


def test_a_partially_cancelled_order_shows_its_live_total(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    placer = place(api, site, "O1", ("A", 3, "0.10"), ("B", 1, "15"))
    cancel(api, placer, "O1", refCode="A", qty="2")
    order = api.order("mysite", "O1")
    assert (order["state"], order["total"], order["liveTotal"]) == (
        "partially-cancelled",
        "15.30",
        "15.10",
    )
    assert [(line["quantity"], line["liveQuantity"]) for line in order["lines"]] == [
        (3, 1),
        (1, 1),
    ]


def test_an_offline_order_is_found_by_source_and_channel(api: Api) -> None:
    site = api.create_site("mysite")
    api.offline(site, offline_body("R1", ("A", 1, "1")), channel="tv")
    found = api.order("mysite", "R1", source="offline", channel="tv")
    assert (found["source"], found["channel"], found["orderNo"]) == ("offline", "tv", "R1")
    assert api.order("mysite", "R1", source="offline")["channel"] == "tv"
    for params, message in [
        ({"source": "offline", "channel": "store"}, "no offline order 'R1' in site 'mysite'"),
        ({}, "no online order 'R1' in site 'mysite'"),
    ]:
        response = api.client.get("/api/v1/sites/mysite/orders/R1", params=params, headers=AUTH)
        assert (response.status_code, response.json()) == (404, fail("OrderNotFound", message))
    bad = api.client.get("/api/v1/sites/mysite/orders/R1?source=shop", headers=AUTH)
    assert (bad.status_code, bad.json()) == (
        400,
        fail("MissingOrMalformedParameter", "source must be online or offline"),
    )


def test_an_order_number_with_a_slash_is_found(api: Api) -> None:
    site = api.create_site("mysite")
    place(api, site, "2026/11/A-1", ("A", 1, "1"))
    assert api.order("mysite", "2026/11/A-1")["orderNo"] == "2026/11/A-1"


# -- the order list ------------------------------------------------------------------------


def walk(api: Api, **params: Any) -> tuple[list[str], int]:
    """Every order number, page by page; and how many pages that took."""
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = api.admin_get("/api/v1/sites/mysite/orders", **query)
        pages += 1
        seen += [order["orderNo"] for order in page["orders"]]
        assert set(page) <= {"status", "orders", "next"}
        cursor = page.get("next")
        if cursor is None:
            return seen, pages
        assert isinstance(cursor, str)
        assert pages < 50


@pytest.mark.parametrize(("count", "limit", "pages"), [(7, 3, 3), (6, 3, 2), (2, 5, 1), (0, 3, 1)])
def test_the_order_list_pages_through_every_order_once(
    api: Api, count: int, limit: int, pages: int
) -> None:
    site = api.create_site("mysite")
    expected = [f"O{n}" for n in range(count)]
    for order_no in expected:
        place(api, site, order_no, ("A", 1, "1"))
    assert walk(api, limit=limit) == (expected, pages)


def test_the_order_list_shows_each_order_briefly(api: Api) -> None:
    site = api.create_site("mysite")
    place(api, site, "O1", ("A", 2, "1.25"))
    api.offline(site, offline_body("R1", ("B", 1, "3")), channel="tv")
    assert api.admin_get("/api/v1/sites/mysite/orders")["orders"] == [
        {
            "orderNo": "O1",
            "source": "online",
            "channel": "web",
            "state": "placed",
            "total": "2.50",
            "currency": "GBP",
            "orderDate": "2026-11-27T12:00:00.000000Z",
            "updatedAt": "2026-11-27T12:00:00.000000Z",
        },
        {
            "orderNo": "R1",
            "source": "offline",
            "channel": "tv",
            "state": "placed",
            "total": "3.00",
            "currency": "GBP",
            "orderDate": "2026-11-27T12:00:00.000000Z",
            "updatedAt": "2026-11-27T12:00:00.000000Z",
        },
    ]


def test_the_order_list_filters_by_state_and_day(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, cancelAuth="open")
    sessions = {}
    for day in range(3):
        for n in range(3):
            order_no = f"D{day}-{n}"
            sessions[order_no] = place(api, site, order_no, ("A", 2, "1"), ("B", 1, "1"))
        advance(api, days=1)
    cancel(api, sessions["D0-1"], "D0-1")
    cancel(api, sessions["D2-2"], "D2-2")
    cancel(api, sessions["D1-0"], "D1-0", refCode="A", qty="1")
    assert walk(api, state="cancelled", limit=1) == (["D0-1", "D2-2"], 2)
    assert walk(api, state="partially-cancelled") == (["D1-0"], 1)
    placed = ["D0-0", "D0-2", "D1-1", "D1-2", "D2-0", "D2-1"]
    assert walk(api, state="placed", limit=4) == (placed, 2)
    assert walk(api, **{"from": "2026-11-28", "to": "2026-11-28"}) == (
        ["D1-0", "D1-1", "D1-2"],
        1,
    )
    assert walk(api, **{"from": "2026-11-28"}, limit=2)[0] == [
        "D1-0",
        "D1-1",
        "D1-2",
        "D2-0",
        "D2-1",
        "D2-2",
    ]
    assert walk(api, to="2026-11-27")[0] == ["D0-0", "D0-1", "D0-2"]
    assert walk(api, state="placed", **{"from": "2026-11-29"})[0] == ["D2-0", "D2-1"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "state=open",
            "state must be one of placed, partially-cancelled, cancelled",
        ),
        ("from=27-11-2026", "from must be a date YYYY-MM-DD; got '27-11-2026'"),
        ("to=tomorrow", "to must be a date YYYY-MM-DD; got 'tomorrow'"),
        ("cursor=abc", "cursor must be a value from next"),
        ("cursor=-1", "cursor must be a value from next"),
        ("limit=0", "limit must be a whole number from 1 to 1000"),
        ("limit=1001", "limit must be a whole number from 1 to 1000"),
        ("limit=ten", "limit must be a whole number from 1 to 1000"),
    ],
)
def test_the_order_list_refuses_bad_parameters(api: Api, query: str, message: str) -> None:
    api.create_site("mysite")
    response = api.client.get(f"/api/v1/sites/mysite/orders?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail("MissingOrMalformedParameter", message)


# -- top sellers ---------------------------------------------------------------------------


def test_top_sellers_rank_by_units_or_revenue_with_ties_by_refcode(api: Api) -> None:
    site = api.create_site("mysite")
    place(api, site, "O1", ("C", 3, "0.50"), ("A", 3, "1.00"), ("B", 1, "10.00"))
    place(api, site, "O2", ("B", 2, "10.00"), ("D", 1, "3.00"))
    assert api.top_sellers("mysite") == [("A", 3), ("B", 3), ("C", 3), ("D", 1)]
    assert api.top_sellers("mysite", by="units", limit=2) == [("A", 3), ("B", 3)]
    assert api.top_sellers("mysite", by="revenue") == [
        ("B", "30.00"),
        ("A", "3.00"),
        ("D", "3.00"),
        ("C", "1.50"),
    ]


def test_top_sellers_count_live_quantities_only(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    first = place(api, site, "O1", ("A", 3, "1.00"), ("B", 1, "10.00"))
    second = place(api, site, "O2", ("B", 2, "10.00"))
    cancel(api, first, "O1", refCode="A", qty="2")
    cancel(api, second, "O2")
    assert api.top_sellers("mysite") == [("A", 1), ("B", 1)]
    assert api.top_sellers("mysite", by="revenue") == [("B", "10.00"), ("A", "1.00")]
    cancel(api, first, "O1")
    assert api.top_sellers("mysite") == []
    assert api.top_sellers("mysite", by="revenue") == []
    api.assert_consistent()


def test_top_sellers_cover_the_last_days_given(api: Api) -> None:
    site = api.create_site("mysite")
    place(api, site, "O1", ("OLD", 5, "1"))
    advance(api, days=5)
    place(api, site, "O2", ("NEW", 1, "1"))
    assert api.top_sellers("mysite", days=1) == [("NEW", 1)]
    assert api.top_sellers("mysite", days=5) == [("NEW", 1)]
    assert api.top_sellers("mysite", days=6) == [("OLD", 5), ("NEW", 1)]
    assert api.top_sellers("mysite") == [("OLD", 5), ("NEW", 1)]
    advance(api, days=25)
    assert api.top_sellers("mysite") == [("NEW", 1)]


def test_top_sellers_leave_out_what_the_cuid_or_user_bought(api: Api) -> None:
    site = api.create_site("mysite")
    first = place(api, site, "O1", ("A", 5, "1"), ("B", 4, "1"))
    place(api, site, "O2", ("C", 3, "1"), ("B", 1, "1"), user={"id": "u2"})
    place(api, site, "O3", ("D", 2, "1"))
    everything = [("A", 5), ("B", 5), ("C", 3), ("D", 2)]
    assert api.top_sellers("mysite") == everything
    assert api.top_sellers("mysite", cuid=first["cuid"]) == [("C", 3), ("D", 2)]
    assert api.top_sellers("mysite", userId="u2") == [("A", 5), ("D", 2)]
    assert api.top_sellers("mysite", cuid=first["cuid"], userId="u2") == [("D", 2)]
    assert api.top_sellers("mysite", cuid="unknown-cuid") == everything


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("by=orders", "by must be units or revenue"),
        ("days=0", "days must be a whole number from 1 to 3650"),
        ("days=3651", "days must be a whole number from 1 to 3650"),
        ("days=-1", "days must be a whole number from 1 to 3650"),
        ("limit=0", "limit must be a whole number from 1 to 1000"),
    ],
)
def test_top_sellers_refuse_bad_parameters(api: Api, query: str, message: str) -> None:
    api.create_site("mysite")
    response = api.client.get(f"/api/v1/sites/mysite/recs/top-sellers?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail("MissingOrMalformedParameter", message)


# -- bought together -----------------------------------------------------------------------


def test_bought_together_with_one_and_with_two_products(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    place(api, site, "O1", ("A", 1, "1"), ("B", 1, "1"), ("C", 1, "1"))
    second = place(api, site, "O2", ("A", 2, "1"), ("B", 5, "1"))
    place(api, site, "O3", ("B", 1, "1"), ("D", 1, "1"))
    place(api, site, "O4", ("A", 1, "1"), ("D", 1, "1"))
    assert api.bought_together("mysite", "A") == [("B", 2), ("C", 1), ("D", 1)]
    assert api.bought_together("mysite", "A", limit=1) == [("B", 2)]
    assert api.bought_together("mysite", "D") == [("A", 1), ("B", 1)]
    assert api.bought_together("mysite", "A", "B") == [("C", 2), ("D", 2)]
    assert api.bought_together("mysite", "C", "D") == [("A", 2), ("B", 2)]
    assert api.bought_together("mysite", "NOPE") == []
    cancel(api, second, "O2", refCode="B")
    assert api.bought_together("mysite", "A") == [("B", 1), ("C", 1), ("D", 1)]
    api.assert_consistent()


def test_bought_together_leaves_out_what_the_cuid_or_user_bought(api: Api) -> None:
    site = api.create_site("mysite")
    place(api, site, "O1", ("A", 1, "1"), ("B", 1, "1"), ("C", 1, "1"))
    place(api, site, "O2", ("A", 1, "1"), ("B", 1, "1"))
    buyer = place(api, site, "O3", ("B", 1, "1"), ("X", 1, "1"), user={"id": "u3"})
    assert api.bought_together("mysite", "A", cuid=buyer["cuid"]) == [("C", 1)]
    assert api.bought_together("mysite", "A", userId="u3") == [("C", 1)]
    assert api.bought_together("mysite", "A", userId="someone") == [("B", 2), ("C", 1)]


def test_bought_together_needs_a_refcode(api: Api) -> None:
    api.create_site("mysite")
    response = api.client.get("/api/v1/sites/mysite/recs/bought-together", headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail("MissingOrMalformedItems", "give at least one refCode")


# -- history -------------------------------------------------------------------------------


def test_history_by_cuid_and_by_user_id_holds_live_quantities(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    first = place(api, site, "O1", ("A", 3, "1"), ("B", 1, "2"))
    advance(api, hours=1)
    place(
        api,
        site,
        "O2",
        ("B", 2, "2"),
        ("C", 1, "5"),
        session=first["session"],
        cuid=first["cuid"],
    )
    advance(api, hours=1)
    third = place(api, site, "O3", ("A", 1, "1"), user={"id": "u9"})
    advance(api, hours=1)
    api.offline(site, offline_body("R1", ("D", 4, "1"), user="u9"))
    t0, t1, t2, t3 = (f"2026-11-27T{h}:00:00.000000Z" for h in (12, 13, 14, 15))
    assert history(api, cuid=first["cuid"]) == [("B", 3, t1), ("C", 1, t1), ("A", 3, t0)]
    assert history(api, userId="u9") == [("D", 4, t3), ("A", 1, t2)]
    assert history(api, cuid=third["cuid"]) == [("A", 1, t2)]
    assert history(api, cuid="never-seen") == []
    cancel(api, first, "O1", refCode="A", qty="1")
    cancel(api, first, "O2")
    assert history(api, cuid=first["cuid"]) == [("A", 2, t0), ("B", 1, t0)]
    cancel(api, first, "O1", refCode="B")
    assert history(api, cuid=first["cuid"]) == [("A", 2, t0)]


def test_history_needs_a_cuid_or_user_id(api: Api) -> None:
    api.create_site("mysite")
    response = api.client.get("/api/v1/sites/mysite/history", headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail("MissingOrMalformedCuid", "give cuid or userId")


# -- daily reports and exact money ---------------------------------------------------------


def row(day: str, orders: int, units: int, revenue: str, cancelled: int, lost: str) -> dict:
    return {
        "date": day,
        "orders": orders,
        "units": units,
        "revenue": revenue,
        "cancelledOrders": cancelled,
        "cancelledRevenue": lost,
    }


def test_daily_report_after_whole_and_partial_cancels(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, cancelAuth="open")
    first = place(api, site, "O1", ("A", 3, "0.10"), ("B", 1, "0.20"))
    second = place(api, site, "O2", ("C", 2, "1.05"))
    place(api, site, "O3", ("A", 1, "0.10"))
    assert report(api, "2026-11-27", "2026-11-27") == [row("2026-11-27", 3, 7, "2.70", 0, "0.00")]
    cancel(api, first, "O1", refCode="A", qty="1")
    assert report(api, "2026-11-27", "2026-11-27") == [row("2026-11-27", 3, 6, "2.60", 0, "0.10")]
    cancel(api, second, "O2")
    assert report(api, "2026-11-27", "2026-11-27") == [row("2026-11-27", 2, 4, "0.50", 1, "2.20")]
    advance(api, days=1)
    fourth = place(api, site, "O4", ("A", 3, "0.10"))
    assert report(api, "2026-11-26", "2026-11-29") == [
        row("2026-11-26", 0, 0, "0.00", 0, "0.00"),
        row("2026-11-27", 2, 4, "0.50", 1, "2.20"),
        row("2026-11-28", 1, 3, "0.30", 0, "0.00"),
        row("2026-11-29", 0, 0, "0.00", 0, "0.00"),
    ]
    # A cancel counts on the order's day, whenever it arrives.
    advance(api, days=1)
    cancel(api, fourth, "O4", refCode="A", qty="3")
    cancel(api, first, "O1")
    assert report(api, "2026-11-27", "2026-11-29") == [
        row("2026-11-27", 1, 1, "0.10", 2, "2.60"),
        row("2026-11-28", 0, 0, "0.00", 1, "0.30"),
        row("2026-11-29", 0, 0, "0.00", 0, "0.00"),
    ]
    api.assert_consistent()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "from must be a date YYYY-MM-DD; got ''"),
        ("from=2026-11-27", "to must be a date YYYY-MM-DD; got ''"),
        ("from=2026-11-27&to=2026-13-01", "to must be a date YYYY-MM-DD; got '2026-13-01'"),
        (
            "from=2026-11-27&to=2026-11-26",
            "to must be on or after from, and from..to at most 366 days",
        ),
        (
            "from=2026-01-01&to=2027-01-02",
            "to must be on or after from, and from..to at most 366 days",
        ),
    ],
)
def test_daily_report_refuses_bad_ranges(api: Api, query: str, message: str) -> None:
    api.create_site("mysite")
    response = api.client.get(f"/api/v1/sites/mysite/reports/daily?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json() == fail("MissingOrMalformedParameter", message)


def test_daily_report_covers_up_to_366_days(api: Api) -> None:
    api.create_site("mysite")
    days = report(api, "2028-01-01", "2028-12-31")
    assert (len(days), days[0]["date"], days[-1]["date"]) == (366, "2028-01-01", "2028-12-31")


def test_money_stays_exact_over_many_small_prices(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    for n in range(10):
        # JSON numbers, not strings: 0.1 must not become a binary float on the way.
        order = {
            "orderNo": f"T{n}",
            "items": [{"refCode": "A", "qty": 1, "price": 0.1}],
            "currency": "GBP",
            "subtotal": 0.1,
            "shipping": 0,
            "total": 0.1,
        }
        assert api.place(site, order).status_code == 200
    place(api, site, "B1", ("B", 3, "0.333333"), ("C", 7, "0.07"))
    cents = place(api, site, "C1", *[(f"P{n:02d}", 1, f"0.{n:02d}") for n in range(1, 41)])
    assert api.top_sellers("mysite", by="revenue", limit=3) == [
        ("A", "1.00"),
        ("B", "0.999999"),
        ("C", "0.49"),
    ]
    # 0.01 + 0.02 + ... + 0.40 = 8.20
    assert report(api, "2026-11-27", "2026-11-27") == [
        row("2026-11-27", 12, 60, "10.689999", 0, "0.00")
    ]
    order = api.order("mysite", "B1")
    assert (order["total"], [line["price"] for line in order["lines"]]) == (
        "1.489999",
        ["0.333333", "0.07"],
    )
    cancel(api, cents, "C1", refCode="P03")
    cancel(api, cents, "C1", refCode="P17")
    assert report(api, "2026-11-27", "2026-11-27") == [
        row("2026-11-27", 12, 58, "10.489999", 0, "0.20")
    ]
    cancel(api, cents, "C1")
    assert report(api, "2026-11-27", "2026-11-27") == [
        row("2026-11-27", 11, 20, "2.489999", 1, "8.20")
    ]
    api.assert_consistent()
