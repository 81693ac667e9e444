"""Property tests straight at the wire parsers, then the same hostile inputs through HTTP.

A parser either returns a typed value that keeps its promises (quantities are whole numbers
in range, money is an exact finite decimal, text is printable, dates are UTC) or raises
``ApiError`` with a known code; never any other exception. Over HTTP: never a 5xx, and every
answer is the envelope.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recotrack.domain.errors import STATUS, ApiError
from recotrack.domain.money import MAX_MONEY, MAX_QTY, parse_money, parse_qty, plain
from recotrack.domain.orders import MAX_LINES, CancelItem, Line, Order
from recotrack.domain.sessions import NEW, well_formed
from recotrack.http.parse import (
    CANCEL_PARAMS,
    PAGE_TYPES,
    parse_cancel,
    parse_cancel_items,
    parse_offline,
    parse_order_date,
    parse_page,
)
from recotrack.http.wire import decode_form, load_json, merge_params
from recotrack.services.commands import OnlineCancel, PageView
from recotrack.store.db import iso

from .fuzz_support import HOSTILE_BYTES, HOSTILE_STRINGS, HOSTILE_TEXT, assert_envelope
from .support import AUTH, VENDOR_CUID, VENDOR_SESSION, Api

# Reporting a failing example of 100 KB warns; the failure, not the warning, is the news.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PARSERS = settings(max_examples=100, deadline=None, derandomize=True, database=None)
HTTP = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(parse: Any, *args: Any) -> Any:
    """What ``parse`` returns, or the ``ApiError`` it raises; any other exception fails."""
    try:
        return parse(*args)
    except ApiError as error:
        assert error.code in STATUS, error
        assert 400 <= error.status < 600 and error.message, error
        return error


# -- strategies ----------------------------------------------------------------------------

texts = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),  # surrogates and NUL included
    st.sampled_from(HOSTILE_STRINGS),
)
names = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_ ", min_size=1, max_size=12
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**4299), max_value=10**4299),  # json.loads takes 4300 digits
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("1E+400"), Decimal("-0"), Decimal("1E-400"), Decimal("0E-999999999")]),
)
# What load_json can hand a parser: fractions arrive as Decimal, never as float.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right shape, sometimes anything JSON can hold."""
    return st.one_of(valid, valid, json_values)


money = either(
    st.one_of(
        st.decimals(min_value=0, max_value=MAX_MONEY - 1, places=2),
        st.integers(min_value=0, max_value=10**6),
        st.decimals(min_value=0, max_value=10**6, places=6).map(str),
    )
)
qty = either(st.integers(min_value=1, max_value=MAX_QTY) | st.integers(1, 999).map(str))
ref = either(names)
variant = either(st.dictionaries(texts, texts, max_size=3) | st.fixed_dictionaries({"sku": texts}))
line = st.fixed_dictionaries(
    {"refCode": ref, "qty": qty, "price": money}, optional={"variant": variant}
)
items = either(st.lists(line, min_size=1, max_size=4))
online_order = either(
    st.fixed_dictionaries(
        {"orderNo": ref, "items": items, "currency": either(st.sampled_from(["GBP", "eur"]))},
        optional={"total": money, "subtotal": money, "shipping": money},
    )
)
contents = either(st.fixed_dictionaries({"items": items}))
identities = either(st.sampled_from([NEW, VENDOR_SESSION, VENDOR_CUID]) | names)
page_types = either(
    st.sampled_from(sorted(PAGE_TYPES)).flatmap(
        lambda t: st.sampled_from([t, t.upper(), t.title()])
    )
)
pages = st.fixed_dictionaries(
    {"site": either(st.just("fuzz")), "type": page_types},
    optional={
        "session": identities,
        "cuid": identities,
        "channel": either(st.just("web")),
        "lang": texts,
        "order": online_order,
        "basket": contents,
        "checkout": contents,
        "product": either(st.fixed_dictionaries({"refCode": ref})),
        "user": either(st.fixed_dictionaries({}, optional={"id": ref, "email": ref, "name": ref})),
        "info": either(
            st.fixed_dictionaries({"smartRecs": either(st.fixed_dictionaries({"click": numbers}))})
        ),
    },
)
dates = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    st.datetimes(
        timezones=st.sampled_from([timezone(timedelta(hours=-14)), timezone(timedelta(hours=14))])
    ).map(datetime.isoformat),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S GMT")),
    st.sampled_from(
        ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2017-04-23T14:25:00 GMT"]
    ),
)
offline_orders = st.fixed_dictionaries(
    {
        "order": either(
            st.fixed_dictionaries(
                {
                    "refCode": ref,
                    "items": items,
                    "currency": either(st.just("GBP")),
                    "total": money,
                },
                optional={
                    "orderDate": either(dates),
                    "customerId": ref,
                    "subTotal": money,
                    "shipping": money,
                },
            )
        )
    },
    optional={
        "user": either(
            st.fixed_dictionaries(
                {}, optional={"id": ref, "email": ref, "segments": json_values, "info": json_values}
            )
        ),
        "lang": texts,
    },
)
cancel_items = either(
    st.fixed_dictionaries(
        {
            "items": either(
                st.lists(
                    st.fixed_dictionaries({"refCode": ref}, optional={"qty": qty}),
                    min_size=1,
                    max_size=4,
                )
            )
        }
    )
)


