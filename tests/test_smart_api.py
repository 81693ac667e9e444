"""The smart API (API.md 6): offline orders placed and cancelled per (site, channel)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest

from .support import AUTH, VENDOR_OFFLINE, Api

OFFLINE = "/smart-api/orders/offline"
PREFIXES = ["", "/tracker"]
UNAUTHORISED = {
    "status": "fail",
    "errors": [
        {
            "code": "InvalidSiteToken",
            "message": "siteToken is not valid for this site and channel (or the site is not known)",
        }
    ],
}


def advance(api: Api, **delta: float) -> None:
    """Move the server's clock (the conftest ``Clock`` behind ``api.clock``)."""
    api.clock.advance(**delta)  # type: ignore[attr-defined]


def offline_body(
    ref: str, *lines: tuple[str, int, str], user: Any = None, **order: Any
) -> dict[str, Any]:
    """An offline order from (refCode, qty, price) lines, with an exact total."""
    total = sum((Decimal(price) * qty for _, qty, price in lines), Decimal(0))
    body: dict[str, Any] = {
        "order": {
            "refCode": ref,
            "currency": "GBP",
            "total": str(total),
            "items": [{"refCode": r, "qty": q, "price": p} for r, q, p in lines],
            **order,
        }
    }
    if user is not None:
        body["user"] = user
    return body


def fail(code: str, message: str) -> dict[str, Any]:
    return {"status": "fail", "errors": [{"code": code, "message": message}]}


def placed(ref: str, state: str = "placed") -> dict[str, Any]:
    return {"status": "OK", "order": {"refCode": ref, "state": state}}


def headers(site: dict[str, Any], channel: str = "store", **extra: str) -> dict[str, str]:
    return {
        "site": site["name"],
        "siteToken": site["siteTokens"][channel],
        "channel": channel,
        "Content-Type": "application/json",
        **extra,
    }


def delete_with_body(api: Api, site: dict[str, Any], order_no: str, body: Any, **extra: str) -> Any:
    return api.client.request(
        "DELETE",
        f"{OFFLINE}/{order_no}",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers=headers(site, **extra),
    )


def order_count(api: Api, site: str = "mysite") -> int:
    return len(api.admin_get(f"/api/v1/sites/{site}/orders")["orders"])


def history(api: Api, user_id: str, site: str = "mysite") -> list[tuple[str, int]]:
    rows = api.admin_get(f"/api/v1/sites/{site}/history", userId=user_id)["history"]
    return [(row["refCode"], row["quantity"]) for row in rows]


def offline_order(api: Api, ref: str, channel: str = "store") -> dict[str, Any]:
    path = f"/api/v1/sites/mysite/orders/{quote(ref, safe='')}"
    order: dict[str, Any] = api.admin_get(path, source="offline", channel=channel)["order"]
    return order


def lines_of(order: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(line["refCode"], line["quantity"], line["liveQuantity"]) for line in order["lines"]]


def day_report(api: Api, day: str = "2026-11-27", site: str = "mysite") -> dict[str, Any]:
    days = api.admin_get(f"/api/v1/sites/{site}/reports/daily", **{"from": day, "to": day})["days"]
    assert len(days) == 1
    report: dict[str, Any] = days[0]
    return report


# -- paths, headers, tokens ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_offline_order_is_placed_and_cancelled_under_both_path_prefixes(
    api: Api, prefix: str
) -> None:
    site = api.create_site("mysite", cancellations=True)
    created = api.client.post(
        f"{prefix}{OFFLINE}", json=offline_body("R1", ("A", 1, "5.00")), headers=headers(site)
    )
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json; charset=utf-8"
    assert created.json() == placed("R1")
    deleted = api.delete_offline(site, "R1", prefix=prefix)
    assert deleted.status_code == 200
    assert deleted.json() == placed("R1", "cancelled")
    assert offline_order(api, "R1")["state"] == "cancelled"


def test_header_names_are_matched_in_any_case(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    shouted = {
        "SITE": "mysite",
        "SITETOKEN": site["siteTokens"]["store"],
        "Channel": "store",
        "content-TYPE": "application/json",
    }
    created = api.client.post(OFFLINE, json=offline_body("R1", ("A", 1, "1")), headers=shouted)
    assert created.status_code == 201
    assert created.json() == placed("R1")
    deleted = api.client.delete(f"{OFFLINE}/R1", headers=shouted)
    assert deleted.status_code == 200
    assert deleted.json() == placed("R1", "cancelled")


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("site", "SiteNotRecognized"),
        ("siteToken", "InvalidSiteToken"),
        ("channel", "MissingOrMalformedChannel"),
    ],
)
@pytest.mark.parametrize("absent", ["missing", "empty"])
def test_a_missing_header_is_a_400_naming_it(
    api: Api, method: str, header: str, code: str, absent: str
) -> None:
    site = api.create_site("mysite", cancellations=True)
    sent = headers(site)
    if absent == "missing":
        del sent[header]
    else:
        sent[header] = ""
    if method == "POST":
        response = api.client.post(OFFLINE, json=offline_body("R1", ("A", 1, "1")), headers=sent)
    else:
        response = api.client.delete(f"{OFFLINE}/R1", headers=sent)
    assert response.status_code == 400
    assert response.json() == fail(code, f"the {header} header is required")
    assert order_count(api) == 0


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_unknown_site_and_wrong_token_get_the_same_401(api: Api, method: str) -> None:
    site = api.create_site("mysite", cancellations=True)
    other = api.create_site("other", cancellations=True)
    attempts = {
        "unknown site": {**headers(site), "site": "nosuchsite"},
        "wrong token": {**headers(site), "siteToken": "x" * 43},
        "token of another channel": {**headers(site), "siteToken": site["siteTokens"]["tv"]},
        "token of another site": {**headers(site), "siteToken": other["siteTokens"]["store"]},
        "clientToken on its online channel": {
            **headers(site),
            "channel": "web",
            "siteToken": site["clientTokens"]["web"],
        },
        "channel the site does not have": {**headers(site), "channel": "kiosk"},
    }
    answers = {}
    for name, sent in attempts.items():
        if method == "POST":
            response = api.client.post(
                OFFLINE, json=offline_body("R1", ("A", 1, "1")), headers=sent
            )
        else:
            response = api.client.delete(f"{OFFLINE}/R1", headers=sent)
        answers[name] = (response.status_code, response.json())
    assert answers == {name: (401, UNAUTHORISED) for name in attempts}
    assert order_count(api) == 0
    assert api.admin_get("/api/v1/sites/mysite/held")["held"] == []


