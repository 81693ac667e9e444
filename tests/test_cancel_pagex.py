"""cancel.pagex (API.md 5.2, 5.3): where parameters come from, the order of checks, every row
of the cancel table, the order's history, whose state is corrected, and the cancelAuth modes."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Clock
from .support import AUTH, VENDOR_ORDER, VENDOR_SESSION, Api, order_body
from .tracker_support import (
    EMPTY_DAY,
    cancel,
    events,
    fail,
    held,
    history,
    lines,
    open_session,
    pair,
    patch_site,
    recs,
    report,
    session_purchases,
    statistics,
)

URL = "/tracker/api/v1_4/mysite/order/cancel.pagex"
ORDER_NO = "ABC-DE-123456"


def _placed(api: Api, **site_settings: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A site with the vendor's example order placed by a logged-in buyer; (site, buyer)."""
    site = api.create_site(cancellations=True, **site_settings)
    response = api.place(site, VENDOR_ORDER, user={"id": "user-1"})
    assert response.json()["order"]["state"] == "placed", response.text
    return site, pair(response)


def _ok(response: Any, who: dict[str, str], state: str, order_no: str = ORDER_NO) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "OK",
        "session": who,
        "order": {"orderNo": order_no, "state": state},
    }


# -- where the parameters come from ---------------------------------------------------------


