"""Sessions and cuids (API.md 4): issued formats per version, either separator, unknown and
expired sessions, foreign cuids, and a ``|`` raw or percent-encoded in a query string."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from .conftest import Clock
from .support import VENDOR_CUID, VENDOR_ORDER, VENDOR_SESSION, Api, order_body
from .tracker_support import (
    CUID_SLASH,
    CUID_V1_4,
    SESSION_SLASH,
    SESSION_V1_4,
    fail,
    history,
    jd,
    open_session,
    pair,
    patch_site,
    stored_session,
)

FORMATS = [
    ("v1_2", SESSION_SLASH, CUID_SLASH),
    ("v1_3", SESSION_SLASH, CUID_SLASH),
    ("v1_4", SESSION_V1_4, CUID_V1_4),
]


def _other_separator(value: str) -> str:
    return value.replace("|", "/") if "|" in value else value.replace("/", "|")


def test_new_issues_a_session_and_cuid_in_the_format_of_the_version(
    api: Api, subtests: pytest.Subtests
) -> None:
    site = api.create_site()
    for version, session_format, cuid_format in FORMATS:
        with subtests.test(version=version):
            response = api.page(site, version, type="home")
            assert response.json()["status"] == "OK"
            issued = pair(response)
            assert session_format.fullmatch(issued["session"]), issued
            assert cuid_format.fullmatch(issued["cuid"]), issued
    first, second = open_session(api, site), open_session(api, site)
    assert first["session"] != second["session"] and first["cuid"] != second["cuid"]


def test_an_issued_session_and_cuid_are_kept_on_later_pages(api: Api) -> None:
    site = api.create_site()
    who = open_session(api, site)
    again = api.page(site, type="product", product={"refCode": "P1"}, **who)
    assert pair(again) == who
    cuid_new_in_a_known_session = api.page(site, type="home", session=who["session"])
    assert pair(cuid_new_in_a_known_session) == who


@pytest.mark.parametrize(("issued_on", "used_on"), [("v1_4", "v1_2"), ("v1_2", "v1_4")])
def test_the_same_session_works_with_either_separator(
    api: Api, issued_on: str, used_on: str
) -> None:
    site = api.create_site()
    who = open_session(api, site, issued_on)
    for sent in (who["session"], _other_separator(who["session"])):
        response = api.page(site, used_on, type="home", session=sent, cuid=who["cuid"])
        assert response.json()["status"] == "OK"
        session = pair(response)["session"]
        expected = who["session"] if issued_on == used_on else _other_separator(who["session"])
        assert session == expected  # the same id, shown with the version's separator
    kept = stored_session(api, "mysite", who["session"])
    assert kept is not None and kept.cuid == who["cuid"]


def test_an_unknown_session_gets_a_new_one_with_status_ok(api: Api) -> None:
    site = api.create_site()
    for made_up in (VENDOR_SESSION, "155780550/hKugo5RQsqecUpmlWE6EpFWqmalVrJU", "my-session"):
        response = api.page(site, type="home", session=made_up, cuid=VENDOR_CUID)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "OK" and "errors" not in body
        assert SESSION_V1_4.fullmatch(body["session"]["session"])
        assert body["session"]["cuid"] == VENDOR_CUID
    assert stored_session(api, "mysite", VENDOR_SESSION) is None


def test_a_session_of_another_site_is_not_continued(api: Api) -> None:
    site_a, site_b = api.create_site("site-a"), api.create_site("site-b")
    who = open_session(api, site_a)
    on_b = api.page(site_b, type="home", **who)
    assert on_b.json()["status"] == "OK"
    assert pair(on_b)["session"] != who["session"]
    assert pair(on_b)["cuid"] == who["cuid"]  # the cuid is the buyer's, whatever the site


def test_a_session_ends_after_session_max_age_seconds_of_inactivity(api: Api, clock: Clock) -> None:
    site = api.create_site()
    who = open_session(api, site)
    clock.advance(seconds=14400)
    still = api.page(site, type="home", **who)
    assert pair(still) == who
    clock.advance(seconds=14400, microseconds=1)
    expired = api.page(site, type="home", **who)
    assert expired.status_code == 200
    assert expired.json()["status"] == "OK" and "errors" not in expired.json()
    assert SESSION_V1_4.fullmatch(pair(expired)["session"])
    assert pair(expired)["session"] != who["session"]
    assert pair(expired)["cuid"] == who["cuid"]


def test_session_max_age_is_the_sites_setting(api: Api, clock: Clock) -> None:
    site = api.create_site()
    patch_site(api, "mysite", sessionMaxAgeSeconds=60)
    who = open_session(api, site)
    clock.advance(seconds=60)
    assert pair(api.page(site, type="home", **who)) == who
    clock.advance(seconds=61)
    assert pair(api.page(site, type="home", **who))["session"] != who["session"]


def test_a_foreign_cuid_is_accepted_as_given(api: Api, subtests: pytest.Subtests) -> None:
    site = api.create_site()
    foreign = [
        "c",
        "x" * 128,
        "legacy cookie 42",
        "käse|ü~!",
        VENDOR_CUID,
        "143159800/hKugo5RQsqecUpmlWE6Eo1OklrJYp5U",
    ]
    for n, cuid in enumerate(foreign):
        with subtests.test(cuid=cuid):
            response = api.place(site, order_body(f"F-{n}", ("P1", 1, "1")), cuid=cuid)
            assert response.json()["status"] == "OK"
            assert pair(response)["cuid"] == cuid
            assert history(api, "mysite", cuid=cuid) == [("P1", 1)]
    api.assert_consistent()


@pytest.mark.parametrize(
    ("field", "code"),
    [("cuid", "MissingOrMalformedCuid"), ("session", "MissingOrMalformedSession")],
)
def test_a_malformed_session_or_cuid_is_400_naming_it(
    api: Api, subtests: pytest.Subtests, field: str, code: str
) -> None:
    site = api.create_site()
    cases: list[tuple[Any, str]] = [
        ("", "''"),
        ("x" * 129, repr("x" * 129)[:37] + "..."),
        ("tab\tinside", "'tab\\tinside'"),
        ("new\n", "'new\\n'"),
        (42, "42"),
        (["a"], "['a']"),
        (None, "nothing"),
    ]
    for value, shown in cases:
        with subtests.test(value=value):
            data = jd(site, type="order", order=VENDOR_ORDER)
            if value is None:
                del data[field]
            else:
                data[field] = value
            response = api.client.get(
                "/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(data)}
            )
            message = fail(response, 400, code)
            assert message == f'{field} must be "new" or 1-128 printable characters; got {shown}'
    assert api.admin_get("/api/v1/sites/mysite/orders")["orders"] == []


def _raw_jd_url(data: dict[str, Any], pipe: str) -> str:
    """rest.pagex with jd percent-encoded except ``|``, which is left raw or sent as %7C."""
    encoded = quote(json.dumps(data), safe="|" if pipe == "raw" else "")
    return f"/tracker/api/v1_4/rest.pagex?jd={encoded}"


def test_a_pipe_raw_or_percent_encoded_in_a_query_string_means_the_same(api: Api) -> None:
    site = api.create_site()
    who = open_session(api, site)
    for pipe in ("raw", "encoded"):
        response = api.client.get(_raw_jd_url(jd(site, type="home", **who), pipe))
        query = response.request.url.query
        assert (b"|" in query, b"%7C" in query) == (pipe == "raw", pipe == "encoded")
        assert response.json()["status"] == "OK"
        assert pair(response) == who


def test_a_pipe_raw_or_percent_encoded_in_a_cancel_query_string_means_the_same(
    api: Api,
) -> None:
    site = api.create_site(cancellations=True)
    placed = api.place(site, order_body("RAW", ("P1", 1, "1")))
    who = pair(placed)
    api.place(site, order_body("ENC", ("P2", 1, "1")), **who)
    raw = (
        "/tracker/api/v1_4/mysite/order/cancel.pagex"
        f"?session={who['session']}&cuid={who['cuid']}&orderNo=RAW"
    )
    encoded = (
        "/tracker/api/v1_4/mysite/order/cancel.pagex"
        f"?session={quote(who['session'], safe='')}&cuid={quote(who['cuid'], safe='')}"
        "&orderNo=ENC"
    )
    for url, order_no in ((raw, "RAW"), (encoded, "ENC")):
        response = api.client.post(url)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "OK",
            "session": who,
            "order": {"orderNo": order_no, "state": "cancelled"},
        }
    assert b"|" in api.client.build_request("POST", raw).url.query
    assert history(api, "mysite", cuid=who["cuid"]) == []
    api.assert_consistent()


def test_a_session_issued_with_slash_is_recognised_with_pipe_by_cancel(api: Api) -> None:
    site = api.create_site(cancellations=True)
    placed = api.place(site, VENDOR_ORDER, version="v1_3")
    who = pair(placed)
    assert SESSION_SLASH.fullmatch(who["session"])
    piped = {**who, "session": _other_separator(who["session"])}
    response = api.cancel(
        "mysite", session=piped["session"], cuid=who["cuid"], orderNo="ABC-DE-123456"
    )
    assert response.status_code == 200, response.text
    assert response.json()["session"] == piped  # v1_4 shows it with |
    assert re.fullmatch(r"\d{12}\|\w{43}", api.order("mysite", "ABC-DE-123456")["session"])
    api.assert_consistent()
