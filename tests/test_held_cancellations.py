"""Held cancellations (API.md 5.4, and the last row of 5.1's table): a cancel that arrives
before its order is held, shown in the management API, applied on arrival (whole or partial,
online and offline) so the order is never counted, held once when retried, and dropped after
``pendingCancelDays``."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Clock
from .support import VENDOR_OFFLINE, VENDOR_ORDER, Api, order_body
from .tracker_support import (
    EMPTY_DAY,
    cancel,
    codes,
    events,
    held,
    history,
    lines,
    open_session,
    patch_site,
    report,
    statistics,
)

AT = "2026-11-27T12:00:00.000000Z"
LATE = {**VENDOR_ORDER, "orderNo": "LATE-1"}
OFFLINE_DAY = "2017-04-23"  # VENDOR_OFFLINE's orderDate
ARRIVED_CANCELLED = (
    "a cancellation for order 'LATE-1' arrived first and was applied;"
    " the cancelled quantities are not counted"
)


def _delete_lines(api: Api, site: dict[str, Any], order_no: str, items: list[Any]) -> Any:
    """The smart API's DELETE with the partial-cancel extension body."""
    return api.client.request(
        "DELETE",
        f"/smart-api/orders/offline/{order_no}",
        content=json.dumps({"items": items}),
        headers=api.smart_headers(site),
    )


# -- online ---------------------------------------------------------------------------------


def test_a_whole_cancel_before_its_order_is_held_then_applied_on_arrival(
    api: Api, clock: Clock
) -> None:
    site = api.create_site(cancellations=True)
    who = open_session(api, site)
    early = cancel(api, "mysite", who, "LATE-1", reason="payment failed")
    assert early.status_code == 202
    assert early.json()["order"] == {"orderNo": "LATE-1", "state": "cancel-pending"}
    assert held(api, "mysite") == [
        {
            "source": "online",
            "channel": "",
            "orderNo": "LATE-1",
            "items": None,
            "at": AT,
            "expiresAt": "2026-12-27T12:00:00.000000Z",
            "session": who["session"],
            "cuid": who["cuid"],
            "reason": "payment failed",
        }
    ]
    clock.advance(hours=1)
    arrived = api.place(site, LATE, user={"id": "user-1"}, **who)
    assert arrived.status_code == 200
    body = arrived.json()
    assert body["status"] == "warning"
    assert body["errors"] == [{"code": "CancelledOnArrival", "message": ARRIVED_CANCELLED}]
    assert body["order"] == {"orderNo": "LATE-1", "state": "cancelled"}
    assert statistics(api, "mysite") == {
        "units": [],
        "revenue": [],
        "report": {**EMPTY_DAY, "cancelledOrders": 1, "cancelledRevenue": "99.00"},
    }
    assert api.bought_together("mysite", "PROD500") == []
    assert history(api, "mysite", cuid=who["cuid"]) == []
    assert history(api, "mysite", userId="user-1") == []
    assert lines(api, "mysite", "LATE-1") == [("PROD500", 2, 0), ("PROD600", 4, 0)]
    assert held(api, "mysite") == []
    entries = api.order("mysite", "LATE-1")["history"]
    assert [(e["event"], e["at"], e["reason"], e.get("detail")) for e in entries] == [
        ("held", AT, "payment failed", "whole order"),
        ("placed", "2026-11-27T13:00:00.000000Z", "", None),
        ("applied", "2026-11-27T13:00:00.000000Z", "payment failed", "whole order"),
    ]
    api.assert_consistent()


def test_an_order_that_arrived_cancelled_stays_uncounted_when_resent_or_cancelled_again(
    api: Api,
) -> None:
    site = api.create_site(cancellations=True)
    who = open_session(api, site)
    cancel(api, "mysite", who, "LATE-1")
    api.place(site, LATE, **who)
    after_arrival = statistics(api, "mysite")
    reload = api.place(site, LATE, **who)
    assert reload.json()["status"] == "OK"
    assert reload.json()["order"] == {"orderNo": "LATE-1", "state": "cancelled"}
    again = cancel(api, "mysite", who, "LATE-1")
    assert (again.status_code, again.json()["order"]["state"]) == (200, "cancelled")
    assert statistics(api, "mysite") == after_arrival
    assert after_arrival["report"]["cancelledOrders"] == 1
    api.assert_consistent()