def test_a_malformed_channel_header_is_a_400(api: Api) -> None:
    site = api.create_site("mysite")
    response = api.client.post(
        OFFLINE, json=offline_body("R1", ("A", 1, "1")), headers=headers(site, channel="store")
    )
    assert response.status_code == 201
    bad = {**headers(site), "channel": "Store Front"}
    refused = api.client.post(OFFLINE, json=offline_body("R2", ("A", 1, "1")), headers=bad)
    assert refused.status_code == 400
    assert refused.json() == fail(
        "MissingOrMalformedChannel", "channel must be 1-32 of a-z 0-9 _ -; got 'Store Front'"
    )


def test_each_offline_channel_has_its_own_token(api: Api) -> None:
    site = api.create_site("mysite")
    for channel in ("store", "mobileapp", "tv", "callcentre"):
        response = api.offline(site, offline_body("R1", ("A", 1, "1")), channel=channel)
        assert (channel, response.status_code) == (channel, 201)
    orders = api.admin_get("/api/v1/sites/mysite/orders")["orders"]
    assert sorted((o["orderNo"], o["channel"]) for o in orders) == [
        ("R1", "callcentre"),
        ("R1", "mobileapp"),
        ("R1", "store"),
        ("R1", "tv"),
    ]


# -- content type and body validation ------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "text/json"]
)
def test_a_post_body_that_is_not_declared_json_is_415(api: Api, content_type: str | None) -> None:
    site = api.create_site("mysite")
    sent = headers(site)
    del sent["Content-Type"]
    if content_type is not None:
        sent["Content-Type"] = content_type
    body = json.dumps(offline_body("R1", ("A", 1, "1"))).encode()
    response = api.client.post(OFFLINE, content=body, headers=sent)
    assert response.status_code == 415
    assert response.json() == fail(
        "UnsupportedMediaType", "a body must be sent as application/json"
    )
    assert order_count(api) == 0


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json"]
)
def test_json_content_type_is_accepted_with_parameters_and_in_any_case(
    api: Api, content_type: str
) -> None:
    site = api.create_site("mysite")
    body = json.dumps(offline_body("R1", ("A", 1, "1"))).encode()
    response = api.client.post(
        OFFLINE, content=body, headers={**headers(site), "Content-Type": content_type}
    )
    assert response.status_code == 201
    assert response.json() == placed("R1")


