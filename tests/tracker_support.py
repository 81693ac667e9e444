"""Shortcuts the tracker tests share (API.md sections 4 and 5): error shapes, sessions,
statistics through the management API, and cancel.pagex calls."""

from __future__ import annotations

import re
from typing import Any

from recotrack.domain.sessions import Session, canonical_session

from .support import AUTH, Api

DAY = "2026-11-27"  # the day of the test clock's start

SESSION_V1_4 = re.compile(r"\d{12}\|[0-9A-Za-z]{43}")
CUID_V1_4 = re.compile(r"\d{11}\|[0-9A-Za-z]{43}")
SESSION_SLASH = re.compile(r"\d{12}/[0-9A-Za-z]{43}")
CUID_SLASH = re.compile(r"\d{11}/[0-9A-Za-z]{43}")
PAGE_TRACKING_ID = re.compile(r"\d{9}/[0-9A-Za-z]{22}")

EMPTY_DAY = {
    "orders": 0,
    "units": 0,
    "revenue": "0.00",
    "cancelledOrders": 0,
    "cancelledRevenue": "0.00",
}


def fail(response: Any, status: int, code: str) -> str:
    """Assert the one error shape (API.md 2) and return the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"status", "errors"}, body
    assert body["status"] == "fail"
    assert [error["code"] for error in body["errors"]] == [code], body
    message: str = body["errors"][0]["message"]
    assert message
    return message


def codes(response: Any) -> list[str]:
    return [error["code"] for error in response.json().get("errors", [])]


def pair(response: Any) -> dict[str, str]:
    """The ``session`` object of a tracker response: ``{"session", "cuid"}``."""
    issued: dict[str, str] = response.json()["session"]
    return issued


def recs(response: Any) -> list[str]:
    """The refCodes of the page's one widget."""
    widgets = response.json()["smartRecs"]
    assert len(widgets) == 1, widgets
    return [rec["refCode"] for rec in widgets[0]["recs"]]


def patch_site(api: Api, site: str, **settings: Any) -> None:
    response = api.client.patch(f"/api/v1/sites/{site}", json=settings, headers=AUTH)
    assert response.status_code == 200, response.text


def report(api: Api, site: str, day: str = DAY) -> dict[str, Any]:
    """The daily report row of ``day`` without its date."""
    days = api.admin_get(f"/api/v1/sites/{site}/reports/daily", **{"from": day, "to": day})
    row: dict[str, Any] = days["days"][0]
    assert row.pop("date") == day
    return row


def history(api: Api, site: str, **who: str) -> list[tuple[str, int]]:
    """A buyer's live history by ``cuid=`` or ``userId=``: (refCode, quantity), sorted."""
    rows = api.admin_get(f"/api/v1/sites/{site}/history", **who)["history"]
    return sorted((row["refCode"], row["quantity"]) for row in rows)


def held(api: Api, site: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.admin_get(f"/api/v1/sites/{site}/held")["held"]
    return rows


def events(api: Api, site: str, order_no: str, **params: Any) -> list[str]:
    return [event["event"] for event in api.order(site, order_no, **params)["history"]]


def lines(api: Api, site: str, order_no: str, **params: Any) -> list[tuple[str, int, int]]:
    """(refCode, quantity, live quantity) of each line of an order."""
    order = api.order(site, order_no, **params)
    return [(line["refCode"], line["quantity"], line["liveQuantity"]) for line in order["lines"]]


def order_count(api: Api, site: str) -> int:
    return len(api.admin_get(f"/api/v1/sites/{site}/orders")["orders"])


def statistics(api: Api, site: str) -> dict[str, Any]:
    """Everything section 7 counts for a site today, through the management API."""
    return {
        "units": api.top_sellers(site, by="units"),
        "revenue": api.top_sellers(site, by="revenue"),
        "report": report(api, site),
    }


def open_session(api: Api, site: dict[str, Any], version: str = "v1_4", **fields: Any) -> Any:
    """A home page view with session and cuid "new": the response holds the issued pair."""
    response = api.page(site, version, type="home", **fields)
    assert response.status_code == 200, response.text
    return pair(response)


def cancel(api: Api, site: str, who: dict[str, str], order_no: str, **extra: str) -> Any:
    """cancel.pagex by POST with the parameters in the query string."""
    return api.cancel(site, session=who["session"], cuid=who["cuid"], orderNo=order_no, **extra)


def stored_session(api: Api, site: str, session_id: str) -> Session | None:
    """The session as the store keeps it (there is no HTTP view of a session's basket)."""
    key = canonical_session(session_id)
    return api.store.read_sync(lambda repo: repo.get_session(site, key))


def session_purchases(api: Api, site: str, session_id: str) -> list[tuple[str, int]]:
    key = canonical_session(session_id)
    return api.store.read_sync(lambda repo: repo.session_purchases(site, key))


def jd(site: dict[str, Any], /, channel: str = "web", **fields: Any) -> dict[str, Any]:
    """A page-tracking JSON with the site's clientToken and a new session and cuid."""
    return {
        "site": site["name"],
        "clientToken": site["clientTokens"][channel],
        "session": "new",
        "cuid": "new",
        "lang": "en-gb",
        "channel": channel,
        **fields,
    }
