"""Helpers for tests: the vendor's own examples and short ways to call each surface."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.testclient import TestClient

from recotrack.services.check import check_site
from recotrack.store import Store

ADMIN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}

# The vendor documentation's own examples (vendor-reference.md 3.3, 7.1, 6.1).
VENDOR_SESSION = "123456789012|a1b2c3d4e5A6B7C8D9E0f1g2h3i4j5F1G2H3I4J5k1l"
VENDOR_CUID = "09876543210|Z0Y9X8W7V6z5y4x3w2v1U0T9S8R7Q6u5t4s3r2q1P0O"
VENDOR_ORDER = {
    "orderNo": "ABC-DE-123456",
    "items": [
        {"refCode": "PROD500", "qty": 2, "price": 25.5},
        {"refCode": "PROD600", "qty": 4, "price": 12.0},
    ],
    "currency": "GBP",
    "subtotal": 99.0,
    "shipping": 3.0,
    "total": 102.0,
}
VENDOR_OFFLINE = {
    "lang": "en-gb",
    "user": {"id": "abcd1234efgh", "info": {"gender": "male"}},
    "order": {
        "refCode": "orderRef123",
        "orderDate": "2017-04-23T14:25:00 GMT",
        "customerId": "SomeCustomerId",
        "currency": "GBP",
        "shipping": 0.0,
        "subTotal": 100.0,
        "total": 100.0,
        "items": [
            {"refCode": "ref1", "qty": 1, "price": 50.0},
            {"refCode": "ref2", "qty": 2, "price": 20.0, "attributes": {"pricerange": "cheap"}},
        ],
    },
}


def order_body(
    order_no: str, *lines: tuple[str, int, str], currency: str = "GBP"
) -> dict[str, Any]:
    """An order object from (refCode, qty, price) lines, with exact totals."""
    from decimal import Decimal

    subtotal = sum((Decimal(price) * qty for _, qty, price in lines), Decimal(0))
    return {
        "orderNo": order_no,
        "items": [{"refCode": ref, "qty": qty, "price": price} for ref, qty, price in lines],
        "currency": currency,
        "subtotal": str(subtotal),
        "shipping": "0",
        "total": str(subtotal),
    }


class Api:
    """The app in process, with the shortcuts tests need."""

    def __init__(self, client: TestClient, store: Store, clock: Callable[[], datetime]) -> None:
        self.client = client
        self.store = store
        self.clock = clock

    # -- management ---------------------------------------------------------------------

    def create_site(self, name: str = "mysite", **settings: Any) -> dict[str, Any]:
        response = self.client.post("/api/v1/sites", json={"name": name, **settings}, headers=AUTH)
        assert response.status_code == 201, response.text
        site: dict[str, Any] = response.json()["site"]
        return site

    def admin_get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        return response.json()

    def top_sellers(self, site: str = "mysite", **params: Any) -> list[tuple[str, Any]]:
        recs = self.admin_get(f"/api/v1/sites/{site}/recs/top-sellers", **params)["recs"]
        return [(rec["refCode"], rec["score"]) for rec in recs]

    def bought_together(self, site: str, *ref_codes: str, **params: Any) -> list[tuple[str, int]]:
        recs = self.admin_get(
            f"/api/v1/sites/{site}/recs/bought-together", refCode=list(ref_codes), **params
        )["recs"]
        return [(rec["refCode"], rec["score"]) for rec in recs]

    def order(self, site: str, order_no: str, **params: Any) -> dict[str, Any]:
        order: dict[str, Any] = self.admin_get(f"/api/v1/sites/{site}/orders/{order_no}", **params)[
            "order"
        ]
        return order

    # -- tracker ------------------------------------------------------------------------

    def page(
        self, site: dict[str, Any], version: str = "v1_4", channel: str = "web", **fields: Any
    ) -> Any:
        """rest.pagex by GET with jd; returns the response."""
        jd = {
            "site": site["name"],
            "clientToken": site["clientTokens"][channel],
            "session": "new",
            "cuid": "new",
            "lang": "en-gb",
            "channel": channel,
            **fields,
        }
        return self.client.get(f"/tracker/api/{version}/rest.pagex", params={"jd": json.dumps(jd)})

    def place(self, site: dict[str, Any], order: dict[str, Any], **fields: Any) -> Any:
        return self.page(site, type="order", order=order, **fields)

    def cancel(self, site: str, version: str = "v1_4", **params: Any) -> Any:
        return self.client.post(f"/tracker/api/{version}/{site}/order/cancel.pagex", params=params)

    # -- smart API ----------------------------------------------------------------------

    def smart_headers(self, site: dict[str, Any], channel: str = "store") -> dict[str, str]:
        return {
            "site": site["name"],
            "siteToken": site["siteTokens"][channel],
            "channel": channel,
            "Content-Type": "application/json",
        }

    def offline(self, site: dict[str, Any], body: dict[str, Any], channel: str = "store") -> Any:
        return self.client.post(
            "/smart-api/orders/offline", json=body, headers=self.smart_headers(site, channel)
        )

    def delete_offline(
        self, site: dict[str, Any], order_no: str, channel: str = "store", prefix: str = ""
    ) -> Any:
        return self.client.delete(
            f"{prefix}/smart-api/orders/offline/{order_no}",
            headers=self.smart_headers(site, channel),
        )

    # -- consistency --------------------------------------------------------------------

    def assert_consistent(self, site: str = "mysite") -> None:
        """The read model equals a recomputation from the stored orders."""
        assert self.store.read_sync(lambda reads: check_site(reads, site)) == []