def test_a_delete_body_that_is_not_declared_json_is_415(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.offline(site, offline_body("R1", ("A", 2, "1")))
    response = delete_with_body(
        api, site, "R1", {"items": [{"refCode": "A", "qty": 1}]}, **{"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json() == fail(
        "UnsupportedMediaType", "a body must be sent as application/json"
    )
    assert lines_of(offline_order(api, "R1")) == [("A", 2, 2)]


def test_a_delete_without_body_needs_no_content_type(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.offline(site, offline_body("R1", ("A", 1, "1")))
    sent = headers(site)
    del sent["Content-Type"]
    response = api.client.delete(f"{OFFLINE}/R1", headers=sent)
    assert response.status_code == 200
    assert response.json() == placed("R1", "cancelled")


def test_a_post_without_body_is_400(api: Api) -> None:
    site = api.create_site("mysite")
    response = api.client.post(OFFLINE, headers=headers(site))
    assert response.status_code == 400
    assert response.json() == fail(
        "MalformedJson", "the body is required: a JSON object with an order"
    )


GOOD = offline_body("R1", ("A", 2, "1.50"), ("B", 1, "3"))
ACCEPTED = "ISO 8601 such as 2017-04-23T14:25:00Z, or 2017-04-23T14:25:00 GMT"
MONEY = "a number or numeric string >= 0 and below 10^12, at most 6 decimal places"


def _with(order: dict[str, Any] | None = None, drop: str = "", **top: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(GOOD))
    body["order"].update(order or {})
    if drop:
        del body["order"][drop]
    body.update(top)
    return body


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            [GOOD],
            "MalformedJson",
            "the body must be a JSON object with an order",
        ),
        (
            {"lang": "en-gb"},
            "MissingOrMalformedOrderNo",
            "order must be an object with a refCode",
        ),
        (
            _with(drop="refCode"),
            "MissingOrMalformedOrderNo",
            "order.refCode must be a string of 1-128 printable characters; got nothing",
        ),
        (
            _with({"refCode": ""}),
            "MissingOrMalformedOrderNo",
            "order.refCode must be a string of 1-128 printable characters; got ''",
        ),
        (
            _with({"refCode": "R" * 129}),
            "MissingOrMalformedOrderNo",
            f"order.refCode must be a string of 1-128 printable characters; got '{'R' * 36}...",
        ),
        (
            _with(drop="items"),
            "MissingOrMalformedItems",
            "order.items must be a list of 1-1000 lines; got nothing",
        ),
        (
            _with({"items": []}),
            "MissingOrMalformedItems",
            "order.items must be a list of 1-1000 lines; got []",
        ),
        (
            _with({"items": [{"refCode": "A", "qty": 0, "price": "1"}]}),
            "MissingOrMalformedItems",
            "order.items[0].qty must be a whole number from 1 to 1,000,000; got 0",
        ),
        (
            _with({"items": [{"refCode": "A", "qty": 1}]}),
            "MissingOrMalformedItems",
            f"order.items[0].price must be {MONEY}; got None",
        ),
        (
            _with({"items": [{"qty": 1, "price": "1"}]}),
            "MissingOrMalformedItems",
            "order.items[0].refCode must be a string of 1-128 printable characters; got nothing",
        ),
        (
            _with({"items": [{"refCode": "A", "qty": 1, "price": "1", "attributes": ["x"]}]}),
            "MissingOrMalformedItems",
            "order.items[0].attributes must be an object of strings",
        ),
        (
            _with(drop="currency"),
            "MissingOrMalformedCurrency",
            "order.currency must be an ISO 4217 code such as GBP; got nothing",
        ),
        (
            _with({"currency": "POUNDS"}),
            "MissingOrMalformedCurrency",
            "order.currency must be an ISO 4217 code such as GBP; got 'POUNDS'",
        ),
        (
            _with(drop="total"),
            "MissingOrMalformedTotal",
            f"order.total must be {MONEY}; got None",
        ),
        (
            _with({"total": "-1"}),
            "MissingOrMalformedTotal",
            f"order.total must be {MONEY}; got '-1'",
        ),
        (
            _with({"subTotal": "lots"}),
            "MissingOrMalformedSubtotal",
            f"order.subtotal must be {MONEY}; got 'lots'",
        ),
        (
            _with({"shipping": True}),
            "MissingOrMalformedShipping",
            f"order.shipping must be {MONEY}; got True",
        ),
        (
            _with(user={}),
            "MissingOrMalformedUser",
            "user, when given, must be an object with id, email or segments",
        ),
        (
            _with(user={"info": {"gender": "male"}}),
            "MissingOrMalformedUser",
            "user, when given, must be an object with id, email or segments",
        ),
        (
            _with(user="abcd1234efgh"),
            "MissingOrMalformedUser",
            "user, when given, must be an object with id, email or segments",
        ),
        (
            _with(user={"email": ["ann@example.com"]}),
            "MissingOrMalformedUser",
            "user.email must be a string of 1-256 printable characters; got ['ann@example.com']",
        ),
        (
            _with(user={"id": "u\n1"}),
            "MissingOrMalformedUser",
            "user.id must be a string of 1-256 printable characters; got 'u\\n1'",
        ),
        (
            _with(user={"id": "u1", "info": ["gender"]}),
            "MissingOrMalformedUser",
            "user.info must be an object",
        ),
        (
            _with({"orderDate": "yesterday"}),
            "MissingOrMalformedOrderDate",
            f"order.orderDate must be {ACCEPTED}; got 'yesterday'",
        ),
        (
            _with({"orderDate": "23/04/2017 14:25"}),
            "MissingOrMalformedOrderDate",
            f"order.orderDate must be {ACCEPTED}; got '23/04/2017 14:25'",
        ),
        (
            _with({"orderDate": 1492957500}),
            "MissingOrMalformedOrderDate",
            f"order.orderDate must be {ACCEPTED}; got 1492957500",
        ),
        (
            _with({"orderDate": "2017-04-23T14:25:00 CET"}),
            "MissingOrMalformedOrderDate",
            f"order.orderDate must be {ACCEPTED}; got '2017-04-23T14:25:00 CET'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_an_invalid_offline_body_is_400_naming_the_field(
    api: Api, body: Any, code: str, message: str
) -> None:
    site = api.create_site("mysite")
    response = api.offline(site, body)
    assert response.status_code == 400
    assert response.json() == fail(code, message)
    assert order_count(api) == 0


def test_malformed_json_is_400(api: Api) -> None:
    site = api.create_site("mysite")
    response = api.client.post(OFFLINE, content=b'{"order": ', headers=headers(site))
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["code"] == "MalformedJson"
    assert body["errors"][0]["message"].startswith("the body is not valid JSON: ")


def test_the_vendor_example_is_stored_with_every_field(api: Api) -> None:
    site = api.create_site("mysite")
    response = api.offline(site, VENDOR_OFFLINE)
    assert response.status_code == 201
    order = offline_order(api, "orderRef123")
    del order["history"]
    assert order == {
        "orderNo": "orderRef123",
        "source": "offline",
        "channel": "store",
        "state": "placed",
        "orderDate": "2017-04-23T14:25:00.000000Z",
        "currency": "GBP",
        "subtotal": "100.00",
        "shipping": "0.00",
        "total": "100.00",
        "liveTotal": "90.00",
        "cuid": "",
        "userId": "abcd1234efgh",
        "customerId": "SomeCustomerId",
        "session": "",
        "countsInCrowd": False,
        "lines": [
            {"refCode": "ref1", "quantity": 1, "liveQuantity": 1, "price": "50.00"},
            {"refCode": "ref2", "quantity": 2, "liveQuantity": 2, "price": "20.00"},
        ],
    }


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2017-04-23T14:25:00 GMT", "2017-04-23T14:25:00.000000Z"),
        ("2017-04-23T14:25:00GMT", "2017-04-23T14:25:00.000000Z"),
        ("2017-04-23T14:25:00 UTC", "2017-04-23T14:25:00.000000Z"),
        ("2017-04-23T14:25 GMT", "2017-04-23T14:25:00.000000Z"),
        ("2017-04-23T14:25:00Z", "2017-04-23T14:25:00.000000Z"),
        ("2017-04-23T14:25:00+02:00", "2017-04-23T12:25:00.000000Z"),
        ("2017-04-23T14:25:00.250-01:30", "2017-04-23T15:55:00.250000Z"),
        ("2017-04-23T14:25:00", "2017-04-23T14:25:00.000000Z"),
        ("2017-04-23", "2017-04-23T00:00:00.000000Z"),
    ],
)
def test_order_date_is_accepted_in_iso_8601_and_the_vendor_form(
    api: Api, sent: str, stored: str
) -> None:
    site = api.create_site("mysite")
    response = api.offline(site, offline_body("R1", ("A", 1, "1"), orderDate=sent))
    assert response.status_code == 201
    assert offline_order(api, "R1")["orderDate"] == stored


