"""The OpenAPI description is valid, and true: it names every route with its methods and no
other, every error code, and real answers of every surface match its response schemas."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import httpx2
import pytest
import schemathesis
from openapi_spec_validator import validate
from starlette.routing import Route

from recotrack.domain.errors import STATUS
from recotrack.http.app import create_app
from recotrack.http.openapi import spec
from recotrack.settings import Settings

from .support import AUTH, VENDOR_CUID, VENDOR_OFFLINE, VENDOR_ORDER, VENDOR_SESSION, Api

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _template(path: str) -> str:
    """``/a/{site}/b/{order_no:path}`` and ``/a/{site}/b/{orderNo}`` are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_the_description_is_valid_openapi() -> None:
    description = spec()
    validate(description)
    assert description["openapi"].startswith("3.")


def test_schemathesis_loads_every_operation_from_the_served_description(tmp_path: Any) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db'}", admin_token="x")
    loaded = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    results = list(loaded.get_all_operations())
    assert all(result.ok() for result in results)
    described = {
        f"{m.upper()} {p}" for p, item in spec()["paths"].items() for m in item if m in METHODS
    }
    # schemathesis leaves out the operation it loaded the description from
    assert {result.ok().label for result in results} | {"GET /openapi.json"} == described


def test_every_route_is_described_with_its_methods_and_nothing_else(api: Api) -> None:
    routes: dict[str, set[str]] = {}
    for route in api.client.app.routes:  # type: ignore[attr-defined]
        assert isinstance(route, Route), f"not a plain route: {route!r}"
        # Starlette adds HEAD to every GET route by itself; it is not an operation of ours.
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        routes.setdefault(_template(route.path), set()).update(methods)
    described = {
        _template(path): {method for method in item if method in METHODS}
        for path, item in spec()["paths"].items()
    }
    assert described == routes


