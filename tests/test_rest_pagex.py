"""rest.pagex (API.md 5.1): transports, versions, limits, page types, lenient parsing, the
errors of order pages and their order of checks, the order table, and what a page gets back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import pytest

from .support import VENDOR_ORDER, Api, order_body
from .tracker_support import (
    DAY,
    PAGE_TRACKING_ID,
    cancel,
    codes,
    events,
    fail,
    history,
    jd,
    lines,
    order_count,
    pair,
    recs,
    report,
    statistics,
    stored_session,
)

LIMIT = 256 * 1024


def send(api: Api, transport: str, data: Any, version: str = "v1_4") -> Any:
    """rest.pagex by GET ?jd=, by POST form field jd, or by POST with a JSON body."""
    url = f"/tracker/api/{version}/rest.pagex"
    text = data if isinstance(data, str) else json.dumps(data)
    if transport == "get":
        return api.client.get(url, params={"jd": text})
    if transport == "form":
        return api.client.post(url, data={"jd": text})
    return api.client.post(url, content=text, headers={"Content-Type": "application/json"})


TRANSPORTS = ["get", "form", "json"]


# -- transports, versions, limits ------------------------------------------------------------


def test_an_order_page_is_taken_by_get_jd_post_form_and_post_json(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    url = "/tracker/api/v1_4/rest.pagex"
    ways: dict[str, Callable[[dict[str, Any]], Any]] = {
        **{way: (lambda page, way=way: send(api, way, page)) for way in TRANSPORTS},
        "form-with-charset": lambda page: api.client.post(
            url,
            content="jd=" + quote_plus(json.dumps(page)),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
        ),
        "json-with-charset": lambda page: api.client.post(
            url,
            content=json.dumps(page),
            headers={"Content-Type": "Application/JSON; charset=utf-8"},
        ),
    }
    for n, (way, post) in enumerate(ways.items()):
        with subtests.test(way=way):
            response = post(jd(site, type="order", order=order_body(way, ("P1", n + 1, "2"))))
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json; charset=utf-8"
            assert response.json()["status"] == "OK"
            assert response.json()["order"] == {"orderNo": way, "state": "placed"}
    assert api.top_sellers("mysite") == [("P1", 15)]
    api.assert_consistent()


def test_versions_v1_2_v1_3_and_v1_4_are_accepted(api: Api, subtests: pytest.Subtests) -> None:
    site = api.create_site()
    for version in ("v1_2", "v1_3", "v1_4"):
        for transport in TRANSPORTS:
            with subtests.test(version=version, transport=transport):
                response = send(api, transport, jd(site, type="home"), version)
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "OK"
    api.assert_consistent()


def test_other_versions_are_404_api_version_not_supported(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    for version in ("v1", "v1_1", "v1_5", "v2", "V1_4", "v1_4x", "latest"):
        for transport in TRANSPORTS:
            with subtests.test(version=version, transport=transport):
                page = jd(site, type="order", order=VENDOR_ORDER)
                message = fail(send(api, transport, page, version), 404, "ApiVersionNotSupported")
                assert message == (
                    f"API version {version!r} is not supported; use one of v1_2, v1_3, v1_4"
                )
    # the version is checked before the JSON is read
    fail(send(api, "get", "{not json", "v9"), 404, "ApiVersionNotSupported")
    assert order_count(api, "mysite") == 0
    api.assert_consistent()


def _padded(site: dict[str, Any], size: int, form: bool) -> bytes:
    """An order page whose body (form-encoded or JSON) is exactly ``size`` bytes."""
    data = jd(site, type="order", order=VENDOR_ORDER, currentURI="")

    def encode(page: dict[str, Any]) -> str:
        text = json.dumps(page)
        return "jd=" + quote_plus(text) if form else text

    padding = size - len(encode(data))
    data["currentURI"] = "x" * padding  # "x" is one byte in both encodings
    body = encode(data).encode()
    assert len(body) == size
    return body


def test_a_body_of_exactly_256_kib_is_taken_and_one_byte_more_is_413(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site(cancellations=True)
    url = "/tracker/api/v1_4/rest.pagex"
    for content_type in ("application/x-www-form-urlencoded", "application/json"):
        with subtests.test(content_type=content_type):
            form = content_type.endswith("urlencoded")
            headers = {"Content-Type": content_type}
            too_large = api.client.post(
                url, content=_padded(site, LIMIT + 1, form), headers=headers
            )
            assert fail(too_large, 413, "PayloadTooLarge") == "the body is larger than 256 KiB"
            taken = api.client.post(url, content=_padded(site, LIMIT, form), headers=headers)
            assert taken.status_code == 200, taken.text
            assert taken.json()["order"] == {"orderNo": "ABC-DE-123456", "state": "placed"}
    assert order_count(api, "mysite") == 1
    assert api.top_sellers("mysite") == [("PROD600", 4), ("PROD500", 2)]
    api.assert_consistent()


def test_a_streamed_body_without_content_length_is_cut_off_at_256_kib(api: Api) -> None:
    site = api.create_site()
    body = _padded(site, LIMIT + 1, form=False)
    chunks = iter([body[:100_000], body[100_000:200_000], body[200_000:]])
    response = api.client.post(
        "/tracker/api/v1_4/rest.pagex", content=chunks, headers={"Content-Type": "application/json"}
    )
    fail(response, 413, "PayloadTooLarge")
    assert order_count(api, "mysite") == 0


def test_a_post_that_is_neither_form_nor_json_is_415(api: Api, subtests: pytest.Subtests) -> None:
    site = api.create_site()
    body = json.dumps(jd(site, type="order", order=VENDOR_ORDER))
    for content_type in (None, "text/plain", "application/xml", "multipart/form-data; boundary=x"):
        with subtests.test(content_type=content_type):
            headers = {} if content_type is None else {"Content-Type": content_type}
            response = api.client.post(
                "/tracker/api/v1_4/rest.pagex", content=body, headers=headers
            )
            message = fail(response, 415, "UnsupportedMediaType")
            assert message == (
                "POST a form (application/x-www-form-urlencoded) with the field jd,"
                " or a JSON body (application/json)"
            )
    assert order_count(api, "mysite") == 0


def test_a_page_without_readable_json_is_400_malformed_json(
    api: Api, subtests: pytest.Subtests
) -> None:
    url = "/tracker/api/v1_4/rest.pagex"
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("GET", {"params": {}}, "jd is required: the page's JSON, URL-encoded"),
        ("POST", {"data": {"other": "1"}}, "jd is required: the page's JSON, URL-encoded"),
        ("GET", {"params": {"jd": "{'type': 'home'}"}}, "jd is not valid JSON: "),
        ("POST", {"content": "{", "headers": {"Content-Type": "application/json"}}, "jd is not"),
        ("GET", {"params": {"jd": "[1, 2]"}}, "jd must be a JSON object"),
        ("GET", {"params": {"jd": '{"type": "home"}'}}, "site is required: a string; got nothing"),
    ]
    for method, args, message in cases:
        with subtests.test(method=method, args=args):
            response = api.client.request(method, url, **args)
            assert fail(response, 400, "MalformedJson").startswith(message)


# -- page types and lenient parsing ---------------------------------------------------------

BASKET = {
    "items": [
        {"refCode": "P1", "qty": 2, "price": 10},
        {"refCode": "P2", "qty": "1", "price": "5.5"},
    ],
    "currency": "GBP",
}
CHECKOUT = {**BASKET, "subtotal": 25.5, "shipping": 3, "total": 28.5}
SEARCH = {"term": "shoes", "results": [{"refCode": "P1"}]}
PAGES: list[tuple[str, dict[str, Any]]] = [
    ("home", {}),
    ("category", {"category": "Fashion>Mens>Shoes"}),
    ("product", {"product": {"refCode": "P1"}}),
    ("basket", {"basket": BASKET}),
    ("checkout", {"checkout": CHECKOUT}),
    ("order", {"order": order_body("O-1", ("P1", 1, "10"))}),
    ("other", {}),
    ("searchResults", {"searchResults": SEARCH}),
    ("searchresults", {"searchResults": SEARCH}),
    ("wishlist", {"wishList": {"items": [{"refCode": "P1"}]}}),
]


def test_every_page_type_is_answered_with_session_tracking_id_and_one_widget(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    for page_type, fields in PAGES:
        with subtests.test(type=page_type):
            response = api.page(site, type=page_type, **fields)
            assert response.status_code == 200, response.text
            body = response.json()
            expected = {"status", "pageTrackingId", "session", "smartRecs"}
            assert set(body) == (expected | {"order"} if page_type == "order" else expected)
            assert body["status"] == "OK"
            assert PAGE_TRACKING_ID.fullmatch(body["pageTrackingId"])
            assert set(body["session"]) == {"session", "cuid"}
            assert len(body["smartRecs"]) == 1
    assert order_count(api, "mysite") == 1  # only the order page placed one
    api.assert_consistent()


def test_page_type_is_matched_case_insensitively(api: Api, subtests: pytest.Subtests) -> None:
    site = api.create_site()
    for page_type, fields in [
        ("HOME", {}),
        ("Category", {"category": "Shoes"}),
        ("PRODUCT", {"product": {"refCode": "P1"}}),
        ("Basket", {"basket": BASKET}),
        ("CheckOut", {"checkout": CHECKOUT}),
        ("SEARCHRESULTS", {"searchResults": SEARCH}),
        ("WishList", {}),
        ("Other", {}),
        ("ORDER", {"order": order_body("O-UPPER", ("P1", 1, "1"))}),
        ("oRdEr", {"order": order_body("O-MIXED", ("P2", 2, "1"))}),
    ]:
        with subtests.test(type=page_type):
            response = api.page(site, type=page_type, **fields)
            assert (response.status_code, response.json()["status"]) == (200, "OK")
    assert api.order("mysite", "O-UPPER")["state"] == "placed"
    assert api.top_sellers("mysite") == [("P2", 2), ("P1", 1)]
    api.assert_consistent()


def test_an_unknown_page_type_is_400_type_not_recognized(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    for page_type, shown in [
        ("brand", "'brand'"),
        ("attribute", "'attribute'"),
        ("search results", "'search results'"),
        ("", "''"),
        (7, "7"),
        (None, "nothing"),
    ]:
        with subtests.test(type=page_type):
            data = jd(site, order=VENDOR_ORDER)
            if page_type is not None:
                data["type"] = page_type
            message = fail(send(api, "get", data), 400, "TypeNotRecognized")
            assert message == (
                "type must be one of basket, category, checkout, home, order, other, product,"
                f" searchresults, wishlist (any case); got {shown}"
            )
    assert order_count(api, "mysite") == 0
    api.assert_consistent()


def test_numbers_may_arrive_as_numeric_strings_and_mean_the_same_order(api: Api) -> None:
    site = api.create_site(cancellations=True)
    as_strings = {
        "orderNo": "API-1-1700000000",
        "items": [
            {"refCode": "TS13A56EGRN", "qty": "4", "price": "32.5"},
            {"refCode": "TS99", "qty": " 1 ", "price": "7"},
        ],
        "currency": "GBP",
        "subtotal": "137",
        "shipping": "3.00",
        "total": "140",
    }
    first = api.place(site, as_strings, recContent="refCodeOnly")
    assert first.json()["status"] == "OK"
    assert lines(api, "mysite", "API-1-1700000000") == [("TS13A56EGRN", 4, 4), ("TS99", 1, 1)]
    order = api.order("mysite", "API-1-1700000000")
    assert (order["subtotal"], order["shipping"], order["total"]) == ("137.00", "3.00", "140.00")
    assert [line["price"] for line in order["lines"]] == ["32.50", "7.00"]
    as_numbers = {
        **as_strings,
        "items": [
            {"refCode": "TS13A56EGRN", "qty": 4, "price": 32.5},
            {"refCode": "TS99", "qty": 1, "price": 7},
        ],
        "subtotal": 137,
        "shipping": 3,
        "total": 140.0,
    }
    again = api.place(site, as_numbers)
    assert again.json()["status"] == "OK"
    assert events(api, "mysite", "API-1-1700000000") == ["placed"]  # not an update
    assert api.top_sellers("mysite", by="revenue") == [("TS13A56EGRN", "130.00"), ("TS99", "7.00")]
    api.assert_consistent()


def test_lang_may_be_two_letters_or_language_and_region(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    for lang in ("en", "en-gb", "EN-GB"):
        with subtests.test(lang=lang):
            response = api.place(site, order_body(f"L-{lang}", ("P1", 1, "1")), lang=lang)
            assert (response.status_code, response.json()["status"]) == (200, "OK")
            assert response.json()["order"] == {"orderNo": f"L-{lang}", "state": "placed"}
    api.assert_consistent()


def _with_variant(order_no: str, variant: dict[str, str]) -> dict[str, Any]:
    order = order_body(order_no, ("TS13A56EGRN", 4, "32.5"))
    order["items"][0]["variant"] = variant
    return order


def test_variant_sku_wins_so_sends_differing_only_in_attributes_are_the_same_order(
    api: Api,
) -> None:
    site = api.create_site(cancellations=True)
    first = api.place(site, _with_variant("V-1", {"sku": "SKU-G4", "colour": "green"}))
    assert first.json()["order"]["state"] == "placed"
    same = api.place(site, _with_variant("V-1", {"sku": "SKU-G4", "colour": "red", "size": "9"}))
    assert (same.json()["status"], same.json()["order"]["state"]) == ("OK", "placed")
    assert events(api, "mysite", "V-1") == ["placed"]
    other_sku = api.place(site, _with_variant("V-1", {"sku": "SKU-R4", "colour": "green"}))
    assert other_sku.json()["status"] == "OK"
    assert events(api, "mysite", "V-1") == ["placed", "updated"]
    api.assert_consistent()


def test_variant_attributes_identify_the_variant_when_there_is_no_sku(api: Api) -> None:
    site = api.create_site(cancellations=True)
    green = {"colour": "green", "size": "4"}
    api.place(site, _with_variant("V-2", green))
    reordered = api.place(site, _with_variant("V-2", {"size": "4", "colour": "green"}))
    assert reordered.json()["status"] == "OK"
    assert events(api, "mysite", "V-2") == ["placed"]
    api.place(site, _with_variant("V-2", {"colour": "red", "size": "4"}))
    assert events(api, "mysite", "V-2") == ["placed", "updated"]
    assert api.top_sellers("mysite") == [("TS13A56EGRN", 4)]
    api.assert_consistent()


def test_missing_subtotal_and_shipping_are_computed_with_a_warning(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    subtotal = ("MissingOrMalformedSubtotal", "order.subtotal is missing; computed as 99.00")
    shipping = ("MissingOrMalformedShipping", "order.shipping is missing; taken as 0")
    cases = [
        (("subtotal",), [subtotal], "3.00"),
        (("shipping",), [shipping], "0.00"),
        (("subtotal", "shipping"), [subtotal, shipping], "0.00"),
    ]
    for n, (missing, warnings, shipped) in enumerate(cases):
        with subtests.test(missing=missing):
            order = {key: value for key, value in VENDOR_ORDER.items() if key not in missing}
            response = api.place(site, {**order, "orderNo": f"W-{n}"})
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == "warning"
            assert [(e["code"], e["message"]) for e in body["errors"]] == warnings
            assert body["order"] == {"orderNo": f"W-{n}", "state": "placed"}
            stored = api.order("mysite", f"W-{n}")
            assert (stored["subtotal"], stored["shipping"]) == ("99.00", shipped)
    assert report(api, "mysite")["revenue"] == "297.00"  # a warning did useful work
    api.assert_consistent()


# -- errors of order pages ------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or, with ``...``, remove) ``order.<path>`` where path is dotted with list indexes."""

    def change(order: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = order
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        index: Any = int(last) if last.isdigit() else last
        if value is ...:
            del target[index]
        else:
            target[index] = value

    return change


MALFORMED = [
    ("orderNo", ..., "MissingOrMalformedOrderNo", "order.orderNo"),
    ("orderNo", "", "MissingOrMalformedOrderNo", "order.orderNo"),
    ("orderNo", "N" * 129, "MissingOrMalformedOrderNo", "order.orderNo"),
    ("orderNo", {"no": 1}, "MissingOrMalformedOrderNo", "order.orderNo"),
    ("orderNo", "line\nbreak", "MissingOrMalformedOrderNo", "order.orderNo"),
    ("items", ..., "MissingOrMalformedItems", "order.items"),
    ("items", [], "MissingOrMalformedItems", "order.items"),
    ("items", {"refCode": "A"}, "MissingOrMalformedItems", "order.items"),
    ("items.0", "PROD500", "MissingOrMalformedItems", "order.items[0]"),
    ("items.0.refCode", ..., "MissingOrMalformedItems", "order.items[0].refCode"),
    ("items.1.refCode", "", "MissingOrMalformedItems", "order.items[1].refCode"),
    ("items.0.qty", ..., "MissingOrMalformedItems", "order.items[0].qty"),
    ("items.0.qty", 0, "MissingOrMalformedItems", "order.items[0].qty"),
    ("items.0.qty", -2, "MissingOrMalformedItems", "order.items[0].qty"),
    ("items.0.qty", 1.5, "MissingOrMalformedItems", "order.items[0].qty"),
    ("items.0.qty", "two", "MissingOrMalformedItems", "order.items[0].qty"),
    ("items.0.qty", True, "MissingOrMalformedItems", "order.items[0].qty"),
    ("items.0.qty", 1_000_001, "MissingOrMalformedItems", "order.items[0].qty"),
    ("items.1.price", ..., "MissingOrMalformedItems", "order.items[1].price"),
    ("items.1.price", -12, "MissingOrMalformedItems", "order.items[1].price"),
    ("items.1.price", "12,00", "MissingOrMalformedItems", "order.items[1].price"),
    ("items.1.price", "0.0000001", "MissingOrMalformedItems", "order.items[1].price"),
    ("items.0.variant", "green", "MissingOrMalformedItems", "order.items[0].variant"),
    ("currency", ..., "MissingOrMalformedCurrency", "order.currency"),
    ("currency", "GB", "MissingOrMalformedCurrency", "order.currency"),
    ("currency", "£££", "MissingOrMalformedCurrency", "order.currency"),
    ("currency", 826, "MissingOrMalformedCurrency", "order.currency"),
    ("subtotal", "ninety-nine", "MissingOrMalformedSubtotal", "order.subtotal"),
    ("subtotal", -1, "MissingOrMalformedSubtotal", "order.subtotal"),
    ("shipping", "free", "MissingOrMalformedShipping", "order.shipping"),
    ("shipping", [3], "MissingOrMalformedShipping", "order.shipping"),
    ("total", ..., "MissingOrMalformedTotal", "order.total"),
    ("total", "", "MissingOrMalformedTotal", "order.total"),
    ("total", "1e12", "MissingOrMalformedTotal", "order.total"),
]


def test_a_malformed_order_field_is_400_with_a_message_naming_it(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    for path, value, code, field in MALFORMED:
        with subtests.test(path=path, value=value):
            order = json.loads(json.dumps(VENDOR_ORDER))
            _set(path, value)(order)
            message = fail(api.place(site, order), 400, code)
            assert message.startswith(f"{field} must be"), message
    assert order_count(api, "mysite") == 0
    api.assert_consistent()


def test_more_than_1000_lines_is_400_and_1000_lines_are_taken(api: Api) -> None:
    site = api.create_site()
    many = order_body("BIG", *[("P", 1, "1")] * 1001)
    response = send(api, "json", jd(site, type="order", order=many))
    message = fail(response, 400, "MissingOrMalformedItems")
    assert message.startswith("order.items must be a list of 1-1000 lines; got [{'refCode'")
    enough = order_body("OK", *[("P", 1, "1")] * 1000)
    taken = send(api, "json", jd(site, type="order", order=enough))
    assert taken.json()["order"] == {"orderNo": "OK", "state": "placed"}
    assert report(api, "mysite")["units"] == 1000
    api.assert_consistent()


def test_other_malformed_page_fields_are_400_naming_the_field(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    order_object = "order must be an object with an orderNo"
    basket = "basket must be an object with an items list"
    for fields, code, message in [
        ({"type": "order"}, "MissingOrMalformedOrderNo", order_object),
        ({"type": "order", "order": "ABC-1"}, "MissingOrMalformedOrderNo", order_object),
        ({"type": "order", "order": ["ABC-1"]}, "MissingOrMalformedOrderNo", order_object),
        ({"type": "basket"}, "MissingOrMalformedBasket", basket),
        ({"type": "basket", "basket": {"items": "P1"}}, "MissingOrMalformedBasket", basket),
        (
            {"type": "product"},
            "MissingOrMalformedProduct",
            "product.refCode must be a string of 1-128 printable characters; got nothing",
        ),
        (
            {"type": "order", "order": VENDOR_ORDER, "channel": 5},
            "MissingOrMalformedChannel",
            "channel must be a string such as web",
        ),
        (
            {"type": "home", "user": "someone"},
            "MissingOrMalformedUser",
            "user must be an object; got 'someone'",
        ),
        (
            {"type": "home", "user": {"id": ""}},
            "MissingOrMalformedUser",
            "user.id must be a string of 1-256 printable characters; got ''",
        ),
    ]:
        with subtests.test(fields=fields):
            page = {**jd(site), **fields}  # a channel of 5 would not pick a token
            assert fail(send(api, "get", page), 400, code) == message
    assert order_count(api, "mysite") == 0
    api.assert_consistent()


# -- sites and tokens -----------------------------------------------------------------------


def test_an_unknown_site_is_404_site_not_recognized(api: Api, subtests: pytest.Subtests) -> None:
    site = api.create_site()
    for transport in TRANSPORTS:
        with subtests.test(transport=transport):
            data = jd(site, type="order", order=VENDOR_ORDER, site="othersite")
            message = fail(send(api, transport, data), 404, "SiteNotRecognized")
            assert message == "site 'othersite' is not known to this server"
    assert order_count(api, "mysite") == 0
    api.assert_consistent()


def test_a_wrong_or_missing_client_token_is_401_invalid_client_token(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    for token in ("wrong", None, "", 12345, site["clientTokens"]["web"].upper()):
        with subtests.test(token=token):
            data = jd(site, type="order", order=VENDOR_ORDER)
            if token is None:
                del data["clientToken"]
            else:
                data["clientToken"] = token
            message = fail(send(api, "get", data), 401, "InvalidClientToken")
            assert message == "clientToken is not valid for site 'mysite' and channel 'web'"
    assert order_count(api, "mysite") == 0
    api.assert_consistent()


def test_the_client_token_of_one_site_is_refused_for_another(api: Api) -> None:
    site_a = api.create_site("site-a")
    site_b = api.create_site("site-b")
    borrowed = jd(
        site_b, type="order", order=VENDOR_ORDER, clientToken=site_a["clientTokens"]["web"]
    )
    fail(send(api, "get", borrowed), 401, "InvalidClientToken")
    assert order_count(api, "site-a") == order_count(api, "site-b") == 0
    api.assert_consistent("site-a")
    api.assert_consistent("site-b")


def test_client_tokens_are_per_channel_and_site_tokens_are_not_client_tokens(api: Api) -> None:
    site = api.create_site()
    web_token_on_mobileweb = {**jd(site, type="home"), "channel": "mobileweb"}
    fail(send(api, "get", web_token_on_mobileweb), 401, "InvalidClientToken")
    store_token = jd(site, type="home", clientToken=site["siteTokens"]["store"])
    fail(send(api, "get", store_token), 401, "InvalidClientToken")
    mobileweb = api.page(site, channel="mobileweb", type="order", order=VENDOR_ORDER)
    assert mobileweb.json()["order"]["state"] == "placed"
    assert api.order("mysite", "ABC-DE-123456")["channel"] == "mobileweb"
    api.assert_consistent()


def test_an_unknown_site_then_a_bad_client_token_are_reported_before_malformed_fields(
    api: Api,
) -> None:
    site = api.create_site()
    malformed = {"type": "brand", "session": 7, "order": {"orderNo": ""}}
    fail(send(api, "get", jd(site, **malformed, site="nosuchsite")), 404, "SiteNotRecognized")
    fail(send(api, "get", jd(site, **malformed, clientToken="wrong")), 401, "InvalidClientToken")
    fail(send(api, "get", jd(site, **malformed)), 400, "TypeNotRecognized")
    fail(
        send(api, "get", jd(site, **{**malformed, "type": "order"})),
        400,
        "MissingOrMalformedSession",
    )
    api.assert_consistent()


# -- the order table (5.1) ------------------------------------------------------------------

TWO_LINES = order_body("O-1", ("A", 2, "10.00"), ("B", 1, "5.00"))


def test_a_new_order_is_placed_and_counted_in_every_statistic(api: Api) -> None:
    site = api.create_site()
    response = api.place(site, TWO_LINES, user={"id": "user-1"})
    assert response.status_code == 200
    assert response.json()["status"] == "OK"
    assert response.json()["order"] == {"orderNo": "O-1", "state": "placed"}
    buyer = pair(response)
    assert statistics(api, "mysite") == {
        "units": [("A", 2), ("B", 1)],
        "revenue": [("A", "20.00"), ("B", "5.00")],
        "report": {
            "orders": 1,
            "units": 3,
            "revenue": "25.00",
            "cancelledOrders": 0,
            "cancelledRevenue": "0.00",
        },
    }
    assert api.bought_together("mysite", "A") == [("B", 1)]
    assert api.bought_together("mysite", "B") == [("A", 1)]
    assert history(api, "mysite", cuid=buyer["cuid"]) == [("A", 2), ("B", 1)]
    assert history(api, "mysite", userId="user-1") == [("A", 2), ("B", 1)]
    stored = api.order("mysite", "O-1")
    assert (stored["state"], stored["session"], stored["cuid"], stored["userId"]) == (
        "placed",
        buyer["session"],
        buyer["cuid"],
        "user-1",
    )
    assert stored["orderDate"] == f"{DAY}T12:00:00.000000Z"
    api.assert_consistent()


@pytest.mark.parametrize("cancellations", [True, False])
def test_resending_the_same_content_changes_nothing(api: Api, cancellations: bool) -> None:
    site = api.create_site(cancellations=cancellations)
    first = api.place(site, TWO_LINES, user={"id": "user-1"})
    before = statistics(api, "mysite")
    reload_in_session = api.place(site, TWO_LINES, **pair(first))
    from_elsewhere = api.place(site, TWO_LINES)
    for again in (reload_in_session, from_elsewhere):
        assert again.status_code == 200
        assert again.json()["status"] == "OK"
        assert again.json()["order"] == {"orderNo": "O-1", "state": "placed"}
    assert statistics(api, "mysite") == before
    assert history(api, "mysite", cuid=pair(first)["cuid"]) == [("A", 2), ("B", 1)]
    assert history(api, "mysite", cuid=pair(from_elsewhere)["cuid"]) == []
    stored = api.order("mysite", "O-1")
    assert (stored["session"], stored["cuid"]) == (pair(first)["session"], pair(first)["cuid"])
    assert events(api, "mysite", "O-1") == ["placed"]
    api.assert_consistent()


@pytest.mark.parametrize("cancellations", [True, False])
def test_the_same_lines_in_another_order_are_the_same_content(
    api: Api, cancellations: bool
) -> None:
    site = api.create_site(cancellations=cancellations)
    api.place(site, TWO_LINES)
    before = statistics(api, "mysite")
    reordered = api.place(site, {**TWO_LINES, "items": TWO_LINES["items"][::-1]})
    assert reordered.json()["status"] == "OK"
    assert reordered.json()["order"] == {"orderNo": "O-1", "state": "placed"}
    assert statistics(api, "mysite") == before
    assert lines(api, "mysite", "O-1") == [("A", 2, 2), ("B", 1, 1)]
    assert events(api, "mysite", "O-1") == ["placed"]
    api.assert_consistent()


def test_different_content_replaces_the_order_when_cancellations_are_on(api: Api) -> None:
    site = api.create_site(cancellations=True)
    first = api.place(site, TWO_LINES, user={"id": "user-1"})
    changed = order_body("O-1", ("A", 1, "10.00"), ("C", 3, "2.00"))
    response = api.place(site, changed, **pair(first))
    assert response.status_code == 200
    assert response.json()["status"] == "OK"
    assert response.json()["order"] == {"orderNo": "O-1", "state": "placed"}
    assert statistics(api, "mysite") == {
        "units": [("C", 3), ("A", 1)],
        "revenue": [("A", "10.00"), ("C", "6.00")],
        "report": {
            "orders": 1,
            "units": 4,
            "revenue": "16.00",
            "cancelledOrders": 0,
            "cancelledRevenue": "0.00",
        },
    }
    assert api.bought_together("mysite", "A") == [("C", 1)]
    assert api.bought_together("mysite", "B") == []
    assert history(api, "mysite", cuid=pair(first)["cuid"]) == [("A", 1), ("C", 3)]
    assert history(api, "mysite", userId="user-1") == [("A", 1), ("C", 3)]
    assert lines(api, "mysite", "O-1") == [("A", 1, 1), ("C", 3, 3)]
    assert events(api, "mysite", "O-1") == ["placed", "updated"]
    api.assert_consistent()


def test_different_content_is_an_order_conflict_when_cancellations_are_off(api: Api) -> None:
    site = api.create_site(cancellations=False)
    first = api.place(site, TWO_LINES)
    before = statistics(api, "mysite")
    response = api.place(site, order_body("O-1", ("C", 3, "2.00")), **pair(first))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "warning"
    assert codes(response) == ["OrderConflict"]
    assert body["errors"][0]["message"] == (
        "order 'O-1' was already placed with different content; the first one is kept"
        " (order updates need cancellations enabled)"
    )
    assert body["order"] == {"orderNo": "O-1", "state": "placed"}
    assert set(body) == {"status", "errors", "pageTrackingId", "session", "order", "smartRecs"}
    assert statistics(api, "mysite") == before
    assert lines(api, "mysite", "O-1") == [("A", 2, 2), ("B", 1, 1)]
    assert api.order("mysite", "O-1")["total"] == "25.00"
    assert events(api, "mysite", "O-1") == ["placed"]
    api.assert_consistent()


# -- what a page gets back ------------------------------------------------------------------


def _buy(api: Api, site: dict[str, Any], order_no: str, *items: tuple[str, int]) -> Any:
    """An order by a new buyer; returns the response."""
    response = api.place(site, order_body(order_no, *[(ref, qty, "1.00") for ref, qty in items]))
    assert response.json()["order"]["state"] == "placed", response.text
    return response


def _shop(api: Api, site: dict[str, Any]) -> None:
    """Units: P4 10, P1 3, P2 2, P3 1; pairs: P1-P2 twice, P1-P3 once."""
    _buy(api, site, "S-1", ("P1", 1), ("P2", 1))
    _buy(api, site, "S-2", ("P1", 1), ("P2", 1))
    _buy(api, site, "S-3", ("P1", 1), ("P3", 1))
    _buy(api, site, "S-4", ("P4", 10))


def test_recs_are_ref_code_only_with_a_64_bit_integer_id(api: Api) -> None:
    site = api.create_site()
    _shop(api, site)
    widget = api.page(site, type="home").json()["smartRecs"][0]
    assert [rec["refCode"] for rec in widget["recs"]] == ["P4", "P1", "P2", "P3"]
    for rec in widget["recs"]:
        assert set(rec) == {"refCode", "id"}
        assert type(rec["id"]) is int and 0 < rec["id"] < 2**63
    assert len({rec["id"] for rec in widget["recs"]}) == 4
    api.assert_consistent()


def test_pages_without_products_recommend_top_sellers(api: Api, subtests: pytest.Subtests) -> None:
    site = api.create_site()
    pages: list[tuple[str, dict[str, Any]]] = [
        ("home", {}),
        ("category", {"category": "Shoes"}),
        ("other", {}),
        ("searchResults", {"searchResults": SEARCH}),
        ("wishlist", {}),
    ]
    for page_type, fields in pages:
        with subtests.test(type=page_type, shop="empty"):
            assert recs(api.page(site, type=page_type, **fields)) == []
    _shop(api, site)
    for page_type, fields in pages:
        with subtests.test(type=page_type, shop="stocked"):
            assert recs(api.page(site, type=page_type, **fields)) == ["P4", "P1", "P2", "P3"]
    api.assert_consistent()


def test_a_product_page_recommends_bought_together_then_falls_back_to_top_sellers(
    api: Api,
) -> None:
    site = api.create_site()
    _shop(api, site)
    p1 = api.page(site, type="product", product={"refCode": "P1"})
    assert recs(p1) == ["P2", "P3", "P4"]
    p4 = api.page(site, type="product", product={"refCode": "P4"})
    assert recs(p4) == ["P1", "P2", "P3"]  # nothing bought with P4: top sellers without P4
    api.assert_consistent()


def test_basket_checkout_and_order_pages_recommend_bought_together_with_their_items(
    api: Api,
) -> None:
    site = api.create_site()
    _shop(api, site)
    basket = {"items": [{"refCode": "P2", "qty": 1, "price": 1}], "currency": "GBP"}
    assert recs(api.page(site, type="basket", basket=basket)) == ["P1", "P4", "P3"]
    checkout = {**basket, "subtotal": 1, "shipping": 0, "total": 1}
    assert recs(api.page(site, type="checkout", checkout=checkout)) == ["P1", "P4", "P3"]
    order = api.place(site, order_body("S-5", ("P3", 1, "1.00")))
    assert recs(order) == ["P1", "P4", "P2"]  # P3 is bought: only bought-together and top sellers
    api.assert_consistent()


def test_recs_leave_out_what_this_cuid_has_live_bought(api: Api) -> None:
    site = api.create_site()
    _shop(api, site)
    mine = _buy(api, site, "MINE", ("P2", 1))
    assert recs(api.page(site, type="home", **pair(mine))) == ["P4", "P1", "P3"]
    assert recs(api.page(site, type="product", product={"refCode": "P1"}, **pair(mine))) == [
        "P3",
        "P4",
    ]
    someone_else = api.page(site, type="home")
    assert recs(someone_else) == ["P4", "P1", "P2", "P3"]
    api.assert_consistent()


def test_what_a_buyer_has_live_bought_is_left_out_exactly_whatever_its_characters(
    api: Api,
) -> None:
    """A buyer's live purchases come back from the database gathered in one value (a JSON
    array on SQLite, an array on PostgreSQL): every refCode is read back as it was sent."""
    site = api.create_site()
    odd = ['say "hi"', "a,b", "[x]", "back\\slash", "naïve-ß", "null", "P1"]
    for n, ref in enumerate(odd):
        _buy(api, site, f"S-{n}", (ref, 1))
    mine = _buy(api, site, "MINE", *[(ref, 1) for ref in odd[:4]])
    sellers = api.top_sellers(site["name"], cuid=pair(mine)["cuid"], limit=20)
    assert sorted(ref for ref, _ in sellers) == sorted(odd[4:])
    everyone = api.top_sellers(site["name"], limit=20)
    assert sorted(ref for ref, _ in everyone) == sorted(odd)
    api.assert_consistent()


def test_recs_leave_out_what_this_user_id_has_live_bought_from_another_cuid(api: Api) -> None:
    site = api.create_site()
    _shop(api, site)
    api.place(site, order_body("U-1", ("P4", 1, "1.00")), user={"id": "user-7"})
    on_another_device = api.page(site, type="home", user={"id": "user-7"})
    assert recs(on_another_device) == ["P1", "P2", "P3"]
    later_in_that_session = api.page(site, type="home", **pair(on_another_device))
    assert recs(later_in_that_session) == ["P1", "P2", "P3"]  # the user stays on the session
    anonymous = api.page(site, type="home")
    assert recs(anonymous) == ["P4", "P1", "P2", "P3"]
    api.assert_consistent()


def test_recs_leave_out_what_this_session_has_live_bought_under_another_cuid(api: Api) -> None:
    site = api.create_site(cancellations=True)
    _shop(api, site)
    mine = _buy(api, site, "MINE", ("P2", 1))
    logged_in = {"session": pair(mine)["session"], "cuid": "cookie-of-the-account"}
    same_session = api.page(site, type="home", **logged_in)
    assert pair(same_session) == logged_in
    assert recs(same_session) == ["P4", "P1", "P3"]
    assert cancel(api, "mysite", logged_in, "MINE").json()["order"]["state"] == "cancelled"
    assert recs(api.page(site, type="home", **logged_in)) == ["P4", "P1", "P2", "P3"]
    api.assert_consistent()


def test_a_click_is_acknowledged_in_info(api: Api, subtests: pytest.Subtests) -> None:
    site = api.create_site()
    for click in (5637282, "5637282"):
        with subtests.test(click=click):
            clicked = api.page(
                site,
                type="product",
                product={"refCode": "P1"},
                info={"smartRecs": {"click": click, "clientRecRefcodes": ["R1"]}},
            )
            assert clicked.json()["info"] == {"smartRecs": [{"click": "ok", "id": 5637282}]}
    assert "info" not in api.page(site, type="product", product={"refCode": "P1"}).json()


def test_basket_and_checkout_contents_are_kept_on_the_session(api: Api) -> None:
    site = api.create_site()
    basket = api.page(site, type="basket", basket=BASKET)
    who = pair(basket)
    kept = stored_session(api, "mysite", who["session"])
    assert kept is not None
    assert (json.loads(kept.basket), kept.checkout) == ([["P1", 2, "10.00"], ["P2", 1, "5.50"]], "")
    api.page(site, type="checkout", checkout=CHECKOUT, **who)
    api.page(
        site, type="basket", basket={"items": [{"refCode": "P9", "qty": 3, "price": 1}]}, **who
    )
    kept = stored_session(api, "mysite", who["session"])
    assert kept is not None
    assert json.loads(kept.basket) == [["P9", 3, "1.00"]]
    assert json.loads(kept.checkout) == [["P1", 2, "10.00"], ["P2", 1, "5.50"]]
    api.page(site, type="home", **who)
    kept_after_home = stored_session(api, "mysite", who["session"])
    assert kept_after_home is not None
    assert json.loads(kept_after_home.basket) == [["P9", 3, "1.00"]]


def test_an_order_of_more_than_100_products_adds_no_bought_together_pairs(api: Api) -> None:
    site = api.create_site("bulk")
    many = [(f"P{n:03d}", 1, "1.00") for n in range(101)]
    few = [(f"P{n:03d}", 1, "1.00") for n in range(100)]
    assert api.place(site, order_body("BULK-1", *many)).status_code == 200
    assert api.bought_together("bulk", "P000") == []
    assert api.top_sellers("bulk", limit=1) == [("P000", 1)]
    assert api.place(site, order_body("SMALL-1", *few)).status_code == 200
    assert api.bought_together("bulk", "P000", limit=2) == [("P001", 1), ("P002", 1)]
    api.assert_consistent("bulk")


def test_an_update_keeps_the_online_order_on_the_day_it_was_placed(api: Api) -> None:
    site = api.create_site("dated", cancellations=True)
    api.place(site, order_body("D-1", ("A", 1, "2.00")))
    placed_at = api.order("dated", "D-1")["orderDate"]
    api.clock.advance(days=3)  # type: ignore[attr-defined]
    assert api.place(site, order_body("D-1", ("A", 2, "2.00"))).status_code == 200
    order = api.order("dated", "D-1")
    assert (order["orderDate"], order["lines"][0]["quantity"]) == (placed_at, 2)
    api.assert_consistent("dated")