def test_order_date_defaults_to_the_time_of_receipt(api: Api) -> None:
    site = api.create_site("mysite")
    advance(api, hours=3, minutes=7)
    api.offline(site, offline_body("R1", ("A", 1, "1")))
    assert offline_order(api, "R1")["orderDate"] == "2026-11-27T15:07:00.000000Z"


def test_an_offline_order_is_reported_on_its_order_date_in_utc(api: Api) -> None:
    site = api.create_site("mysite")
    late = offline_body("R1", ("A", 2, "1.25"), orderDate="2017-04-23T23:30:00-02:00")
    assert api.offline(site, late).status_code == 201
    assert day_report(api, "2017-04-23")["orders"] == 0
    assert day_report(api, "2017-04-24") == {
        "date": "2017-04-24",
        "orders": 1,
        "units": 2,
        "revenue": "2.50",
        "cancelledOrders": 0,
        "cancelledRevenue": "0.00",
    }


@pytest.mark.parametrize("key", ["subTotal", "subtotal"])
def test_subtotal_is_accepted_as_subTotal_or_subtotal(api: Api, key: str) -> None:
    site = api.create_site("mysite")
    body = offline_body("R1", ("A", 2, "10"), shipping="4.5", **{key: "19.99"})
    body["order"]["total"] = "24.49"
    assert api.offline(site, body).status_code == 201
    order = offline_order(api, "R1")
    assert (order["subtotal"], order["shipping"], order["total"]) == ("19.99", "4.50", "24.49")


def test_missing_subtotal_and_shipping_are_computed(api: Api) -> None:
    site = api.create_site("mysite")
    response = api.offline(site, offline_body("R1", ("A", 3, "0.10"), ("B", 1, "2")))
    assert response.status_code == 201
    assert response.json() == placed("R1")
    order = offline_order(api, "R1")
    assert (order["subtotal"], order["shipping"], order["total"]) == ("2.30", "0.00", "2.30")


def test_user_with_email_only_is_the_buyer(api: Api) -> None:
    site = api.create_site("mysite")
    body = offline_body("R1", ("A", 1, "1"), user={"email": "ann@example.com"})
    assert api.offline(site, body).status_code == 201
    assert history(api, "ann@example.com") == [("A", 1)]


def test_user_with_segments_only_is_accepted_without_history(api: Api) -> None:
    site = api.create_site("mysite")
    body = offline_body("R1", ("A", 1, "1"), user={"segments": ["vip"]})
    assert api.offline(site, body).status_code == 201
    assert offline_order(api, "R1")["userId"] == ""


# -- the 6.1 table -------------------------------------------------------------------------


def test_a_new_offline_order_is_201_placed_and_in_the_buyer_history(api: Api) -> None:
    site = api.create_site("mysite")
    body = offline_body("R1", ("A", 2, "1.50"), ("B", 1, "3"), user={"id": "u1"})
    response = api.offline(site, body)
    assert response.status_code == 201
    assert response.json() == placed("R1")
    assert history(api, "u1") == [("A", 2), ("B", 1)]
    order = offline_order(api, "R1")
    assert [(e["event"], e["channel"]) for e in order["history"]] == [("placed", "store")]


