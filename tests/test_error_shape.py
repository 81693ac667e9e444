"""One error shape on every surface (API.md 2): every error path reachable over HTTP, pinned.

Each rejected request must also leave the statistics, orders and held cancellations as they
were: a ``fail`` did no work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from recotrack.http.app import create_app
from recotrack.services.check import check_site
from recotrack.settings import Settings
from recotrack.store.sqlite import SqliteStore

from .support import ADMIN, AUTH, Api, order_body

MEDIA_TYPE = "application/json; charset=utf-8"
TOO_BIG = b'{"pad": "' + b"x" * (256 * 1024) + b'"}'
JSON_TYPE = {"Content-Type": "application/json"}
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}
TEXT_TYPE = {"Content-Type": "text/plain"}
ADMIN_JSON = {**AUTH, **JSON_TYPE}


@dataclass
class Case:
    name: str
    status: int
    code: str
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON-encoded unless bytes


def offline_body(ref: str, *lines: tuple[str, int, str], **order: Any) -> dict[str, Any]:
    total = sum((Decimal(price) * qty for _, qty, price in lines), Decimal(0))
    return {
        "order": {
            "refCode": ref,
            "currency": "GBP",
            "total": str(total),
            "items": [{"refCode": r, "qty": q, "price": p} for r, q, p in lines],
            **order,
        }
    }


def smart(of: dict[str, Any], channel: str = "store", /, **changes: str | None) -> dict[str, str]:
    """Smart-API headers for a site; a change of None leaves that header out."""
    sent: dict[str, str | None] = {
        "site": of["name"],
        "siteToken": of["siteTokens"][channel],
        "channel": channel,
        **JSON_TYPE,
        **changes,
    }
    return {key: value for key, value in sent.items() if value is not None}


def snapshot(api: Api, sites: list[str], cuid: str) -> dict[str, Any]:
    """Every figure a request could change, per site."""
    shown: dict[str, Any] = {}
    for name in sites:
        base = f"/api/v1/sites/{name}"
        day = {"from": "2026-11-27", "to": "2026-11-27"}
        shown[name] = {
            "site": api.admin_get(base)["site"],
            "orders": api.admin_get(f"{base}/orders")["orders"],
            "held": api.admin_get(f"{base}/held")["held"],
            "units": api.admin_get(f"{base}/recs/top-sellers")["recs"],
            "revenue": api.admin_get(f"{base}/recs/top-sellers", by="revenue")["recs"],
            "pairs": api.admin_get(f"{base}/recs/bought-together", refCode=["A", "B"])["recs"],
            "by cuid": api.admin_get(f"{base}/history", cuid=cuid)["history"],
            "by user": api.admin_get(f"{base}/history", userId="u1")["history"],
            "days": api.admin_get(f"{base}/reports/daily", **day)["days"],
            "check": api.store.read_sync(lambda repo, n=name: check_site(repo, n)),
        }
        shown[name]["lines"] = [
            api.admin_get(
                f"{base}/orders/{o['orderNo']}", source=o["source"], channel=o["channel"]
            )["order"]
            for o in shown[name]["orders"]
        ]
    return shown


def cases(
    mysite: dict[str, Any], locked: dict[str, Any], tok: dict[str, Any], sessions: dict[str, Any]
) -> Iterator[Case]:
    """Every error path, surface by surface."""
    s1, tok_session = sessions["mysite"], sessions["tok"]

    def jd(site: dict[str, Any] = mysite, **fields: Any) -> dict[str, str]:
        page = {
            "site": site["name"],
            "clientToken": site["clientTokens"]["web"],
            "session": "new",
            "cuid": "new",
            "type": "home",
            **fields,
        }
        return {"jd": json.dumps({k: v for k, v in page.items() if v is not None})}

    def order(**changes: Any) -> dict[str, str]:
        body = {**order_body("NEW1", ("A", 1, "1.00")), **changes}
        return jd(type="order", order={k: v for k, v in body.items() if v is not None})

    # One line per case reads as a table.
    # fmt: off
    rest = "/tracker/api/v1_4/rest.pagex"
    yield Case("rest: unknown version", 404, "ApiVersionNotSupported", "GET", "/tracker/api/v9_9/rest.pagex", jd())
    yield Case("rest: no jd", 400, "MalformedJson", "GET", rest)
    yield Case("rest: jd not JSON", 400, "MalformedJson", "GET", rest, {"jd": "{"})
    yield Case("rest: jd not an object", 400, "MalformedJson", "GET", rest, {"jd": "[]"})
    yield Case("rest: jd without site", 400, "MalformedJson", "GET", rest, {"jd": '{"type": "home"}'})
    yield Case("rest: unknown site", 404, "SiteNotRecognized", "GET", rest, jd(site={**mysite, "name": "nosite"}))
    yield Case("rest: wrong clientToken", 401, "InvalidClientToken", "GET", rest, jd(clientToken="x" * 43))
    yield Case("rest: no clientToken", 401, "InvalidClientToken", "GET", rest, jd(clientToken=None))
    yield Case("rest: site token as clientToken", 401, "InvalidClientToken", "GET", rest, jd(clientToken=mysite["siteTokens"]["store"]))
    yield Case("rest: unknown type", 400, "TypeNotRecognized", "GET", rest, jd(type="landing"))
    yield Case("rest: order without orderNo", 400, "MissingOrMalformedOrderNo", "GET", rest, order(orderNo=None))
    yield Case("rest: order not an object", 400, "MissingOrMalformedOrderNo", "GET", rest, jd(type="order", order=[]))
    yield Case("rest: order currency", 400, "MissingOrMalformedCurrency", "GET", rest, order(currency="pounds"))
    yield Case("rest: order items", 400, "MissingOrMalformedItems", "GET", rest, order(items=[]))
    yield Case("rest: order qty", 400, "MissingOrMalformedItems", "GET", rest, order(items=[{"refCode": "A", "qty": -1, "price": 1}]))
    yield Case("rest: order total", 400, "MissingOrMalformedTotal", "GET", rest, order(total=None))
    yield Case("rest: order subtotal", 400, "MissingOrMalformedSubtotal", "GET", rest, order(subtotal="x"))
    yield Case("rest: order shipping", 400, "MissingOrMalformedShipping", "GET", rest, order(shipping="-3"))
    yield Case("rest: session", 400, "MissingOrMalformedSession", "GET", rest, jd(session=5))
    yield Case("rest: cuid", 400, "MissingOrMalformedCuid", "GET", rest, jd(cuid=""))
    yield Case("rest: user", 400, "MissingOrMalformedUser", "GET", rest, jd(user="bob"))
    yield Case("rest: channel", 400, "MissingOrMalformedChannel", "GET", rest, jd(channel=5))
    yield Case("rest: basket", 400, "MissingOrMalformedBasket", "GET", rest, jd(type="basket", basket="x"))
    yield Case("rest: product", 400, "MissingOrMalformedProduct", "GET", rest, jd(type="product", product={}))
    yield Case("rest: text body", 415, "UnsupportedMediaType", "POST", rest, headers=TEXT_TYPE, body=b"jd={}")
    yield Case("rest: form without jd", 400, "MalformedJson", "POST", rest, headers=FORM_TYPE, body=b"x=1")
    yield Case("rest: too large", 413, "PayloadTooLarge", "POST", rest, headers=JSON_TYPE, body=TOO_BIG)
    yield Case("rest: PUT", 405, "MethodNotAllowed", "PUT", rest, jd())
    yield Case("rest: unknown page", 404, "NotFound", "GET", "/tracker/api/v1_4/page.pagex", jd())

    cancel = "/tracker/api/v1_4/mysite/order/cancel.pagex"
    who = {"session": s1["session"], "cuid": s1["cuid"]}
    yield Case("cancel: unknown version", 404, "ApiVersionNotSupported", "POST", "/tracker/api/v2_0/mysite/order/cancel.pagex", {**who, "orderNo": "O1"})
    yield Case("cancel: unknown site", 404, "SiteNotRecognized", "POST", "/tracker/api/v1_4/nosite/order/cancel.pagex", {**who, "orderNo": "O1"})
    yield Case("cancel: cancellations off", 403, "CancellationsNotEnabled", "POST", "/tracker/api/v1_4/locked/order/cancel.pagex", {**who, "orderNo": "L0"})
    yield Case("cancel: no session", 400, "MissingOrMalformedSession", "POST", cancel, {"cuid": s1["cuid"], "orderNo": "O1"})
    yield Case("cancel: no cuid", 400, "MissingOrMalformedCuid", "GET", cancel, {"session": s1["session"], "orderNo": "O1"})
    yield Case("cancel: session new", 400, "MissingOrMalformedSession", "POST", cancel, {**who, "session": "new", "orderNo": "O1"})
    yield Case("cancel: no orderNo", 400, "MissingOrMalformedOrderNo", "POST", cancel, who)
    yield Case("cancel: query and body differ", 400, "ConflictingParameters", "POST", cancel, {**who, "orderNo": "O1"}, FORM_TYPE, b"orderNo=O2")
    yield Case("cancel: qty without refCode", 400, "MissingOrMalformedItems", "POST", cancel, {**who, "orderNo": "O1", "qty": "1"})
    yield Case("cancel: qty zero", 400, "MissingOrMalformedItems", "POST", cancel, {**who, "orderNo": "O1", "refCode": "A", "qty": "0"})
    yield Case("cancel: reason too long", 400, "MissingOrMalformedParameter", "POST", cancel, {**who, "orderNo": "O1", "reason": "r" * 257})
    yield Case("cancel: made-up session", 401, "SessionNotRecognized", "POST", cancel, {"session": "123456789012|" + "a" * 43, "cuid": s1["cuid"], "orderNo": "O1"})
    yield Case("cancel: token mode without clientToken", 401, "InvalidClientToken", "POST", "/tracker/api/v1_4/tok/order/cancel.pagex", {**tok_session, "orderNo": "T1"})
    yield Case("cancel: token mode with a wrong clientToken", 401, "InvalidClientToken", "POST", "/tracker/api/v1_4/tok/order/cancel.pagex", {**tok_session, "orderNo": "T1", "clientToken": mysite["clientTokens"]["web"]})
    yield Case("cancel: line not in order", 409, "LineNotFound", "POST", cancel, {**who, "orderNo": "O1", "refCode": "Z"})
    yield Case("cancel: qty above live", 409, "QuantityExceedsRemaining", "POST", cancel, {**who, "orderNo": "O1", "refCode": "A", "qty": "4"})
    yield Case("cancel: JSON body", 415, "UnsupportedMediaType", "POST", cancel, headers=JSON_TYPE, body={**who, "orderNo": "O1"})
    yield Case("cancel: too large", 413, "PayloadTooLarge", "POST", cancel, headers=FORM_TYPE, body=TOO_BIG)
    yield Case("cancel: DELETE", 405, "MethodNotAllowed", "DELETE", cancel, {**who, "orderNo": "O1"})

    offline = "/smart-api/orders/offline"
    good = offline_body("NEW1", ("A", 1, "1"))
    yield Case("smart: no site header", 400, "SiteNotRecognized", "POST", offline, headers=smart(mysite, site=None), body=good)
    yield Case("smart: no siteToken header", 400, "InvalidSiteToken", "POST", offline, headers=smart(mysite, siteToken=None), body=good)
    yield Case("smart: no channel header", 400, "MissingOrMalformedChannel", "POST", offline, headers=smart(mysite, channel=None), body=good)
    yield Case("smart: malformed channel", 400, "MissingOrMalformedChannel", "POST", offline, headers=smart(mysite, channel="Store"), body=good)
    yield Case("smart: unknown site", 401, "InvalidSiteToken", "POST", offline, headers=smart(mysite, site="nosite"), body=good)
    yield Case("smart: wrong token", 401, "InvalidSiteToken", "POST", offline, headers=smart(mysite, siteToken="x"), body=good)
    yield Case("smart: token of another channel", 401, "InvalidSiteToken", "POST", offline, headers=smart(mysite, channel="tv"), body=good)
    yield Case("smart: text body", 415, "UnsupportedMediaType", "POST", offline, headers=smart(mysite, **TEXT_TYPE), body=good)
    yield Case("smart: no content type", 415, "UnsupportedMediaType", "POST", offline, headers=smart(mysite, **{"Content-Type": None}), body=good)
    yield Case("smart: no body", 400, "MalformedJson", "POST", offline, headers=smart(mysite))
    yield Case("smart: not JSON", 400, "MalformedJson", "POST", offline, headers=smart(mysite), body=b"{order")
    yield Case("smart: no refCode", 400, "MissingOrMalformedOrderNo", "POST", offline, headers=smart(mysite), body=offline_body("", ("A", 1, "1")))
    yield Case("smart: no items", 400, "MissingOrMalformedItems", "POST", offline, headers=smart(mysite), body=offline_body("NEW1"))
    yield Case("smart: currency", 400, "MissingOrMalformedCurrency", "POST", offline, headers=smart(mysite), body=offline_body("NEW1", ("A", 1, "1"), currency=7))
    yield Case("smart: total", 400, "MissingOrMalformedTotal", "POST", offline, headers=smart(mysite), body=offline_body("NEW1", ("A", 1, "1"), total="1.0000001"))
    yield Case("smart: subTotal", 400, "MissingOrMalformedSubtotal", "POST", offline, headers=smart(mysite), body=offline_body("NEW1", ("A", 1, "1"), subTotal="-1"))
    yield Case("smart: shipping", 400, "MissingOrMalformedShipping", "POST", offline, headers=smart(mysite), body=offline_body("NEW1", ("A", 1, "1"), shipping="free"))
    yield Case("smart: user", 400, "MissingOrMalformedUser", "POST", offline, headers=smart(mysite), body={**good, "user": {"info": {}}})
    yield Case("smart: orderDate", 400, "MissingOrMalformedOrderDate", "POST", offline, headers=smart(mysite), body=offline_body("NEW1", ("A", 1, "1"), orderDate="2017-02-30T10:00:00"))
    yield Case("smart: changed order, updates off", 409, "OrderConflict", "POST", offline, headers=smart(locked), body=offline_body("L1", ("A", 9, "1")))
    yield Case("smart: too large", 413, "PayloadTooLarge", "POST", offline, headers=smart(mysite), body=TOO_BIG)
    yield Case("smart: GET", 405, "MethodNotAllowed", "GET", offline, headers=smart(mysite))
    yield Case("smart: PUT an order", 405, "MethodNotAllowed", "PUT", f"/tracker{offline}/R1", headers=smart(mysite), body=good)
    yield Case("delete: cancellations off", 403, "CancellationsNotEnabled", "DELETE", f"{offline}/L1", headers=smart(locked))
    yield Case("delete: wrong token", 401, "InvalidSiteToken", "DELETE", f"{offline}/R1", headers=smart(mysite, siteToken="x"))
    yield Case("delete: no channel header", 400, "MissingOrMalformedChannel", "DELETE", f"{offline}/R1", headers=smart(mysite, channel=None))
    yield Case("delete: other channel", 409, "ChannelMismatch", "DELETE", f"/tracker{offline}/R1", headers=smart(mysite, "tv"))
    yield Case("delete: line not in order", 409, "LineNotFound", "DELETE", f"{offline}/R1", headers=smart(mysite), body={"items": [{"refCode": "Z"}]})
    yield Case("delete: qty above live", 409, "QuantityExceedsRemaining", "DELETE", f"{offline}/R1", headers=smart(mysite), body={"items": [{"refCode": "A", "qty": 3}]})
    yield Case("delete: order number too long", 400, "MissingOrMalformedOrderNo", "DELETE", f"{offline}/{'R' * 129}", headers=smart(mysite))
    yield Case("delete: order number not UTF-8", 400, "MissingOrMalformedOrderNo", "DELETE", f"{offline}/R%C3", headers=smart(mysite))
    yield Case("delete: malformed items", 400, "MissingOrMalformedItems", "DELETE", f"{offline}/R1", headers=smart(mysite), body={"items": "A"})
    yield Case("delete: text body", 415, "UnsupportedMediaType", "DELETE", f"{offline}/R1", headers=smart(mysite, **TEXT_TYPE), body={"items": [{"refCode": "A"}]})
    yield Case("delete: too large", 413, "PayloadTooLarge", "DELETE", f"{offline}/R1", headers=smart(mysite), body=TOO_BIG)

    api = "/api/v1/sites"
    yield Case("admin: no token", 401, "InvalidAdminToken", "GET", f"{api}/mysite")
    yield Case("admin: wrong token", 401, "InvalidAdminToken", "POST", api, headers={"Authorization": "Bearer nope"}, body={"name": "x"})
    yield Case("admin: bad site name", 400, "SiteNotRecognized", "POST", api, headers=ADMIN_JSON, body={"name": "my site"})
    yield Case("admin: site exists", 409, "OrderConflict", "POST", api, headers=ADMIN_JSON, body={"name": "mysite"})
    yield Case("admin: form body", 415, "UnsupportedMediaType", "POST", api, headers={**AUTH, **FORM_TYPE}, body=b"name=x")
    yield Case("admin: not JSON", 400, "MalformedJson", "POST", api, headers={**AUTH, **JSON_TYPE}, body=b"{")
    yield Case("admin: too large", 413, "PayloadTooLarge", "POST", api, headers={**AUTH, **JSON_TYPE}, body=TOO_BIG)
    yield Case("admin: unknown site", 404, "SiteNotRecognized", "GET", f"{api}/nosite", headers=AUTH)
    yield Case("admin: bad setting", 400, "MalformedJson", "PATCH", f"{api}/mysite", headers=ADMIN_JSON, body={"cancellations": "off"})
    yield Case("admin: unknown setting", 400, "MalformedJson", "PATCH", f"{api}/mysite", headers=ADMIN_JSON, body={"colour": "red"})
    yield Case("admin: bad channel", 400, "MissingOrMalformedChannel", "POST", f"{api}/mysite/tokens", headers=ADMIN_JSON, body={"channel": "Web"})
    yield Case("admin: unknown order", 404, "OrderNotFound", "GET", f"{api}/mysite/orders/NOPE", headers=AUTH)
    yield Case("admin: bad source", 400, "MissingOrMalformedParameter", "GET", f"{api}/mysite/orders/O1", {"source": "shop"}, AUTH)
    yield Case("admin: bad state", 400, "MissingOrMalformedParameter", "GET", f"{api}/mysite/orders", {"state": "gone"}, AUTH)
    yield Case("admin: bad cursor", 400, "MissingOrMalformedParameter", "GET", f"{api}/mysite/orders", {"cursor": "x"}, AUTH)
    yield Case("admin: bad by", 400, "MissingOrMalformedParameter", "GET", f"{api}/mysite/recs/top-sellers", {"by": "profit"}, AUTH)
    yield Case("admin: bad days", 400, "MissingOrMalformedParameter", "GET", f"{api}/mysite/recs/top-sellers", {"days": "0"}, AUTH)
    yield Case("admin: no refCode", 400, "MissingOrMalformedItems", "GET", f"{api}/mysite/recs/bought-together", headers=AUTH)
    yield Case("admin: no cuid or userId", 400, "MissingOrMalformedCuid", "GET", f"{api}/mysite/history", headers=AUTH)
    yield Case("admin: bad report range", 400, "MissingOrMalformedParameter", "GET", f"{api}/mysite/reports/daily", {"from": "2026-11-28", "to": "2026-11-27"}, AUTH)
    yield Case("admin: DELETE a site", 405, "MethodNotAllowed", "DELETE", f"{api}/mysite", headers=AUTH)

    yield Case("ops: unknown path", 404, "NotFound", "GET", "/nope")
    yield Case("ops: root", 404, "NotFound", "GET", "/")
    yield Case("ops: POST healthz", 405, "MethodNotAllowed", "POST", "/healthz")
    yield Case("ops: POST readyz", 405, "MethodNotAllowed", "POST", "/readyz")
    yield Case("ops: DELETE metrics", 405, "MethodNotAllowed", "DELETE", "/metrics")
    # fmt: on


def send(client: TestClient, case: Case) -> Any:
    content = case.body
    if content is not None and not isinstance(content, bytes):
        content = json.dumps(content).encode()
    return client.request(
        case.method, case.path, params=case.params, headers=case.headers, content=content
    )


def shape_problems(case: Case, response: Any) -> list[str]:
    """What is wrong with this error reply; empty when it has the one shape."""
    problems = []
    if response.status_code != case.status:
        problems.append(f"HTTP {response.status_code}, not {case.status}")
    if response.headers.get("content-type") != MEDIA_TYPE:
        problems.append(f"Content-Type {response.headers.get('content-type')!r}")
    if "retry-after" in response.headers:
        problems.append("Retry-After on a reply that is not 429/503")
    try:
        body = response.json()
    except ValueError:
        return [*problems, f"body is not JSON: {response.text[:80]!r}"]
    if not isinstance(body, dict) or set(body) != {"status", "errors"}:
        return [*problems, f"keys {sorted(body) if isinstance(body, dict) else body!r}"]
    if body["status"] != "fail":
        problems.append(f"status {body['status']!r}")
    errors = body["errors"]
    if not isinstance(errors, list) or len(errors) != 1 or not isinstance(errors[0], dict):
        return [*problems, f"errors {errors!r}"]
    if set(errors[0]) != {"code", "message"}:
        problems.append(f"error keys {sorted(errors[0])}")
    if errors[0].get("code") != case.code:
        problems.append(f"code {errors[0].get('code')!r}, not {case.code!r}")
    message = errors[0].get("message")
    if not isinstance(message, str) or not message.strip():
        problems.append(f"message {message!r}")
    return problems


def test_every_error_path_has_the_one_shape_and_changes_nothing(api: Api) -> None:
    mysite = api.create_site("mysite", cancellations=True)
    locked = api.create_site("locked")
    tok = api.create_site("tok", cancellations=True, cancelAuth="token")
    placed = api.place(mysite, order_body("O1", ("A", 3, "1.00"), ("B", 1, "2.50")))
    s1 = placed.json()["session"]
    assert api.offline(mysite, offline_body("R1", ("A", 2, "1.25")), "store").status_code == 201
    api.client.patch("/api/v1/sites/locked", json={"offlineOrdersAffectCrowd": True}, headers=AUTH)
    assert api.offline(locked, offline_body("L1", ("A", 1, "1"), ("B", 1, "1"))).status_code == 201
    tok_page = api.page(tok, type="home").json()["session"]
    assert api.delete_offline(mysite, "HELD1").status_code == 202
    sessions = {"mysite": s1, "tok": {"session": tok_page["session"], "cuid": tok_page["cuid"]}}
    sites = ["mysite", "locked", "tok"]
    before = snapshot(api, sites, s1["cuid"])
    assert before["mysite"]["check"] == []
    assert before["mysite"]["units"] == [{"refCode": "A", "score": 3}, {"refCode": "B", "score": 1}]

    walked = list(cases(mysite, locked, tok, sessions))
    found = {}
    for case in walked:
        problems = shape_problems(case, send(api.client, case))
        if problems:
            found[case.name] = problems
    assert found == {}
    assert len({case.name for case in walked}) == len(walked)
    assert snapshot(api, sites, s1["cuid"]) == before
    assert api.client.get("/api/v1/sites/x", headers=AUTH).status_code == 404


def test_every_status_code_of_the_contract_is_walked() -> None:
    site = {
        "name": "s",
        "clientTokens": {"web": "w"},
        "siteTokens": {"store": "s", "tv": "t"},
    }
    walked = list(cases(site, site, site, {"mysite": {"session": "", "cuid": ""}, "tok": {}}))
    assert {case.status for case in walked} == {400, 401, 403, 404, 405, 409, 413, 415}
    codes = {case.code for case in walked}
    # Every failure code of API.md 2 that a request can cause (CancelledOnArrival and
    # OrderNotFound-as-warning are warnings; Overloaded has its own test below).
    assert {
        "MalformedJson",
        "TypeNotRecognized",
        "SiteNotRecognized",
        "MissingOrMalformedOrderNo",
        "MissingOrMalformedBasket",
        "MissingOrMalformedCurrency",
        "MissingOrMalformedSubtotal",
        "MissingOrMalformedShipping",
        "MissingOrMalformedTotal",
        "MissingOrMalformedItems",
        "MissingOrMalformedSession",
        "MissingOrMalformedCuid",
        "MissingOrMalformedUser",
        "MissingOrMalformedOrderDate",
        "MissingOrMalformedChannel",
        "InvalidClientToken",
        "InvalidSiteToken",
        "InvalidAdminToken",
        "SessionNotRecognized",
        "CancellationsNotEnabled",
        "OrderNotFound",
        "OrderConflict",
        "ChannelMismatch",
        "LineNotFound",
        "QuantityExceedsRemaining",
        "ConflictingParameters",
        "ApiVersionNotSupported",
        "PayloadTooLarge",
        "UnsupportedMediaType",
    } <= codes


def test_warnings_carry_errors_in_the_same_shape_with_a_2xx(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    held = api.delete_offline(site, "R1")
    arrived = api.offline(site, offline_body("R1", ("A", 1, "1")))
    for response, status, code in [
        (held, 202, "OrderNotFound"),
        (arrived, 201, "CancelledOnArrival"),
    ]:
        body = response.json()
        assert (response.status_code, body["status"], response.headers["content-type"]) == (
            status,
            "warning",
            MEDIA_TYPE,
        )
        assert [set(error) for error in body["errors"]] == [{"code", "message"}]
        assert body["errors"][0]["code"] == code
    ok = api.offline(site, offline_body("R2", ("A", 1, "1")))
    assert ok.json() == {"status": "OK", "order": {"refCode": "R2", "state": "placed"}}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/sites/mysite", "GET, HEAD, PATCH"),
        ("PUT", "/api/v1/sites", "POST"),
        ("GET", "/smart-api/orders/offline", "POST"),
        ("POST", "/tracker/smart-api/orders/offline/R1", "DELETE"),
        ("PUT", "/tracker/api/v1_4/rest.pagex", "GET, HEAD, POST"),
        ("PUT", "/tracker/api/v1_4/mysite/order/cancel.pagex", "GET, HEAD, POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
def test_method_not_allowed_lists_every_method_of_the_path(
    api: Api, method: str, path: str, allowed: str
) -> None:
    response = api.client.request(method, path, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json() == {
        "status": "fail",
        "errors": [{"code": "MethodNotAllowed", "message": f"{method} is not allowed on {path}"}],
    }


def test_an_unknown_path_is_404_in_the_envelope(api: Api) -> None:
    response = api.client.get("/smart-api/orders")
    assert response.status_code == 404
    assert response.headers["content-type"] == MEDIA_TYPE
    assert response.json() == {
        "status": "fail",
        "errors": [{"code": "NotFound", "message": "no such endpoint: /smart-api/orders"}],
    }


def test_an_overloaded_writer_answers_503_with_retry_after_and_changes_nothing(
    tmp_path: Path, clock: Any
) -> None:
    """A full write queue (one waiting write, one running) refuses the next write at once."""
    store = SqliteStore(str(tmp_path / "busy.db"), max_queue=1)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'busy.db'}", admin_token=ADMIN)
    started, release = threading.Event(), threading.Event()

    def hold_the_writer(repo: Any) -> None:
        started.set()
        release.wait()

    try:
        with TestClient(create_app(settings, store=store, clock=clock)) as client:
            made = client.post("/api/v1/sites", json={"name": "mysite"}, headers=AUTH)
            site = made.json()["site"]
            running = store.submit(hold_the_writer)
            assert started.wait(timeout=30)
            waiting = store.submit(lambda repo: None)
            headers = {
                "site": "mysite",
                "siteToken": site["siteTokens"]["store"],
                "channel": "store",
                **JSON_TYPE,
            }
            answers = [
                client.post(
                    "/smart-api/orders/offline",
                    json=offline_body("R1", ("A", 1, "1")),
                    headers=headers,
                ),
                client.post("/api/v1/sites", json={"name": "other"}, headers=AUTH),
                client.delete("/smart-api/orders/offline/R1", headers=headers),
            ]
            ready = client.get("/readyz")  # reads do not wait for the writer
            release.set()
            running.result(timeout=30)
            waiting.result(timeout=30)
            for response in answers:
                assert response.status_code == 503
                assert response.headers["content-type"] == MEDIA_TYPE
                assert response.headers["retry-after"] == "1"
                assert response.json() == {
                    "status": "fail",
                    "errors": [
                        {
                            "code": "Overloaded",
                            "message": "the server is taking more writes than it can commit;"
                            " retry shortly",
                        }
                    ],
                }
            assert (ready.status_code, ready.json()) == (200, {"status": "OK"})
            orders = client.get("/api/v1/sites/mysite/orders", headers=AUTH)
            assert orders.json()["orders"] == []
            assert client.get("/api/v1/sites/other", headers=AUTH).status_code == 404
            retried = client.post(
                "/smart-api/orders/offline",
                json=offline_body("R1", ("A", 1, "1")),
                headers=headers,
            )
            assert retried.status_code == 201
    finally:
        release.set()
        store.close()