def test_a_partial_cancel_before_its_order_is_applied_on_arrival(api: Api) -> None:
    site = api.create_site(cancellations=True)
    who = open_session(api, site)
    first = cancel(api, "mysite", who, "LATE-1", refCode="PROD500", qty="1")
    second = cancel(api, "mysite", who, "LATE-1", refCode="PROD600")
    assert (first.status_code, second.status_code) == (202, 202)
    assert [row["items"] for row in held(api, "mysite")] == [
        [{"refCode": "PROD500", "qty": 1}],
        [{"refCode": "PROD600", "qty": None}],
    ]
    arrived = api.place(site, LATE, **who)
    assert arrived.json()["status"] == "warning"
    assert codes(arrived) == ["CancelledOnArrival"]
    assert arrived.json()["order"] == {"orderNo": "LATE-1", "state": "partially-cancelled"}
    assert lines(api, "mysite", "LATE-1") == [("PROD500", 2, 1), ("PROD600", 4, 0)]
    assert statistics(api, "mysite") == {
        "units": [("PROD500", 1)],
        "revenue": [("PROD500", "25.50")],
        "report": {
            "orders": 1,
            "units": 1,
            "revenue": "25.50",
            "cancelledOrders": 0,
            "cancelledRevenue": "73.50",
        },
    }
    assert history(api, "mysite", cuid=who["cuid"]) == [("PROD500", 1)]
    assert events(api, "mysite", "LATE-1") == ["held", "held", "placed", "applied", "applied"]
    assert held(api, "mysite") == []
    api.assert_consistent()