@pytest.mark.parametrize("cancellations", [False, True])
def test_the_same_offline_order_again_is_200_and_changes_nothing(
    api: Api, cancellations: bool
) -> None:
    site = api.create_site("mysite", cancellations=cancellations, offlineOrdersAffectCrowd=True)
    body = offline_body("R1", ("A", 2, "1.50"), ("B", 1, "3"), user={"id": "u1"})
    assert api.offline(site, body).status_code == 201
    advance(api, minutes=5)
    again = api.offline(site, body)
    assert again.status_code == 200
    assert again.json() == placed("R1")
    assert api.top_sellers("mysite") == [("A", 2), ("B", 1)]
    assert history(api, "u1") == [("A", 2), ("B", 1)]
    assert day_report(api)["orders"] == 1
    order = offline_order(api, "R1")
    assert [e["event"] for e in order["history"]] == ["placed"]
    api.assert_consistent()


def test_a_changed_offline_order_replaces_the_first_when_cancellations_are_on(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, offlineOrdersAffectCrowd=True)
    first = offline_body("R1", ("A", 2, "1.50"), ("B", 1, "3"), user={"id": "u1"})
    assert api.offline(site, first).status_code == 201
    advance(api, minutes=5)
    second = offline_body("R1", ("A", 1, "1.50"), ("C", 4, "0.25"), user={"id": "u1"})
    response = api.offline(site, second)
    assert response.status_code == 200
    assert response.json() == placed("R1")
    assert api.top_sellers("mysite") == [("C", 4), ("A", 1)]
    assert history(api, "u1") == [("A", 1), ("C", 4)]
    assert day_report(api) == {
        "date": "2026-11-27",
        "orders": 1,
        "units": 5,
        "revenue": "2.50",
        "cancelledOrders": 0,
        "cancelledRevenue": "0.00",
    }
    order = offline_order(api, "R1")
    assert lines_of(order) == [("A", 1, 1), ("C", 4, 4)]
    assert [(e["event"], e["at"]) for e in order["history"]] == [
        ("placed", "2026-11-27T12:00:00.000000Z"),
        ("updated", "2026-11-27T12:05:00.000000Z"),
    ]
    api.assert_consistent()


def test_a_changed_offline_order_is_409_conflict_when_cancellations_are_off(api: Api) -> None:
    site = api.create_site("mysite", offlineOrdersAffectCrowd=True)
    first = offline_body("R1", ("A", 2, "1.50"), user={"id": "u1"})
    assert api.offline(site, first).status_code == 201
    changed = offline_body("R1", ("A", 3, "1.50"), user={"id": "u1"})
    response = api.offline(site, changed)
    assert response.status_code == 409
    assert response.json() == fail(
        "OrderConflict",
        "offline order 'R1' was already placed on channel 'store' with different content;"
        " updates need cancellations enabled",
    )
    assert lines_of(offline_order(api, "R1")) == [("A", 2, 2)]
    assert api.top_sellers("mysite") == [("A", 2)]
    assert history(api, "u1") == [("A", 2)]
    api.assert_consistent()


def test_the_same_refcode_on_another_channel_is_another_order(api: Api) -> None:
    site = api.create_site("mysite")
    assert api.offline(site, offline_body("R1", ("A", 1, "1"))).status_code == 201
    other = api.offline(site, offline_body("R1", ("B", 5, "1")), channel="tv")
    assert other.status_code == 201
    assert lines_of(offline_order(api, "R1", "store")) == [("A", 1, 1)]
    assert lines_of(offline_order(api, "R1", "tv")) == [("B", 5, 5)]


def test_an_offline_order_whose_cancellation_is_held_arrives_cancelled(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, offlineOrdersAffectCrowd=True)
    held = api.delete_offline(site, "R1")
    assert held.status_code == 202
    advance(api, hours=1)
    response = api.offline(site, offline_body("R1", ("A", 2, "1.50"), user={"id": "u1"}))
    assert response.status_code == 201
    assert response.json() == {
        "status": "warning",
        "errors": [
            {
                "code": "CancelledOnArrival",
                "message": "a cancellation for order 'R1' arrived first and was applied;"
                " the cancelled quantities are not counted",
            }
        ],
        "order": {"refCode": "R1", "state": "cancelled"},
    }
    assert api.top_sellers("mysite") == []
    assert history(api, "u1") == []
    assert day_report(api) == {
        "date": "2026-11-27",
        "orders": 0,
        "units": 0,
        "revenue": "0.00",
        "cancelledOrders": 1,
        "cancelledRevenue": "3.00",
    }
    order = offline_order(api, "R1")
    assert order["state"] == "cancelled"
    assert lines_of(order) == [("A", 2, 0)]
    assert [(e["event"], e["at"], e.get("detail")) for e in order["history"]] == [
        ("held", "2026-11-27T12:00:00.000000Z", "whole order"),
        ("placed", "2026-11-27T13:00:00.000000Z", None),
        ("applied", "2026-11-27T13:00:00.000000Z", "whole order"),
    ]
    assert api.admin_get("/api/v1/sites/mysite/held")["held"] == []
    api.assert_consistent()


# -- crowd statistics and the buyer's history ----------------------------------------------