def test_every_error_code_is_in_the_enum_and_no_other() -> None:
    enum = spec()["components"]["schemas"]["ErrorCode"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == set(STATUS)


def test_every_failure_status_an_error_code_has_is_answered_somewhere() -> None:
    answered = {
        int(status)
        for item in spec()["paths"].values()
        for method, operation in item.items()
        if method in METHODS
        for status in operation["responses"]
    }
    # 404 NotFound and 405 MethodNotAllowed answer paths and methods no operation has;
    # 500 InternalError is a bug (the fuzz tests look for it).
    expected = {s for c, s in STATUS.items() if c not in ("MethodNotAllowed", "InternalError")}
    assert expected - {200} <= answered


def test_the_served_description_and_docs_page_are_the_description(api: Api) -> None:
    served = api.client.get("/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json; charset=utf-8"
    assert served.json() == spec()
    page = api.client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for path in spec()["paths"]:
        assert f"<code>{path}</code>" in html, path
    for code in STATUS:
        assert f"<code>{code}</code>" in html, code
    # Self-contained: nothing is fetched from anywhere (this server may have no internet).
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html


SCHEMA = schemathesis.openapi.from_dict(spec())


def _operation(method: str, path: str) -> Any:
    return SCHEMA[path][method]


def assert_described(method: str, path: str, response: Any) -> None:
    """The answer's status is one the operation describes, and its body fits that schema."""
    operation = _operation(method, path)
    assert str(response.status_code) in operation.definition.raw["responses"], (
        f"{method} {path} answered {response.status_code}, not described: {response.text}"
    )
    operation.validate_response(response)


def test_response_validation_rejects_an_answer_off_the_description() -> None:
    """The check the next test relies on can fail: a reply without its payload, a status the
    operation does not describe."""
    request = httpx2.Request("GET", "http://testserver/api/v1/sites/mysite")
    for status, body in ((200, {"status": "OK", "name": "mysite"}), (418, {"status": "fail"})):
        off = httpx2.Response(status, json=body, request=request)
        off.elapsed = timedelta(0)
        with pytest.raises(AssertionError):
            assert_described("GET", "/api/v1/sites/{site}", off)


def _walk(api: Api) -> list[tuple[str, str, Any]]:
    """A tour of every surface, answers good and bad: (method, described path, response)."""
    c, seen = api.client, []

    def see(method: str, path: str, response: Any) -> Any:
        seen.append((method, path, response))
        return response

    site = api.create_site("mysite", cancellations=True)
    see("POST", "/api/v1/sites", c.post("/api/v1/sites", json={"name": "other"}, headers=AUTH))
    see("POST", "/api/v1/sites", c.post("/api/v1/sites", json={"name": "other"}, headers=AUTH))
    see("POST", "/api/v1/sites", c.post("/api/v1/sites", json={"name": "x"}))
    s = "/api/v1/sites/{site}"
    see("GET", s, c.get("/api/v1/sites/mysite", headers=AUTH))
    see("GET", s, c.get("/api/v1/sites/nosuch", headers=AUTH))
    see("PATCH", s, c.patch("/api/v1/sites/other", json={"cancelAuth": "open"}, headers=AUTH))
    see("PATCH", s, c.patch("/api/v1/sites/other", json={"color": 1}, headers=AUTH))
    see("PATCH", s, c.patch("/api/v1/sites/other", content=b"{}", headers=AUTH))
    tokens = "/api/v1/sites/{site}/tokens"
    see(
        "POST",
        tokens,
        c.post("/api/v1/sites/other/tokens", json={"channel": "kiosk"}, headers=AUTH),
    )
    see("POST", tokens, c.post("/api/v1/sites/other/tokens", json={"channel": "web"}, headers=AUTH))

    page = "/tracker/api/{version}/rest.pagex"
    placed = see("GET", page, api.place(site, VENDOR_ORDER))
    see("GET", page, api.page(site, type="home"))
    see("GET", page, api.page(site, type="product", product={"refCode": "PROD500"}))
    see("GET", page, api.page(site, version="v9", type="home"))
    see("GET", page, api.page({**site, "clientTokens": {"web": "wrong"}}, type="home"))
    see("GET", page, c.get("/tracker/api/v1_4/rest.pagex?jd=%7B"))
    order = {k: v for k, v in VENDOR_ORDER.items() if k != "subtotal"} | {"orderNo": "W1"}
    see("GET", page, api.place(site, order, info={"smartRecs": {"click": "12345"}}))
    jd = json.dumps(
        {
            "site": "mysite",
            "clientToken": site["clientTokens"]["web"],
            "type": "basket",
            "session": "new",
            "cuid": "new",
            "basket": {"items": [{"refCode": "PROD600", "qty": 1, "price": 12}]},
        }
    )
    form = {"content-type": "application/x-www-form-urlencoded"}
    see("POST", page, c.post("/tracker/api/v1_3/rest.pagex", data={"jd": jd}, headers=form))
    see(
        "POST",
        page,
        c.post(
            "/tracker/api/v1_4/rest.pagex", content=jd, headers={"content-type": "application/json"}
        ),
    )
    see(
        "POST",
        page,
        c.post("/tracker/api/v1_4/rest.pagex", content=jd, headers={"content-type": "text/plain"}),
    )

    cancel = "/tracker/api/{version}/{site}/order/cancel.pagex"
    ids = placed.json()["session"]
    params = {"session": ids["session"], "cuid": ids["cuid"]}
    see(
        "POST",
        cancel,
        api.cancel("mysite", **params, orderNo="ABC-DE-123456", refCode="PROD500", qty="1"),
    )
    see("POST", cancel, api.cancel("mysite", **params, orderNo="ABC-DE-123456", refCode="NOPE"))
    see(
        "POST",
        cancel,
        api.cancel("mysite", **params, orderNo="ABC-DE-123456", refCode="PROD500", qty="5"),
    )
    see(
        "GET",
        cancel,
        c.get(
            "/tracker/api/v1_4/mysite/order/cancel.pagex",
            params={**params, "orderNo": "ABC-DE-123456"},
        ),
    )
    see("POST", cancel, api.cancel("mysite", **params, orderNo="LATER"))
    see("POST", cancel, api.cancel("mysite", session=VENDOR_SESSION, cuid=VENDOR_CUID, orderNo="X"))
    see("POST", cancel, api.cancel("mysite", session="new", cuid=VENDOR_CUID, orderNo="X"))
    see("POST", cancel, api.cancel("other", **params, orderNo="X"))
    see("POST", cancel, api.cancel("nosuch", **params, orderNo="X"))
    see(
        "POST",
        cancel,
        c.post(
            "/tracker/api/v1_4/mysite/order/cancel.pagex?orderNo=A",
            data={"orderNo": "B"},
            headers=form,
        ),
    )

    offline = "/smart-api/orders/offline"
    see("POST", offline, api.offline(site, VENDOR_OFFLINE))
    see("POST", offline, api.offline(site, VENDOR_OFFLINE))
    see("POST", offline, api.offline(site, VENDOR_OFFLINE, channel="tv"))
    see(
        "POST",
        "/tracker" + offline,
        c.post("/tracker" + offline, json={}, headers=api.smart_headers(site)),
    )
    see(
        "POST",
        offline,
        c.post(
            offline,
            content=b"{}",
            headers={**api.smart_headers(site), "content-type": "text/plain"},
        ),
    )
    see(
        "POST",
        offline,
        c.post(
            offline, json=VENDOR_OFFLINE, headers={**api.smart_headers(site), "siteToken": "no"}
        ),
    )
    see("POST", offline, c.post(offline, json=VENDOR_OFFLINE, headers={"site": "mysite"}))
    delete = offline + "/{order_number}"
    see("DELETE", delete, api.delete_offline(site, "orderRef123"))
    see("DELETE", delete, api.delete_offline(site, "orderRef123", channel="callcentre"))
    see("DELETE", "/tracker" + delete, api.delete_offline(site, "unseen", prefix="/tracker"))
    other = api.client.get("/api/v1/sites/other", headers=AUTH)  # cancellations off
    assert other.status_code == 200

    reads = "/api/v1/sites/{site}"
    see(
        "GET",
        reads + "/orders/{orderNo}",
        c.get("/api/v1/sites/mysite/orders/ABC-DE-123456", headers=AUTH),
    )
    see(
        "GET",
        reads + "/orders/{orderNo}",
        c.get("/api/v1/sites/mysite/orders/orderRef123?source=offline", headers=AUTH),
    )
    see("GET", reads + "/orders/{orderNo}", c.get("/api/v1/sites/mysite/orders/none", headers=AUTH))
    see(
        "GET",
        reads + "/orders/{orderNo}",
        c.get("/api/v1/sites/mysite/orders/x?source=shop", headers=AUTH),
    )
    see("GET", reads + "/orders", c.get("/api/v1/sites/mysite/orders?limit=1", headers=AUTH))
    see("GET", reads + "/orders", c.get("/api/v1/sites/mysite/orders?state=gone", headers=AUTH))
    see("GET", reads + "/held", c.get("/api/v1/sites/mysite/held", headers=AUTH))
    for by in ("units", "revenue"):
        see(
            "GET",
            reads + "/recs/top-sellers",
            c.get(f"/api/v1/sites/mysite/recs/top-sellers?by={by}", headers=AUTH),
        )
    see(
        "GET",
        reads + "/recs/bought-together",
        c.get("/api/v1/sites/mysite/recs/bought-together?refCode=PROD600", headers=AUTH),
    )
    see(
        "GET",
        reads + "/recs/bought-together",
        c.get("/api/v1/sites/mysite/recs/bought-together", headers=AUTH),
    )
    see(
        "GET",
        reads + "/history",
        c.get(f"/api/v1/sites/mysite/history?cuid={ids['cuid']}", headers=AUTH),
    )
    see(
        "GET",
        reads + "/history",
        c.get("/api/v1/sites/mysite/history?userId=abcd1234efgh", headers=AUTH),
    )
    see(
        "GET",
        reads + "/reports/daily",
        c.get("/api/v1/sites/mysite/reports/daily?from=2017-04-01&to=2026-12-31", headers=AUTH),
    )
    see(
        "GET",
        reads + "/reports/daily",
        c.get("/api/v1/sites/mysite/reports/daily?from=2026-12-31&to=2026-01-01", headers=AUTH),
    )

    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        see("GET", path, c.get(path))
    return seen


def test_real_answers_of_every_surface_match_their_response_schemas(api: Api) -> None:
    seen = _walk(api)
    statuses: dict[str, set[int]] = {}
    for method, path, response in seen:
        assert_described(method, path, response)
        statuses.setdefault(f"{method} {path}", set()).add(response.status_code)
    # The tour reaches every operation, and most with more than one kind of answer.
    labels = {
        f"{m.upper()} {p}" for p, item in spec()["paths"].items() for m in item if m in METHODS
    }
    assert set(statuses) == labels
    assert sum(len(s) for s in statuses.values()) >= 45