def test_cancel_parameters_may_come_in_the_query_string_or_a_form_body(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site(cancellations=True)
    who = open_session(api, site)
    ways = ["post-query", "post-form", "get-query", "split", "both-equal"]
    for way in ways:
        api.place(site, order_body(way, ("P1", 1, "1")), **who)
    for way in ways:
        with subtests.test(way=way):
            params = {**who, "orderNo": way}
            if way == "post-query":
                response = api.client.post(URL, params=params)
            elif way == "post-form":
                response = api.client.post(URL, data=params)
            elif way == "get-query":
                response = api.client.get(URL, params=params)
            elif way == "split":
                response = api.client.post(URL, params=who, data={"orderNo": way})
            else:
                response = api.client.post(URL, params=params, data=params)
            _ok(response, who, "cancelled", way)
    assert history(api, "mysite", cuid=who["cuid"]) == []
    api.assert_consistent()


def test_a_name_in_both_query_and_body_with_different_values_is_400_conflicting_parameters(
    api: Api, subtests: pytest.Subtests
) -> None:
    site, who = _placed(api)
    base = {**who, "orderNo": ORDER_NO}
    for name, other in [
        ("orderNo", "OTHER-1"),
        ("session", VENDOR_SESSION),
        ("cuid", "someone-else"),
        ("refCode", "PROD600"),
        ("reason", "another reason"),
    ]:
        with subtests.test(name=name):
            query = {**base, "refCode": "PROD500", "reason": "r"}
            response = api.client.post(URL, params=query, data={**query, name: other})
            message = fail(response, 400, "ConflictingParameters")
            assert message == (
                f"{name} given in both the query string and the body with different values"
            )
    assert lines(api, "mysite", ORDER_NO) == [("PROD500", 2, 2), ("PROD600", 4, 4)]
    assert held(api, "mysite") == []
    api.assert_consistent()


def test_a_cancel_body_that_is_not_a_form_is_415(api: Api) -> None:
    site, who = _placed(api)
    response = api.client.post(
        URL, json={**who, "orderNo": ORDER_NO}, headers={"Content-Type": "application/json"}
    )
    message = fail(response, 415, "UnsupportedMediaType")
    assert message == (
        "send session, cuid and orderNo in the query string or a"
        " application/x-www-form-urlencoded body"
    )
    assert lines(api, "mysite", ORDER_NO) == [("PROD500", 2, 2), ("PROD600", 4, 4)]
    api.assert_consistent()


# -- the order of checks --------------------------------------------------------------------


def test_checks_go_version_site_switch_parameters_auth_then_apply(api: Api) -> None:
    site = api.create_site(cancellations=False, cancelAuth="token")
    who = pair(api.place(site, VENDOR_ORDER))
    made_up = {"session": VENDOR_SESSION, "cuid": "c"}
    conflict = ({"orderNo": ORDER_NO}, {"orderNo": "OTHER"})

    def call(version: str, site_name: str, query: dict[str, str], form: Any = None) -> Any:
        url = f"/tracker/api/{version}/{site_name}/order/cancel.pagex"
        return api.client.post(url, params=query, data=form)

    # everything wrong: the version is reported first
    fail(call("v9", "nosuch", {}), 404, "ApiVersionNotSupported")
    # then the site, even with no parameters at all
    assert fail(call("v1_4", "nosuch", {}), 404, "SiteNotRecognized") == (
        "site 'nosuch' is not known to this server"
    )
    # then the switch, before malformed or conflicting parameters and a made-up session
    for query, form in [({}, None), (made_up, None), (*conflict,)]:
        message = fail(call("v1_4", "mysite", query, form), 403, "CancellationsNotEnabled")
        assert message == (
            "order cancellations are not enabled for site 'mysite'; an operator enables them"
            " with the site setting cancellations"
        )
    patch_site(api, "mysite", cancellations=True)
    # then the parameters, before the made-up session and the missing clientToken
    fail(call("v1_4", "mysite", {**made_up}), 400, "MissingOrMalformedOrderNo")
    fail(
        call("v1_4", "mysite", {**made_up, **conflict[0]}, conflict[1]),
        400,
        "ConflictingParameters",
    )
    # then cancelAuth: the session first, then the clientToken
    fail(call("v1_4", "mysite", {**made_up, "orderNo": ORDER_NO}), 401, "SessionNotRecognized")
    fail(call("v1_4", "mysite", {**who, "orderNo": "UNSEEN"}), 401, "InvalidClientToken")
    assert held(api, "mysite") == []
    assert lines(api, "mysite", ORDER_NO) == [("PROD500", 2, 2), ("PROD600", 4, 4)]
    # and only then the order: applied, or held when it is not known yet
    token = site["clientTokens"]["web"]
    applied = call("v1_4", "mysite", {**who, "orderNo": ORDER_NO, "clientToken": token})
    _ok(applied, who, "cancelled")
    assert (
        call("v1_4", "mysite", {**who, "orderNo": "UNSEEN", "clientToken": token}).status_code
        == 202
    )
    api.assert_consistent()


def test_malformed_cancel_parameters_are_400_naming_the_parameter(
    api: Api, subtests: pytest.Subtests
) -> None:
    site, who = _placed(api)
    base = {**who, "orderNo": ORDER_NO}
    identity = '{} must be "new" or 1-128 printable characters; got {}'
    qty = "qty must be a whole number from 1 to 1,000,000; got {}"
    cases: list[tuple[dict[str, str | None], str, str]] = [
        ({"session": None}, "MissingOrMalformedSession", identity.format("session", "nothing")),
        ({"session": ""}, "MissingOrMalformedSession", identity.format("session", "''")),
        (
            {"session": "new"},
            "MissingOrMalformedSession",
            'session must be the current session, not "new", to cancel',
        ),
        ({"cuid": None}, "MissingOrMalformedCuid", identity.format("cuid", "nothing")),
        (
            {"cuid": "new"},
            "MissingOrMalformedCuid",
            'cuid must be the current cuid, not "new", to cancel',
        ),
        (
            {"cuid": "c" * 129},
            "MissingOrMalformedCuid",
            identity.format("cuid", repr("c" * 129)[:37] + "..."),
        ),
        (
            {"orderNo": None},
            "MissingOrMalformedOrderNo",
            "orderNo must be a string of 1-128 printable characters; got nothing",
        ),
        (
            {"orderNo": ""},
            "MissingOrMalformedOrderNo",
            "orderNo must be a string of 1-128 printable characters; got ''",
        ),
        (
            {"qty": "1"},
            "MissingOrMalformedItems",
            "qty needs refCode: the line to cancel from",
        ),
        (
            {"refCode": ""},
            "MissingOrMalformedItems",
            "refCode must be a string of 1-128 printable characters; got ''",
        ),
        ({"refCode": "PROD500", "qty": "0"}, "MissingOrMalformedItems", qty.format("'0'")),
        ({"refCode": "PROD500", "qty": "-1"}, "MissingOrMalformedItems", qty.format("'-1'")),
        ({"refCode": "PROD500", "qty": "1.5"}, "MissingOrMalformedItems", qty.format("'1.5'")),
        ({"refCode": "PROD500", "qty": "all"}, "MissingOrMalformedItems", qty.format("'all'")),
        (
            {"reason": "r" * 257},
            "MissingOrMalformedParameter",
            "reason must be at most 256 printable characters",
        ),
        (
            {"reason": "two\nlines"},
            "MissingOrMalformedParameter",
            "reason must be at most 256 printable characters",
        ),
    ]
    for change, code, message in cases:
        with subtests.test(change=change):
            params = {**base, **change}
            sent = {key: value for key, value in params.items() if value is not None}
            assert fail(api.client.post(URL, params=sent), 400, code) == message
    assert lines(api, "mysite", ORDER_NO) == [("PROD500", 2, 2), ("PROD600", 4, 4)]
    assert events(api, "mysite", ORDER_NO) == ["placed"]
    assert held(api, "mysite") == []
    api.assert_consistent()


# -- the cancel table (5.2) -----------------------------------------------------------------


def test_a_whole_cancel_of_a_placed_order_is_200_cancelled_and_uncounted(api: Api) -> None:
    site, who = _placed(api)
    before = statistics(api, "mysite")
    assert before["report"]["orders"] == 1
    response = cancel(api, "mysite", who, ORDER_NO)
    _ok(response, who, "cancelled")
    assert statistics(api, "mysite") == {
        "units": [],
        "revenue": [],
        "report": {**EMPTY_DAY, "cancelledOrders": 1, "cancelledRevenue": "99.00"},
    }
    assert api.bought_together("mysite", "PROD500") == []
    assert history(api, "mysite", cuid=who["cuid"]) == []
    assert history(api, "mysite", userId="user-1") == []
    assert lines(api, "mysite", ORDER_NO) == [("PROD500", 2, 0), ("PROD600", 4, 0)]
    assert api.order("mysite", ORDER_NO)["state"] == "cancelled"
    assert events(api, "mysite", ORDER_NO) == ["placed", "cancelled"]
    api.assert_consistent()


def test_cancelling_again_answers_the_same_and_counts_nothing_twice(api: Api) -> None:
    site, who = _placed(api)
    first = cancel(api, "mysite", who, ORDER_NO)
    after_first = statistics(api, "mysite")
    for _ in range(2):
        again = cancel(api, "mysite", who, ORDER_NO)
        assert again.status_code == 200
        assert again.json() == first.json()
    by_get = api.client.get(URL, params={**who, "orderNo": ORDER_NO})
    assert by_get.json() == first.json()
    assert statistics(api, "mysite") == after_first
    assert after_first["report"]["cancelledOrders"] == 1
    assert events(api, "mysite", ORDER_NO) == ["placed", "cancelled"]
    api.assert_consistent()


def test_partial_cancels_leave_the_order_partially_cancelled_until_nothing_is_live(
    api: Api,
) -> None:
    site, who = _placed(api)
    one = cancel(api, "mysite", who, ORDER_NO, refCode="PROD500", qty="1")
    _ok(one, who, "partially-cancelled")
    assert statistics(api, "mysite") == {
        "units": [("PROD600", 4), ("PROD500", 1)],
        "revenue": [("PROD600", "48.00"), ("PROD500", "25.50")],
        "report": {
            "orders": 1,
            "units": 5,
            "revenue": "73.50",
            "cancelledOrders": 0,
            "cancelledRevenue": "25.50",
        },
    }
    assert api.bought_together("mysite", "PROD500") == [("PROD600", 1)]
    assert history(api, "mysite", cuid=who["cuid"]) == [("PROD500", 1), ("PROD600", 4)]
    rest_of_line = cancel(api, "mysite", who, ORDER_NO, refCode="PROD500")
    _ok(rest_of_line, who, "partially-cancelled")
    assert api.top_sellers("mysite") == [("PROD600", 4)]
    assert api.bought_together("mysite", "PROD500") == []  # no live PROD500 is left beside it
    assert history(api, "mysite", userId="user-1") == [("PROD600", 4)]
    last = cancel(api, "mysite", who, ORDER_NO, refCode="PROD600", qty="4")
    _ok(last, who, "cancelled")
    assert statistics(api, "mysite") == {
        "units": [],
        "revenue": [],
        "report": {**EMPTY_DAY, "cancelledOrders": 1, "cancelledRevenue": "99.00"},
    }
    assert lines(api, "mysite", ORDER_NO) == [("PROD500", 2, 0), ("PROD600", 4, 0)]
    whole_after = cancel(api, "mysite", who, ORDER_NO)
    _ok(whole_after, who, "cancelled")
    assert report(api, "mysite")["cancelledOrders"] == 1
    assert events(api, "mysite", ORDER_NO)[:4] == [
        "placed",
        "line-cancelled",
        "line-cancelled",
        "line-cancelled",
    ]
    api.assert_consistent()


def test_a_cancel_on_a_later_day_corrects_the_orders_own_day(api: Api, clock: Clock) -> None:
    site, who = _placed(api, cancelAuth="open")
    clock.advance(days=3)
    _ok(
        cancel(api, "mysite", who, ORDER_NO, refCode="PROD600", qty="1"), who, "partially-cancelled"
    )
    assert report(api, "mysite") == {
        "orders": 1,
        "units": 5,
        "revenue": "87.00",
        "cancelledOrders": 0,
        "cancelledRevenue": "12.00",
    }
    assert report(api, "mysite", "2026-11-30") == EMPTY_DAY
    api.assert_consistent()


def test_a_ref_code_not_in_the_order_is_409_line_not_found(api: Api) -> None:
    site, who = _placed(api)
    before = statistics(api, "mysite")
    response = cancel(api, "mysite", who, ORDER_NO, refCode="PROD999", qty="1")
    message = fail(response, 409, "LineNotFound")
    assert message == "refCode 'PROD999' is not a line of order 'ABC-DE-123456'"
    assert statistics(api, "mysite") == before
    assert events(api, "mysite", ORDER_NO) == ["placed"]
    api.assert_consistent()


def test_a_qty_above_the_live_quantity_is_409_quantity_exceeds_remaining(api: Api) -> None:
    site, who = _placed(api)
    message = fail(
        cancel(api, "mysite", who, ORDER_NO, refCode="PROD500", qty="3"),
        409,
        "QuantityExceedsRemaining",
    )
    assert message == "qty 3 for refCode 'PROD500' is more than its live quantity 2"
    _ok(
        cancel(api, "mysite", who, ORDER_NO, refCode="PROD500", qty="1"), who, "partially-cancelled"
    )
    before = statistics(api, "mysite")
    message = fail(
        cancel(api, "mysite", who, ORDER_NO, refCode="PROD500", qty="2"),
        409,
        "QuantityExceedsRemaining",
    )
    assert message == "qty 2 for refCode 'PROD500' is more than its live quantity 1"
    assert statistics(api, "mysite") == before
    assert lines(api, "mysite", ORDER_NO) == [("PROD500", 2, 1), ("PROD600", 4, 4)]
    api.assert_consistent()


def test_a_cancel_for_an_order_not_seen_yet_is_202_held_as_cancel_pending(api: Api) -> None:
    site, who = _placed(api)
    response = cancel(api, "mysite", who, "NOT-YET")
    assert response.status_code == 202
    assert response.json() == {
        "status": "warning",
        "errors": [
            {
                "code": "OrderNotFound",
                "message": "order 'NOT-YET' has not been seen yet; the cancellation is held and"
                " applied if it arrives",
            }
        ],
        "session": who,
        "order": {"orderNo": "NOT-YET", "state": "cancel-pending"},
    }
    assert [row["orderNo"] for row in held(api, "mysite")] == ["NOT-YET"]
    assert report(api, "mysite")["orders"] == 1
    api.assert_consistent()


# -- history and whose state is corrected ---------------------------------------------------


def test_the_reason_is_kept_in_the_orders_history(api: Api) -> None:
    site, who = _placed(api)
    cancel(api, "mysite", who, ORDER_NO, refCode="PROD600", qty="1", reason="one arrived broken")
    longest = "r" * 256
    cancel(api, "mysite", who, ORDER_NO, reason=longest)
    entries = api.order("mysite", ORDER_NO)["history"]
    assert [(e["event"], e["reason"], e.get("detail")) for e in entries] == [
        ("placed", "", None),
        ("line-cancelled", "one arrived broken", "PROD600 x1"),
        ("cancelled", longest, None),
    ]
    assert all(e["at"] == "2026-11-27T12:00:00.000000Z" for e in entries)
    api.assert_consistent()


def test_a_cancel_from_another_session_works_and_is_recorded(api: Api) -> None:
    site, buyer = _placed(api)
    support_desk = open_session(api, site)
    response = cancel(api, "mysite", support_desk, ORDER_NO, reason="called the shop")
    _ok(response, support_desk, "cancelled")
    last = api.order("mysite", ORDER_NO)["history"][-1]
    assert (last["event"], last["session"], last["cuid"], last["reason"]) == (
        "cancelled",
        support_desk["session"],
        support_desk["cuid"],
        "called the shop",
    )
    order = api.order("mysite", ORDER_NO)
    assert (order["session"], order["cuid"]) == (buyer["session"], buyer["cuid"])
    # the buyer's history is corrected through the order's own cuid and user id
    assert history(api, "mysite", cuid=buyer["cuid"]) == []
    assert history(api, "mysite", userId="user-1") == []
    assert session_purchases(api, "mysite", support_desk["session"]) == []
    assert statistics(api, "mysite")["units"] == []
    api.assert_consistent()


def test_a_cancel_in_the_placing_session_corrects_its_purchases_and_recs(api: Api) -> None:
    site = api.create_site(cancellations=True)
    for order_no, ref, qty in (("S-1", "P1", 5), ("S-2", "P2", 3), ("S-3", "P3", 1)):
        api.place(site, order_body(order_no, (ref, qty, "1.00")))
    mine = api.place(site, order_body("MINE", ("P2", 1, "1.00"), ("P3", 2, "1.00")))
    who = pair(mine)
    assert session_purchases(api, "mysite", who["session"]) == [("P2", 1), ("P3", 2)]
    assert recs(api.page(site, type="home", **who)) == ["P1"]
    _ok(cancel(api, "mysite", who, "MINE", refCode="P3"), who, "partially-cancelled", "MINE")
    assert session_purchases(api, "mysite", who["session"]) == [("P2", 1)]
    assert recs(api.page(site, type="home", **who)) == ["P1", "P3"]
    _ok(cancel(api, "mysite", who, "MINE"), who, "cancelled", "MINE")
    assert session_purchases(api, "mysite", who["session"]) == []
    assert recs(api.page(site, type="home", **who)) == ["P1", "P2", "P3"]
    api.assert_consistent()


# -- cancelAuth (5.3) -----------------------------------------------------------------------


def test_cancel_auth_open_takes_any_well_formed_session(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site(cancellations=True, cancelAuth="open")
    sessions = [VENDOR_SESSION, "155780550/hKugo5RQsqecUpmlWE6EpFWqmalVrJU", "anything at all"]
    for n, _ in enumerate(sessions):
        api.place(site, order_body(f"O-{n}", ("P1", 1, "1")))
    for n, session in enumerate(sessions):
        with subtests.test(session=session):
            who = {"session": session, "cuid": "c-1"}
            response = cancel(api, "mysite", who, f"O-{n}")
            assert response.status_code == 200, response.text
            assert response.json()["order"] == {"orderNo": f"O-{n}", "state": "cancelled"}
    fail(
        cancel(api, "mysite", {"session": "s" * 129, "cuid": "c"}, "O-0"),
        400,
        "MissingOrMalformedSession",
    )
    assert api.top_sellers("mysite") == []
    api.assert_consistent()


def test_cancel_auth_session_takes_only_a_live_session_issued_for_this_site(
    api: Api, clock: Clock
) -> None:
    site, buyer = _placed(api)
    other_site = api.create_site("othersite")
    api.place(site, order_body("SECOND", ("P1", 1, "1")), **buyer)
    api.place(site, order_body("THIRD", ("P1", 1, "1")), **buyer)
    refused = "session is not an active session of site 'mysite'; cancel in a session this server issued (cancelAuth is session)"
    made_up = {"session": VENDOR_SESSION, "cuid": buyer["cuid"]}
    assert fail(cancel(api, "mysite", made_up, ORDER_NO), 401, "SessionNotRecognized") == refused
    of_other_site = open_session(api, other_site)
    fail(cancel(api, "mysite", of_other_site, ORDER_NO), 401, "SessionNotRecognized")
    fail(cancel(api, "mysite", made_up, "UNSEEN"), 401, "SessionNotRecognized")
    assert held(api, "mysite") == []
    assert api.order("mysite", ORDER_NO)["state"] == "placed"
    clock.advance(seconds=14400)  # exactly the maximum age: still live
    _ok(cancel(api, "mysite", buyer, ORDER_NO), buyer, "cancelled")
    clock.advance(seconds=14400)  # the cancellation kept the session live
    _ok(cancel(api, "mysite", buyer, "SECOND"), buyer, "cancelled", "SECOND")
    clock.advance(seconds=14400, microseconds=1)
    fail(cancel(api, "mysite", buyer, "THIRD"), 401, "SessionNotRecognized")
    assert api.order("mysite", "THIRD")["state"] == "placed"
    api.assert_consistent()


def test_cancel_auth_token_also_needs_a_client_token_of_the_site(
    api: Api, subtests: pytest.Subtests
) -> None:
    site, who = _placed(api, cancelAuth="token")
    other_site = api.create_site("othersite")
    refused = "clientToken is missing or not valid for site 'mysite' (cancelAuth is token)"
    for name, token in [
        ("missing", None),
        ("wrong", "not-a-token"),
        ("other site's", other_site["clientTokens"]["web"]),
        ("a siteToken", site["siteTokens"]["store"]),
    ]:
        with subtests.test(token=name):
            extra = {} if token is None else {"clientToken": token}
            response = cancel(api, "mysite", who, ORDER_NO, **extra)
            assert fail(response, 401, "InvalidClientToken") == refused
    made_up = {"session": VENDOR_SESSION, "cuid": who["cuid"]}
    good = site["clientTokens"]["web"]
    fail(cancel(api, "mysite", made_up, ORDER_NO, clientToken=good), 401, "SessionNotRecognized")
    assert api.order("mysite", ORDER_NO)["state"] == "placed"
    partial = cancel(api, "mysite", who, ORDER_NO, refCode="PROD500", clientToken=good)
    _ok(partial, who, "partially-cancelled")
    mobileweb = site["clientTokens"]["mobileweb"]
    _ok(cancel(api, "mysite", who, ORDER_NO, clientToken=mobileweb), who, "cancelled")
    api.assert_consistent()


def test_a_bad_body_is_reported_after_the_site_and_switch_checks(api: Api) -> None:
    api.create_site("order66")  # cancellations off
    url = "/tracker/api/v1_4/{}/order/cancel.pagex"
    unknown = api.client.post(
        url.format("nosuch"), content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert (unknown.status_code, unknown.json()["errors"][0]["code"]) == (404, "SiteNotRecognized")
    off = api.client.post(
        url.format("order66"),
        content=b"\xff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (off.status_code, off.json()["errors"][0]["code"]) == (403, "CancellationsNotEnabled")
    api.client.patch("/api/v1/sites/order66", json={"cancellations": True}, headers=AUTH)
    on = api.client.post(
        url.format("order66"), content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert (on.status_code, on.json()["errors"][0]["code"]) == (415, "UnsupportedMediaType")