def test_offline_orders_enter_the_buyer_history_but_not_the_crowd_by_default(api: Api) -> None:
    site = api.create_site("mysite")
    body = offline_body("R1", ("A", 2, "1.50"), ("B", 1, "3"), user={"id": "u1"})
    assert api.offline(site, body).status_code == 201
    assert history(api, "u1") == [("A", 2), ("B", 1)]
    assert api.top_sellers("mysite") == []
    assert api.top_sellers("mysite", by="revenue") == []
    assert api.bought_together("mysite", "A") == []
    assert offline_order(api, "R1")["countsInCrowd"] is False
    # Reports count every order; only crowd statistics leave offline orders out.
    assert day_report(api)["units"] == 3
    api.assert_consistent()


def test_offline_orders_enter_crowd_statistics_once_the_site_allows_it(api: Api) -> None:
    site = api.create_site("mysite")
    before = offline_body("R1", ("A", 2, "1.50"), ("B", 1, "3"), user={"id": "u1"})
    assert api.offline(site, before).status_code == 201
    patched = api.client.patch(
        "/api/v1/sites/mysite", json={"offlineOrdersAffectCrowd": True}, headers=AUTH
    )
    assert patched.status_code == 200
    after = offline_body("R2", ("A", 1, "1.50"), ("C", 3, "0.20"), user={"id": "u2"})
    assert api.offline(site, after).status_code == 201
    # An order counts as the setting was when it arrived.
    assert api.top_sellers("mysite") == [("C", 3), ("A", 1)]
    assert api.top_sellers("mysite", by="revenue") == [("A", "1.50"), ("C", "0.60")]
    assert api.bought_together("mysite", "A") == [("C", 1)]
    assert api.bought_together("mysite", "B") == []
    assert offline_order(api, "R2")["countsInCrowd"] is True
    assert history(api, "u1") == [("A", 2), ("B", 1)]
    assert history(api, "u2") == [("A", 1), ("C", 3)]
    api.assert_consistent()


def test_an_offline_order_without_user_enters_no_history(api: Api) -> None:
    site = api.create_site("mysite")
    assert api.offline(site, offline_body("R1", ("A", 1, "1"))).status_code == 201
    assert (
        api.offline(site, offline_body("R2", ("B", 1, "1"), user={"id": "u1"})).status_code == 201
    )
    assert offline_order(api, "R1")["userId"] == ""
    assert history(api, "u1") == [("B", 1)]


# -- DELETE (6.2) --------------------------------------------------------------------------


def test_delete_is_403_when_cancellations_are_off(api: Api) -> None:
    site = api.create_site("mysite")
    api.offline(site, offline_body("R1", ("A", 1, "1"), user={"id": "u1"}))
    for order_no in ("R1", "UNSEEN"):
        response = api.delete_offline(site, order_no)
        assert response.status_code == 403
        assert response.json() == fail(
            "CancellationsNotEnabled",
            "order cancellations are not enabled for site 'mysite'; an operator enables them"
            " with the site setting cancellations",
        )
    assert offline_order(api, "R1")["state"] == "placed"
    assert history(api, "u1") == [("A", 1)]
    assert api.admin_get("/api/v1/sites/mysite/held")["held"] == []


def test_delete_works_once_cancellations_are_switched_on_at_run_time(api: Api) -> None:
    site = api.create_site("mysite")
    api.offline(site, offline_body("R1", ("A", 1, "1")))
    assert api.delete_offline(site, "R1").status_code == 403
    api.client.patch("/api/v1/sites/mysite", json={"cancellations": True}, headers=AUTH)
    assert api.delete_offline(site, "R1").status_code == 200
    api.client.patch("/api/v1/sites/mysite", json={"cancellations": False}, headers=AUTH)
    assert api.delete_offline(site, "R1").status_code == 403


@pytest.mark.parametrize("prefix", PREFIXES)
def test_delete_cancels_a_found_order_and_is_idempotent(api: Api, prefix: str) -> None:
    site = api.create_site("mysite", cancellations=True, offlineOrdersAffectCrowd=True)
    body = offline_body("R1", ("A", 2, "1.50"), ("B", 1, "3"), user={"id": "u1"})
    api.offline(site, body)
    first = api.delete_offline(site, "R1", prefix=prefix)
    second = api.delete_offline(site, "R1", prefix=prefix)
    assert (first.status_code, first.json()) == (200, placed("R1", "cancelled"))
    assert (second.status_code, second.json()) == (200, placed("R1", "cancelled"))
    assert api.top_sellers("mysite") == []
    assert history(api, "u1") == []
    assert day_report(api) == {
        "date": "2026-11-27",
        "orders": 0,
        "units": 0,
        "revenue": "0.00",
        "cancelledOrders": 1,
        "cancelledRevenue": "6.00",
    }
    order = offline_order(api, "R1")
    assert lines_of(order) == [("A", 2, 0), ("B", 1, 0)]
    assert [(e["event"], e["channel"]) for e in order["history"]] == [
        ("placed", "store"),
        ("cancelled", "store"),
    ]
    api.assert_consistent()