def test_a_retried_whole_cancel_is_held_once(api: Api) -> None:
    site = api.create_site(cancellations=True)
    who = open_session(api, site)
    answers = [cancel(api, "mysite", who, "LATE-1").json() for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["order"] == {"orderNo": "LATE-1", "state": "cancel-pending"}
    assert len(held(api, "mysite")) == 1
    api.place(site, LATE)
    assert events(api, "mysite", "LATE-1") == ["held", "placed", "applied"]
    assert report(api, "mysite")["cancelledOrders"] == 1
    api.assert_consistent()


def test_a_held_cancel_expires_after_pending_cancel_days_and_the_late_order_counts(
    api: Api, clock: Clock
) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    who = {"session": "s-1", "cuid": "c-1"}
    cancel(api, "mysite", who, "JUST-IN-TIME")
    cancel(api, "mysite", who, "TOO-LATE")
    clock.advance(days=30, microseconds=-1)
    assert [row["orderNo"] for row in held(api, "mysite")] == ["JUST-IN-TIME", "TOO-LATE"]
    in_time = api.place(site, order_body("JUST-IN-TIME", ("P1", 1, "5.00")))
    assert in_time.json()["order"]["state"] == "cancelled"
    clock.advance(microseconds=1)
    assert held(api, "mysite") == []
    late = api.place(site, order_body("TOO-LATE", ("P2", 2, "3.00")))
    assert late.status_code == 200
    assert late.json()["status"] == "OK"
    assert late.json()["order"] == {"orderNo": "TOO-LATE", "state": "placed"}
    assert api.top_sellers("mysite") == [("P2", 2)]
    assert report(api, "mysite", "2026-12-27") == {
        **EMPTY_DAY,
        "orders": 1,
        "units": 2,
        "revenue": "6.00",
        "cancelledOrders": 1,
        "cancelledRevenue": "5.00",
    }
    assert events(api, "mysite", "TOO-LATE") == ["placed"]
    api.assert_consistent()


def test_pending_cancel_days_is_the_sites_setting(api: Api, clock: Clock) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    patch_site(api, "mysite", pendingCancelDays=2)
    cancel(api, "mysite", {"session": "s-1", "cuid": "c-1"}, "LATE-1")
    assert held(api, "mysite")[0]["expiresAt"] == "2026-11-29T12:00:00.000000Z"
    clock.advance(days=2)
    assert api.place(site, LATE).json()["order"]["state"] == "placed"
    assert api.top_sellers("mysite") == [("PROD600", 4), ("PROD500", 2)]
    api.assert_consistent()


# -- offline --------------------------------------------------------------------------------


def test_an_offline_delete_before_its_order_is_held_then_applied_on_arrival(api: Api) -> None:
    site = api.create_site(cancellations=True, offlineOrdersAffectCrowd=True)
    early = api.delete_offline(site, "orderRef123")
    assert early.status_code == 202
    assert early.json() == {
        "status": "warning",
        "errors": [
            {
                "code": "OrderNotFound",
                "message": "order 'orderRef123' has not been seen yet; the cancellation is held"
                " and applied if it arrives",
            }
        ],
        "order": {"refCode": "orderRef123", "state": "cancel-pending"},
    }
    assert [(r["source"], r["channel"], r["orderNo"], r["items"]) for r in held(api, "mysite")] == [
        ("offline", "store", "orderRef123", None)
    ]
    retried = api.delete_offline(site, "orderRef123", prefix="/tracker")
    assert retried.json() == early.json()
    assert len(held(api, "mysite")) == 1
    arrived = api.offline(site, VENDOR_OFFLINE)
    assert arrived.status_code == 201
    assert arrived.json()["status"] == "warning"
    assert codes(arrived) == ["CancelledOnArrival"]
    assert arrived.json()["order"] == {"refCode": "orderRef123", "state": "cancelled"}
    assert history(api, "mysite", userId="abcd1234efgh") == []
    assert api.top_sellers("mysite", days=3650) == []
    assert report(api, "mysite", OFFLINE_DAY) == {
        **EMPTY_DAY,
        "cancelledOrders": 1,
        "cancelledRevenue": "90.00",
    }
    assert events(api, "mysite", "orderRef123", source="offline") == ["held", "placed", "applied"]
    assert held(api, "mysite") == []
    api.assert_consistent()


def test_an_offline_partial_delete_before_its_order_is_applied_on_arrival(api: Api) -> None:
    site = api.create_site(cancellations=True)
    early = _delete_lines(api, site, "orderRef123", [{"refCode": "ref2", "qty": 1}])
    assert early.status_code == 202
    assert early.json()["order"] == {"refCode": "orderRef123", "state": "cancel-pending"}
    assert held(api, "mysite")[0]["items"] == [{"refCode": "ref2", "qty": 1}]
    arrived = api.offline(site, VENDOR_OFFLINE)
    assert arrived.status_code == 201
    assert codes(arrived) == ["CancelledOnArrival"]
    assert arrived.json()["order"] == {"refCode": "orderRef123", "state": "partially-cancelled"}
    assert history(api, "mysite", userId="abcd1234efgh") == [("ref1", 1), ("ref2", 1)]
    assert report(api, "mysite", OFFLINE_DAY) == {
        "orders": 1,
        "units": 2,
        "revenue": "70.00",
        "cancelledOrders": 0,
        "cancelledRevenue": "20.00",
    }
    assert lines(api, "mysite", "orderRef123", source="offline") == [
        ("ref1", 1, 1),
        ("ref2", 2, 1),
    ]
    api.assert_consistent()


def test_a_held_cancel_applies_only_to_its_own_order_key(api: Api) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    api.delete_offline(site, "orderRef123", channel="store")
    cancel(api, "mysite", {"session": "s-1", "cuid": "c-1"}, "orderRef123")
    on_tv = api.offline(site, VENDOR_OFFLINE, channel="tv")
    assert (on_tv.status_code, on_tv.json()["status"]) == (201, "OK")
    assert on_tv.json()["order"]["state"] == "placed"
    assert [(r["source"], r["channel"]) for r in held(api, "mysite")] == [
        ("offline", "store"),
        ("online", ""),
    ]
    online = api.place(site, {**VENDOR_ORDER, "orderNo": "orderRef123"})
    assert online.json()["order"]["state"] == "cancelled"
    in_store = api.offline(site, VENDOR_OFFLINE, channel="store")
    assert (in_store.status_code, in_store.json()["order"]["state"]) == (201, "cancelled")
    assert held(api, "mysite") == []
    assert history(api, "mysite", userId="abcd1234efgh") == [("ref1", 1), ("ref2", 2)]
    api.assert_consistent()


def test_a_held_line_cancel_that_fits_nothing_gives_no_cancelled_on_arrival(api: Api) -> None:
    site = api.create_site("fits", cancellations=True, cancelAuth="open")
    held = api.cancel("fits", session="s1", cuid="c1", orderNo="F-1", refCode="ZZZ")
    assert held.status_code == 202
    placed = api.place(site, order_body("F-1", ("A", 1, "1.00")))
    assert placed.json()["status"] == "OK"
    assert placed.json()["order"]["state"] == "placed"
    events = [e["event"] for e in api.order("fits", "F-1")["history"]]
    assert events == ["held", "placed", "applied"]
    api.assert_consistent("fits")


def test_expired_held_cancellations_are_deleted_when_the_site_holds_another(api: Api) -> None:
    api.create_site("purge", cancellations=True, cancelAuth="open", pendingCancelDays=1)
    assert api.cancel("purge", session="s1", cuid="c1", orderNo="OLD").status_code == 202

    def stored(repo: Any) -> list[str]:
        return [row[0] for row in repo.db.all("SELECT order_no FROM held_cancels ORDER BY id")]

    api.clock.advance(days=2)  # type: ignore[attr-defined]
    assert api.cancel("purge", session="s1", cuid="c1", orderNo="NEW").status_code == 202
    assert api.store.read_sync(stored) == ["NEW"]