def to_json(value: Any) -> str:
    """JSON text of ``value``, with a Decimal written as the number it is."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(to_json, value)) + "]"
    return json.dumps(value)


raw_json = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(HOSTILE_BYTES),
    st.binary(max_size=40),
    st.text(max_size=40),
    json_values.map(to_json),
    pages.map(to_json),
)


# Inputs that once got past the parsers to the database (a NUL, which PostgreSQL refuses, a lone
# surrogate, which UTF-8 refuses) or out of datetime's range: every run tries them.
def order_page(**line: Any) -> dict[str, Any]:
    item = {"refCode": "A", "qty": 1, "price": "1.50", **line}
    order = {"orderNo": "N1", "items": [item], "currency": "GBP", "total": "1.50"}
    return {"site": "fuzz", "type": "order", "session": "new", "cuid": "new", "order": order}


def offline_order(**order: Any) -> dict[str, Any]:
    item = {"refCode": "A", "qty": 1, "price": "1.50"}
    body = {"refCode": "R1", "items": [item], "currency": "GBP", "total": "1.50", **order}
    return {"order": body}


KNOWN_PAGES = [
    order_page(variant={"sku": "\x00"}),
    order_page(variant={"sku": "\ud800"}),
    order_page(variant={"color": "\ud800"}),
    order_page(variant={"\udfff": "red"}),
    {"site": "\ud800", "type": "home", "session": "new", "cuid": "new"},
    {"site": "\x00", "type": "home", "session": "new", "cuid": "new"},
]
KNOWN_OFFLINE = [
    offline_order(items=[{"refCode": "A", "qty": 1, "price": 1, "attributes": {"a": "\ud800"}}]),
    offline_order(orderDate="9999-12-31T23:59:59-14:00"),
    offline_order(orderDate="0001-01-01T00:00:00+14:00"),
]


# -- what a parsed value promises ------------------------------------------------------------


def assert_text(value: str, limit: int = 128) -> None:
    assert isinstance(value, str) and 0 < len(value) <= limit and value.isprintable(), value


def assert_money(amount: Decimal) -> None:
    assert isinstance(amount, Decimal) and amount.is_finite() and 0 <= amount < MAX_MONEY, amount
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int) and exponent >= -6, amount


def assert_qty(number: int) -> None:
    assert type(number) is int and 1 <= number <= MAX_QTY, number


def assert_lines(lines: list[Line]) -> None:
    assert 1 <= len(lines) <= MAX_LINES
    for item in lines:
        assert_text(item.ref_code)
        assert_qty(item.qty)
        assert_money(item.price)
        item.variant.encode("utf-8")  # storable: no lone surrogate
        item.attributes.encode("utf-8")
        assert "\x00" not in item.variant


def assert_order(order: Order) -> None:
    assert_text(order.order_no)
    assert_lines(order.lines)
    assert len(order.currency) == 3 and order.currency.isupper() and order.currency.isascii()
    for amount in (order.subtotal, order.shipping, order.total):
        assert_money(amount)
    assert order.ordered_at.utcoffset() == timedelta(0) and 1970 <= order.ordered_at.year <= 9999


def assert_cancel_items(cancel: list[CancelItem] | None) -> None:
    for item in cancel or ():
        assert_text(item.ref_code)
        if item.qty is not None:
            assert_qty(item.qty)


# -- the parsers -------------------------------------------------------------------------------


@PARSERS
@given(raw=raw_json, version=st.sampled_from(["v1_2", "v1_3", "v1_4"]))
@example(raw=to_json(KNOWN_PAGES[0]), version="v1_4")
@example(raw=to_json(KNOWN_PAGES[1]), version="v1_4")
@example(raw=to_json(KNOWN_PAGES[2]), version="v1_4")
@example(raw=to_json(KNOWN_PAGES[3]), version="v1_4")
def test_parse_page_gives_a_page_view_or_malformed_json(raw: str | bytes, version: str) -> None:
    page = outcome(parse_page, version, raw)
    if isinstance(page, ApiError):
        assert page.code == "MalformedJson"
        return
    assert isinstance(page, PageView) and isinstance(page.site, str) and page.site
    if page.problem is not None:
        assert page.problem.code in STATUS
        return
    assert page.type in PAGE_TYPES
    for identity in (page.session, page.cuid):
        assert identity == NEW or well_formed(identity)
    assert all(code in STATUS for code, _ in page.warnings)
    if page.type == "order":
        assert page.order is not None
        assert_text(page.order.order_no)
        assert_lines(page.order.lines)
    for product in page.products:
        assert_text(product)


@PARSERS
@given(
    params=st.dictionaries(
        st.sampled_from(CANCEL_PARAMS) | texts, either(texts | names), max_size=8
    ),
    conflicts=st.lists(st.sampled_from(CANCEL_PARAMS), max_size=2),
)
def test_parse_cancel_carries_every_problem_as_a_known_error(
    params: dict[str, Any], conflicts: list[str]
) -> None:
    cancel = outcome(parse_cancel, "v1_4", "fuzz", params, conflicts)
    assert isinstance(cancel, OnlineCancel)  # problems are carried, never raised
    if conflicts:
        assert cancel.problem is not None and cancel.problem.code == "ConflictingParameters"
    if cancel.problem is not None:
        assert cancel.problem.code in STATUS
        return
    for identity in (cancel.session, cancel.cuid):
        assert well_formed(identity) and identity != NEW
    assert_text(cancel.order_no)
    assert_cancel_items(cancel.items)
    assert len(cancel.reason) <= 256 and cancel.reason.isprintable()


@PARSERS
@given(data=st.one_of(offline_orders, json_values))
@example(data=KNOWN_OFFLINE[0])
@example(data=KNOWN_OFFLINE[1])
@example(data=KNOWN_OFFLINE[2])
def test_parse_offline_gives_a_valid_order_or_a_known_error(data: Any) -> None:
    parsed = outcome(parse_offline, data, NOW)
    if isinstance(parsed, ApiError):
        return
    order, info = parsed
    assert_order(order)
    if order.user_id:
        assert_text(order.user_id, 256)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in info.items())


@PARSERS
@given(value=st.one_of(st.none(), cancel_items))
def test_parse_cancel_items_gives_lines_or_a_known_error(value: Any) -> None:
    items = outcome(parse_cancel_items, value)
    if isinstance(items, ApiError):
        assert items.code == "MissingOrMalformedItems"
        return
    assert (items is None) == (value is None)
    if items is not None:
        assert 1 <= len(items) <= MAX_LINES
        assert_cancel_items(items)


@PARSERS
@given(value=st.one_of(st.none(), dates, texts, json_values))
@example(value="9999-12-31T23:59:59-14:00")
@example(value="0001-01-01T00:00:00+14:00")
def test_parse_order_date_gives_a_utc_moment_or_a_known_error(value: Any) -> None:
    moment = outcome(parse_order_date, value, NOW)
    if isinstance(moment, ApiError):
        assert moment.code == "MissingOrMalformedOrderDate"
        return
    assert moment.utcoffset() == timedelta(0) and 1970 <= moment.year <= 9999


@PARSERS
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    offset=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_parse_order_date_reads_back_any_iso_moment(moment: datetime, offset: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    assert parse_order_date(aware.isoformat(), NOW) == aware


@PARSERS
@given(
    first=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    second=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)),
    offset=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
@example(first=datetime(2026, 1, 2, 3, 4, 5), second=datetime(2026, 1, 2, 3, 4, 5, 1), offset=0)
def test_iso_writes_moments_in_utc_at_one_width_in_time_order(
    first: datetime, second: datetime, offset: int
) -> None:
    utc = [first.replace(tzinfo=UTC), second.replace(tzinfo=UTC)]
    elsewhere = [m.astimezone(timezone(timedelta(minutes=offset))) for m in utc]
    texts = [iso(m) for m in utc]
    assert [iso(m) for m in elsewhere] == texts
    assert [len(t) for t in texts] == [27, 27] and texts[0].endswith("Z")
    assert [datetime.fromisoformat(t) for t in texts] == utc
    assert (texts[0] < texts[1]) == (utc[0] < utc[1])


@PARSERS
@given(
    body=st.one_of(
        st.binary(max_size=60), st.sampled_from(HOSTILE_BYTES), st.text(max_size=60).map(str.encode)
    )
)
def test_decode_form_gives_text_pairs_or_the_given_code(body: bytes) -> None:
    pairs = outcome(decode_form, body, "MissingOrMalformedParameter")
    if isinstance(pairs, ApiError):
        assert pairs.code == "MissingOrMalformedParameter"
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs)


@PARSERS
@given(pairs=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=6))
def test_decode_form_reads_back_what_a_browser_encodes(pairs: list[tuple[str, str]]) -> None:
    assert decode_form(urlencode(pairs).encode()) == pairs


# Form text made of what the decoder treats specially: escapes whole, cut short or not hex,
# backslashes (its own escape character), pluses, separators, and characters outside ASCII.
FORM_PIECES = st.sampled_from(
    ["%", "%2", "%41", "%7c", "%C3", "%A9", "%e2%82%ac", "%zz", "%5C", "\\", "\\x41", "+", "&", "="]
    + ["a", "0", "f", "G", "é", "€", "\x00", "\n"]
)


@PARSERS
@given(
    body=st.one_of(
        st.lists(FORM_PIECES, max_size=12).map("".join).map(str.encode),
        st.text(max_size=40).map(str.encode),
        st.binary(max_size=40),
    )
)
@example(body=b"a=%C3%A9%zz&%&&b&=c+d&e=%5Cx41\\x41")
def test_decode_form_gives_what_parse_qsl_gives(body: bytes) -> None:
    """The decoder's own unquoting gives urllib's pairs, and fails where urllib fails."""
    try:
        expected: Any = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except ValueError:
        expected = "MissingOrMalformedParameter"
    got = outcome(decode_form, body, "MissingOrMalformedParameter")
    assert (got.code if isinstance(got, ApiError) else got) == expected


def test_decode_form_takes_a_raw_or_an_encoded_bar_alike() -> None:
    assert decode_form(b"session=1|a&cuid=2%7Cb") == [("session", "1|a"), ("cuid", "2|b")]
    assert decode_form(b"session=1%7ca") == decode_form(b"session=1|a")


@PARSERS
@given(raw=raw_json)
def test_load_json_gives_a_value_or_malformed_json(raw: str | bytes) -> None:
    value = outcome(load_json, raw, "jd")
    if isinstance(value, ApiError):
        assert value.code == "MalformedJson"


@PARSERS
@given(value=json_values)
def test_load_json_reads_back_what_was_written_without_floats(value: Any) -> None:
    def no_float(v: Any) -> bool:
        if isinstance(v, dict):
            return all(map(no_float, v.values()))
        if isinstance(v, list):
            return all(map(no_float, v))
        return not isinstance(v, float)

    parsed = load_json(to_json(value))
    assert parsed == value and no_float(parsed)


def test_load_json_refuses_what_would_exhaust_it() -> None:
    for raw in ("[" * 100_000, "1" * 5000, "NaN", "-Infinity", b"\xff"):
        with pytest.raises(ApiError) as caught:
            load_json(raw)
        assert caught.value.code == "MalformedJson"
    assert load_json("1e400") == Decimal("1E+400")


@PARSERS
@given(
    sources=st.lists(
        st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xyz")), max_size=5), max_size=3
    )
)
def test_merge_params_keeps_the_first_value_and_names_every_conflict(
    sources: list[list[tuple[str, str]]],
) -> None:
    merged, conflicts = merge_params(*sources)
    seen: dict[str, list[str]] = {}
    for pairs in sources:
        for name, value in pairs:
            seen.setdefault(name, []).append(value)
    assert merged == {name: values[0] for name, values in seen.items()}
    assert sorted(conflicts) == sorted(n for n, values in seen.items() if len(set(values)) > 1)
    assert len(conflicts) == len(set(conflicts))


any_amount = st.one_of(
    json_values,
    texts,
    st.decimals(),  # NaN, sNaN and infinities too
    st.floats(),
    st.sampled_from(
        [10**5000, -(10**5000), Decimal("sNaN"), "sNaN", "1e99999999999999999999", True]
    ),
)


@PARSERS
@given(value=any_amount)
@example(value=10**5000)
@example(value=Decimal("sNaN"))
def test_parse_money_gives_an_exact_amount_or_the_given_code(value: Any) -> None:
    amount = outcome(parse_money, value, "price", "MissingOrMalformedTotal")
    if isinstance(amount, ApiError):
        assert amount.code == "MissingOrMalformedTotal"
        return
    assert_money(amount)


@PARSERS
@given(amount=st.decimals(min_value=0, max_value=MAX_MONEY - 1, places=6))
def test_parse_money_reads_back_any_amount_it_accepts(amount: Decimal) -> None:
    assert parse_money(amount, "price", "MissingOrMalformedTotal") == amount
    assert parse_money(f" {amount} ", "price", "MissingOrMalformedTotal") == amount


@PARSERS
@given(amount=st.decimals(allow_nan=False, allow_infinity=False))
@example(amount=Decimal("1E+2"))
@example(amount=Decimal("1E-7"))
@example(amount=Decimal("-0.000"))
def test_plain_writes_every_amount_in_positional_notation(amount: Decimal) -> None:
    assert plain(amount) == format(amount, "f")
    assert Decimal(plain(amount)) == amount


@PARSERS
@given(value=any_amount)
@example(value=10**5000)
@example(value=Decimal("sNaN"))
def test_parse_qty_gives_a_whole_number_in_range_or_the_given_code(value: Any) -> None:
    number = outcome(parse_qty, value, "qty", "MissingOrMalformedItems")
    if isinstance(number, ApiError):
        assert number.code == "MissingOrMalformedItems"
        return
    assert_qty(number)


@PARSERS
@given(number=st.integers(min_value=1, max_value=MAX_QTY))
def test_parse_qty_reads_back_any_quantity_it_accepts(number: int) -> None:
    assert parse_qty(number, "qty", "MissingOrMalformedItems") == number
    assert parse_qty(f" {number}\n", "qty", "MissingOrMalformedItems") == number
    assert parse_qty(Decimal(number), "qty", "MissingOrMalformedItems") == number


# -- the same through HTTP -------------------------------------------------------------------

MAX_URL = 60_000  # httpx2 refuses URLs over 64 KiB; servers refuse far shorter ones
IN_URL = 1_500  # what is left of a value sent in a URL (the long hostile ones are ASCII)
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


def wire(raw: str | bytes) -> bytes:
    """Bytes as a client would send them; a lone surrogate goes as the bytes it would be."""
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")


def in_url(value: str) -> str:
    return quote_from_bytes(wire(value[:IN_URL]), safe="")


def encode_pairs(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{in_url(k)}={in_url(v)}" for k, v in pairs)


def check(response: Any, where: str) -> dict[str, Any]:
    assert_envelope(
        response.status_code, response.headers.get("content-type", ""), response.content, where
    )
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("transport", ["get", "form", "json"])
def test_rest_pagex_answers_anything_with_the_envelope(api: Api, transport: str) -> None:
    site = api.create_site("fuzz", cancellations=True)
    url = "/tracker/api/v1_4/rest.pagex"

    @HTTP
    @given(raw=st.one_of(raw_json, pages))
    @example(raw=KNOWN_PAGES[0])
    @example(raw=KNOWN_PAGES[1])
    @example(raw=KNOWN_PAGES[2])
    @example(raw=KNOWN_PAGES[3])
    @example(raw=KNOWN_PAGES[4])
    @example(raw=KNOWN_PAGES[5])
    @example(raw="[" * 100_000)
    def run(raw: str | bytes | dict[str, Any]) -> None:
        if isinstance(raw, dict):  # a page: with the real token, so parsing goes on past it
            if raw.get("site") == "fuzz":
                raw = {**raw, "clientToken": site["clientTokens"]["web"], "channel": "web"}
            raw = to_json(raw)
        data = quote_from_bytes(wire(raw), safe="")
        if transport == "get" and len(data) < MAX_URL:
            response = api.client.get(f"{url}?jd={data}")
        elif transport == "form":
            response = api.client.post(url, content=b"jd=" + data.encode(), headers=FORM)
        else:
            response = api.client.post(url, content=wire(raw), headers=JSON)
        check(response, f"{transport} {raw[:300]!r}")

    run()
    api.assert_consistent("fuzz")


cancel_pairs = st.lists(
    st.tuples(
        st.sampled_from(CANCEL_PARAMS) | texts,
        texts | names | st.sampled_from([VENDOR_SESSION, VENDOR_CUID]),
    ),
    max_size=6,
)


def test_cancel_pagex_answers_any_parameters_with_the_envelope(api: Api) -> None:
    api.create_site("fuzz", cancellations=True, cancelAuth="open")
    known = [("session", VENDOR_SESSION), ("cuid", VENDOR_CUID), ("orderNo", "N1")]

    @HTTP
    @given(
        site=st.one_of(st.just("fuzz"), texts),
        query=cancel_pairs,
        form=cancel_pairs,
        raw_body=st.one_of(st.none(), st.sampled_from(HOSTILE_BYTES)),
        content_type=st.sampled_from([FORM["content-type"], JSON["content-type"], "text/plain"]),
        method=st.sampled_from(["GET", "POST"]),
    )
    @example(site="\x00", query=known, form=[], raw_body=None, content_type="", method="GET")
    @example(site="\ud800", query=known, form=[], raw_body=None, content_type="", method="GET")
    @example(
        site="fuzz",
        query=known,
        form=[("refCode", "A\x00"), ("qty", "9" * 5000), ("reason", "\ud800")],
        raw_body=None,
        content_type=FORM["content-type"],
        method="POST",
    )
    def run(
        site: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        raw_body: bytes | None,
        content_type: str,
        method: str,
    ) -> None:
        url = f"/tracker/api/v1_4/{in_url(site)}/order/cancel.pagex?{encode_pairs(query)}"
        body = raw_body if raw_body is not None else encode_pairs(form).encode()
        response = api.client.request(
            method,
            url,
            content=body if method == "POST" else None,
            headers={"content-type": content_type},
        )
        check(response, f"{method} {url[:300]} {body[:300]!r}")

    run()
    api.assert_consistent("fuzz")


def test_smart_api_answers_any_body_and_order_number_with_the_envelope(api: Api) -> None:
    site = api.create_site("fuzz", cancellations=True)
    headers = api.smart_headers(site)

    @HTTP
    @given(
        body=st.one_of(raw_json, offline_orders.map(to_json), cancel_items.map(to_json)),
        order_number=st.one_of(texts, names),
        delete=st.booleans(),
        prefix=st.sampled_from(["", "/tracker"]),
    )
    @example(body=to_json(KNOWN_OFFLINE[0]), order_number="", delete=False, prefix="")
    @example(body=to_json(KNOWN_OFFLINE[1]), order_number="", delete=False, prefix="")
    @example(body=to_json(KNOWN_OFFLINE[2]), order_number="", delete=False, prefix="")
    @example(body=b"", order_number="a\nb", delete=True, prefix="")
    @example(body=b"", order_number="a\r\nb", delete=True, prefix="/tracker")
    @example(body=b"", order_number="\ud800", delete=True, prefix="")
    def run(body: str | bytes, order_number: str, delete: bool, prefix: str) -> None:
        where = f"delete={delete} {order_number[:100]!r} {body[:300]!r}"
        if delete:
            path = f"{prefix}/smart-api/orders/offline/{in_url(order_number)}"
            response = api.client.request("DELETE", path, content=wire(body), headers=headers)
            # Any order number reaches the handler: "no such endpoint" would be wrong here.
            assert check(response, where)["errors"][0]["code"] != "NotFound", where
        else:
            path = f"{prefix}/smart-api/orders/offline"
            check(api.client.post(path, content=wire(body), headers=headers), where)

    run()
    api.assert_consistent("fuzz")


READS = [
    "orders",
    "orders/{value}",
    "held",
    "recs/top-sellers",
    "recs/bought-together",
    "history",
    "reports/daily",
]
PARAMS = ["state", "from", "to", "cursor", "limit", "source", "channel", "by", "days"]
PARAMS += ["refCode", "cuid", "userId"]


def test_management_reads_answer_any_parameters_with_the_envelope(api: Api) -> None:
    api.create_site("fuzz")

    @HTTP
    @given(
        read=st.sampled_from(READS),
        site=st.one_of(st.just("fuzz"), texts),
        value=st.one_of(texts, names),
        params=st.lists(st.tuples(st.sampled_from(PARAMS), st.one_of(texts, names)), max_size=4),
    )
    @example(read="held", site="\x00", value="", params=[])
    @example(read="orders/{value}", site="fuzz", value="\x00", params=[])
    @example(read="orders/{value}", site="fuzz", value="N1", params=[("channel", "\x00")])
    @example(read="history", site="fuzz", value="", params=[("cuid", "\x00")])
    @example(read="recs/bought-together", site="fuzz", value="", params=[("refCode", "\x00")])
    @example(read="recs/top-sellers", site="fuzz", value="", params=[("userId", "\x00")])
    def run(read: str, site: str, value: str, params: list[tuple[str, str]]) -> None:
        url = f"/api/v1/sites/{in_url(site)}/{read.format(value=in_url(value))}"
        response = api.client.get(f"{url}?{encode_pairs(params)}", headers=AUTH)
        check(response, f"{url[:300]} {params!r:.300}")

    run()