def test_delete_of_an_order_created_under_another_channel_is_409_naming_it(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.offline(site, offline_body("R1", ("A", 1, "1"), user={"id": "u1"}), channel="callcentre")
    response = api.delete_offline(site, "R1", channel="tv")
    assert response.status_code == 409
    assert response.json() == fail(
        "ChannelMismatch",
        "offline order 'R1' was created on channel 'callcentre', not 'tv'; cancel it with that"
        " channel and its siteToken",
    )
    assert offline_order(api, "R1", "callcentre")["state"] == "placed"
    assert history(api, "u1") == [("A", 1)]
    assert api.admin_get("/api/v1/sites/mysite/held")["held"] == []


def test_delete_of_an_unseen_order_is_202_held_and_applied_when_it_arrives(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, offlineOrdersAffectCrowd=True)
    response = api.delete_offline(site, "R9")
    assert response.status_code == 202
    assert response.json() == {
        "status": "warning",
        "errors": [
            {
                "code": "OrderNotFound",
                "message": "order 'R9' has not been seen yet; the cancellation is held and"
                " applied if it arrives",
            }
        ],
        "order": {"refCode": "R9", "state": "cancel-pending"},
    }
    assert api.admin_get("/api/v1/sites/mysite/held")["held"] == [
        {
            "source": "offline",
            "channel": "store",
            "orderNo": "R9",
            "items": None,
            "at": "2026-11-27T12:00:00.000000Z",
            "expiresAt": "2026-12-27T12:00:00.000000Z",
            "session": "",
            "cuid": "",
            "reason": "",
        }
    ]
    retried = api.delete_offline(site, "R9")
    assert retried.status_code == 202
    assert len(api.admin_get("/api/v1/sites/mysite/held")["held"]) == 1
    # The order under another channel is another order: the held cancellation does not touch it.
    other = api.offline(site, offline_body("R9", ("A", 1, "1")), channel="tv")
    assert (other.status_code, other.json()) == (201, placed("R9"))
    arrived = api.offline(site, offline_body("R9", ("A", 2, "1")))
    assert arrived.status_code == 201
    assert arrived.json()["status"] == "warning"
    assert arrived.json()["errors"][0]["code"] == "CancelledOnArrival"
    assert arrived.json()["order"] == {"refCode": "R9", "state": "cancelled"}
    assert api.top_sellers("mysite") == [("A", 1)]
    assert api.admin_get("/api/v1/sites/mysite/held")["held"] == []
    api.assert_consistent()


@pytest.mark.parametrize(
    ("in_path", "order_no"),
    [
        ("A%2F1", "A/1"),
        ("A/1", "A/1"),
        ("A%7C1", "A|1"),
        ("A%7c1", "A|1"),
        ("A%201", "A 1"),
        ("A+1", "A+1"),
        ("%E2%82%AC5", "\u20ac5"),
        ("A%252F1", "A%2F1"),
        ("A%3F1", "A?1"),
    ],
)
def test_order_number_in_the_path_is_percent_decoded(api: Api, in_path: str, order_no: str) -> None:
    site = api.create_site("mysite", cancellations=True)
    assert api.offline(site, offline_body(order_no, ("A", 1, "1"))).status_code == 201
    response = api.delete_offline(site, in_path)
    assert response.status_code == 200
    assert response.json() == placed(order_no, "cancelled")
    # Starlette's TestClient decodes paths twice, so read the state from the list.
    orders = api.admin_get("/api/v1/sites/mysite/orders")["orders"]
    assert [(o["orderNo"], o["state"]) for o in orders] == [(order_no, "cancelled")]


def test_order_number_may_be_128_characters_and_no_more(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    longest = "N" * 127 + "%7C"  # 128 characters once decoded
    held = api.delete_offline(site, longest)
    assert held.status_code == 202
    assert held.json()["order"] == {"refCode": "N" * 127 + "|", "state": "cancel-pending"}
    too_long = api.delete_offline(site, "N" * 129)
    assert too_long.status_code == 400
    assert too_long.json() == fail(
        "MissingOrMalformedOrderNo",
        f"order_number must be a string of 1-128 printable characters; got '{'N' * 36}...",
    )
    empty = api.delete_offline(site, "")
    assert empty.status_code == 400
    assert empty.json() == fail(
        "MissingOrMalformedOrderNo",
        "order_number must be a string of 1-128 printable characters; got ''",
    )
    not_utf8 = api.delete_offline(site, "A%FF")
    assert not_utf8.status_code == 400
    assert not_utf8.json() == fail("MissingOrMalformedOrderNo", "order_number is not valid UTF-8")
    assert len(api.admin_get("/api/v1/sites/mysite/held")["held"]) == 1


# -- DELETE with items (the extension) -----------------------------------------------------


def test_delete_with_items_cancels_part_of_an_order(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, offlineOrdersAffectCrowd=True)
    api.offline(site, offline_body("R1", ("A", 3, "0.10"), ("B", 1, "2"), user={"id": "u1"}))
    response = delete_with_body(api, site, "R1", {"items": [{"refCode": "A", "qty": 1}]})
    assert response.status_code == 200
    assert response.json() == placed("R1", "partially-cancelled")
    assert lines_of(offline_order(api, "R1")) == [("A", 3, 2), ("B", 1, 1)]
    assert api.top_sellers("mysite") == [("A", 2), ("B", 1)]
    assert history(api, "u1") == [("A", 2), ("B", 1)]
    assert day_report(api) == {
        "date": "2026-11-27",
        "orders": 1,
        "units": 3,
        "revenue": "2.20",
        "cancelledOrders": 0,
        "cancelledRevenue": "0.10",
    }
    rest = delete_with_body(api, site, "R1", {"items": [{"refCode": "A"}, {"refCode": "B"}]})
    assert rest.status_code == 200
    assert rest.json() == placed("R1", "cancelled")
    assert history(api, "u1") == []
    assert day_report(api)["cancelledRevenue"] == "2.30"
    order = offline_order(api, "R1")
    assert [(e["event"], e.get("detail")) for e in order["history"]] == [
        ("placed", None),
        ("line-cancelled", "A x1"),
        ("line-cancelled", "A xall, B xall"),
    ]
    api.assert_consistent()


@pytest.mark.parametrize(
    ("items", "code", "message"),
    [
        (
            [{"refCode": "Z", "qty": 1}],
            "LineNotFound",
            "refCode 'Z' is not a line of order 'R1'",
        ),
        (
            [{"refCode": "A", "qty": 4}],
            "QuantityExceedsRemaining",
            "qty 4 for refCode 'A' is more than its live quantity 3",
        ),
        (
            [{"refCode": "A", "qty": 2}, {"refCode": "A", "qty": 2}],
            "QuantityExceedsRemaining",
            "qty 2 for refCode 'A' is more than its live quantity 1",
        ),
        (
            [{"refCode": "B", "qty": 1}, {"refCode": "Z"}],
            "LineNotFound",
            "refCode 'Z' is not a line of order 'R1'",
        ),
    ],
)
def test_delete_with_items_that_do_not_fit_is_409_and_changes_nothing(
    api: Api, items: list[dict[str, Any]], code: str, message: str
) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.offline(site, offline_body("R1", ("A", 3, "0.10"), ("B", 1, "2")))
    response = delete_with_body(api, site, "R1", {"items": items})
    assert response.status_code == 409
    assert response.json() == fail(code, message)
    assert lines_of(offline_order(api, "R1")) == [("A", 3, 3), ("B", 1, 1)]
    assert [e["event"] for e in offline_order(api, "R1")["history"]] == ["placed"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": []}, 'the body must be {"items": [{"refCode", "qty"}]}'),
        ({"lines": [{"refCode": "A"}]}, 'the body must be {"items": [{"refCode", "qty"}]}'),
        ([{"refCode": "A"}], 'the body must be {"items": [{"refCode", "qty"}]}'),
        ({"items": ["A"]}, "items[0] must be an object"),
        (
            {"items": [{"qty": 1}]},
            "items[0].refCode must be a string of 1-128 printable characters; got nothing",
        ),
        (
            {"items": [{"refCode": "A", "qty": 0}]},
            "items[0].qty must be a whole number from 1 to 1,000,000; got 0",
        ),
        (
            {"items": [{"refCode": "A", "qty": "two"}]},
            "items[0].qty must be a whole number from 1 to 1,000,000; got 'two'",
        ),
    ],
)
def test_delete_with_malformed_items_is_400(api: Api, body: Any, message: str) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.offline(site, offline_body("R1", ("A", 3, "0.10")))
    response = delete_with_body(api, site, "R1", body)
    assert response.status_code == 400
    assert response.json() == fail("MissingOrMalformedItems", message)
    assert lines_of(offline_order(api, "R1")) == [("A", 3, 3)]


def test_a_held_partial_cancellation_is_applied_when_the_order_arrives(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True, offlineOrdersAffectCrowd=True)
    held = delete_with_body(api, site, "R1", {"items": [{"refCode": "A", "qty": 1}]})
    assert held.status_code == 202
    assert held.json()["order"] == {"refCode": "R1", "state": "cancel-pending"}
    assert api.admin_get("/api/v1/sites/mysite/held")["held"][0]["items"] == [
        {"refCode": "A", "qty": 1}
    ]
    arrived = api.offline(site, offline_body("R1", ("A", 3, "0.10"), ("B", 1, "2")))
    assert arrived.status_code == 201
    assert arrived.json()["errors"][0]["code"] == "CancelledOnArrival"
    assert arrived.json()["order"] == {"refCode": "R1", "state": "partially-cancelled"}
    assert lines_of(offline_order(api, "R1")) == [("A", 3, 2), ("B", 1, 1)]
    assert api.top_sellers("mysite") == [("A", 2), ("B", 1)]
    assert day_report(api)["cancelledRevenue"] == "0.10"
    api.assert_consistent()


def test_whole_delete_after_a_partial_one_cancels_the_rest(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.offline(site, offline_body("R1", ("A", 3, "0.10"), ("B", 1, "2")))
    delete_with_body(api, site, "R1", {"items": [{"refCode": "B"}]})
    response = api.delete_offline(site, "R1")
    assert (response.status_code, response.json()) == (200, placed("R1", "cancelled"))
    assert lines_of(offline_order(api, "R1")) == [("A", 3, 0), ("B", 1, 0)]
    assert day_report(api) == {
        "date": "2026-11-27",
        "orders": 0,
        "units": 0,
        "revenue": "0.00",
        "cancelledOrders": 1,
        "cancelledRevenue": "2.30",
    }
    api.assert_consistent()


def test_user_with_a_null_id_and_an_email_is_the_email_buyer(api: Api) -> None:
    site = api.create_site("mysite")
    body = offline_body("R1", ("A", 1, "1"), user={"id": None, "email": "ann@example.com"})
    response = api.offline(site, body)
    assert (response.status_code, response.json()) == (201, placed("R1"))
    assert history(api, "ann@example.com") == [("A", 1)]
