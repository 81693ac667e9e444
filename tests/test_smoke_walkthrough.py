"""The vendor's own examples end to end: order, cancel with the example URL, offline order."""

from __future__ import annotations

from .support import VENDOR_CUID, VENDOR_OFFLINE, VENDOR_ORDER, VENDOR_SESSION, Api


def test_vendor_order_counts_until_cancelled_in_its_session(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    placed = api.place(site, VENDOR_ORDER)
    assert placed.status_code == 200
    assert placed.json()["order"] == {"orderNo": "ABC-DE-123456", "state": "placed"}
    assert api.top_sellers("mysite") == [("PROD600", 4), ("PROD500", 2)]
    session = placed.json()["session"]
    cancelled = api.client.post(
        "/tracker/api/v1_4/mysite/order/cancel.pagex"
        f"?session={session['session']}&cuid={session['cuid']}&orderNo=ABC-DE-123456"
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["order"]["state"] == "cancelled"
    assert api.top_sellers("mysite") == []
    api.assert_consistent()


def test_vendor_cancel_url_is_refused_under_session_auth_and_obeyed_under_open(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    api.place(site, VENDOR_ORDER)
    url = (
        "/tracker/api/v1_4/mysite/order/cancel.pagex"
        f"?session={VENDOR_SESSION}&cuid={VENDOR_CUID}&orderNo=ABC-DE-123456"
    )
    refused = api.client.post(url)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "SessionNotRecognized"
    assert api.top_sellers("mysite") == [("PROD600", 4), ("PROD500", 2)]
    from .support import AUTH

    api.client.patch("/api/v1/sites/mysite", json={"cancelAuth": "open"}, headers=AUTH)
    obeyed = api.client.post(url)
    assert obeyed.status_code == 200
    assert obeyed.json()["order"]["state"] == "cancelled"
    assert api.top_sellers("mysite") == []


def test_vendor_offline_order_and_its_delete_without_tracker(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    created = api.offline(site, VENDOR_OFFLINE)
    assert created.status_code == 201, created.text
    assert created.json()["order"]["state"] == "placed"
    history = api.admin_get("/api/v1/sites/mysite/history", userId="abcd1234efgh")["history"]
    assert [(h["refCode"], h["quantity"]) for h in history] == [("ref1", 1), ("ref2", 2)]
    deleted = api.delete_offline(site, "orderRef123")
    assert deleted.status_code == 200
    assert deleted.json()["order"]["state"] == "cancelled"
    assert api.admin_get("/api/v1/sites/mysite/history", userId="abcd1234efgh")["history"] == []
    api.assert_consistent()
