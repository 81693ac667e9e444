"""The lines of an import file parsed on the parsing process and built again on the writer:
the records must arrive exactly as ``parse_record`` made them."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from recotrack.domain.money import MAX_DECIMALS, parse_money, parse_qty
from recotrack.domain.orders import Order
from recotrack.import_records import Record, decode, parse_chunk, parse_record

NOW = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)

LINES: list[dict[str, Any] | str] = [
    {
        "type": "order",
        "site": "shop",
        "channel": "mobileweb",
        "session": "s-1",
        "cuid": "c-1",
        "user": {"id": "u-1"},
        "order": {
            "orderNo": "W1",
            "currency": "gbp",
            "items": [
                {"refCode": "milk", "qty": 2, "price": "1.10", "variant": {"sku": "M-2L"}},
                {"refCode": "jam", "qty": "3", "price": 0.5, "variant": {"size": "big"}},
            ],
            "subtotal": "3.70",
            "shipping": 1e2,
            "total": "103.700000",
            "orderDate": "2026-11-20T10:00:00.5+02:00",
        },
    },
    {  # no orderDate (now), no subtotal or shipping
        "type": "order",
        "site": "shop",
        "order": {
            "orderNo": 77,
            "currency": "EUR",
            "items": [{"refCode": "tea", "qty": 1, "price": "4"}],
            "total": "4",
        },
    },
    {
        "type": "offline",
        "site": "shop",
        "channel": "store",
        "user": {"id": "u-2", "info": {"tier": "gold"}},
        "order": {
            "refCode": "S1",
            "customerId": "C-9",
            "currency": "GBP",
            "items": [{"refCode": "eggs", "qty": 3, "price": "0.50", "attributes": {"a": "b"}}],
            "subTotal": "1.50",
            "total": "1.50",
            "orderDate": "2026-11-21T09:30:00 GMT",
        },
    },
    {"type": "cancel", "site": "shop", "orderNo": "W1", "reason": "broken", "cuid": "c-1"},
    {
        "type": "cancel",
        "site": "shop",
        "orderNo": "W1",
        "items": [{"refCode": "milk", "qty": 1}, {"refCode": "jam"}],
        "session": "s-1",
    },
    {"type": "offline-cancel", "site": "shop", "channel": "store", "orderNo": "S1"},
    "",
    "{not json",
    {"type": "refund", "site": "shop"},
    "   ",
]


def raw_lines() -> list[bytes]:
    return [
        (line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in LINES
    ]


# Without the crowd of each site nothing is prepared; with it every order is, and crosses as
# its line.
PREPARED = pytest.mark.parametrize("offline_crowd", [None, {}], ids=["encoded", "prepared"])


@PREPARED
def test_records_cross_from_the_parsing_process_as_parse_record_makes_them(
    offline_crowd: dict[str, bool] | None,
) -> None:
    raws = raw_lines()
    chunk = parse_chunk(11, raws, NOW, offline_crowd)
    expected = [
        parse_record(number, raw, NOW)
        for number, raw in enumerate(raws, start=11)
        if raw.strip() and number not in (18, 19)
    ]
    assert chunk.lines == [11, 12, 13, 14, 15, 16]
    assert chunk.nonblank == 8
    assert [(line, code) for line, code, _ in chunk.errors] == [
        (18, "MalformedJson"),
        (19, "TypeNotRecognized"),
    ]
    records = decode(chunk.records, NOW)
    assert records == expected  # every field of every order, line and cancellation
    for got, want in zip(records, expected, strict=True):
        if want.order is not None:
            assert got.order is not None
            assert got.order.ordered_at.tzinfo is not None
            assert [str(line.price) for line in got.order.lines] == [
                str(line.price) for line in want.order.lines
            ]  # the same Decimal, to the exponent
            assert (str(got.order.total), str(got.order.shipping)) == (
                str(want.order.total),
                str(want.order.shipping),
            )


@PREPARED
def test_each_decoding_makes_orders_of_its_own(offline_crowd: dict[str, bool] | None) -> None:
    """A store may run a batch again: the services change the orders they place."""
    chunk = parse_chunk(1, raw_lines(), NOW, offline_crowd)
    first, second = decode(chunk.records, NOW), decode(chunk.records, NOW)
    assert first == second
    assert first[0].order is not None and second[0].order is not None
    assert first[0].order is not second[0].order
    assert first[0].order.lines[0] is not second[0].order.lines[0]
    assert first[0].order.new_events is not second[0].order.new_events


def test_the_fields_that_cross_are_the_records() -> None:
    """A field added to Record must be added to its encoding (Order's cross whole)."""
    assert [f.name for f in fields(Record)] == [
        "line",
        "kind",
        "site",
        "key",
        "order",
        "items",
        "context",
    ]
    assert "new_events" in [f.name for f in fields(Order)]


@pytest.mark.parametrize(
    "text",
    ["0", "0.00", "5", "12.34", "000012.340", "999999999999", "999999999999.999999", "0.000001"],
)
def test_a_plain_amount_parses_as_the_full_checks_parse_it(text: str) -> None:
    quick = parse_money(text, "price", "MissingOrMalformedItems")
    checked = parse_money(f" {text} ", "price", "MissingOrMalformedItems")  # the full checks
    assert (quick, str(quick)) == (checked, str(checked))
    assert quick.as_tuple().exponent == checked.as_tuple().exponent


@pytest.mark.parametrize(
    "text", ["1000000000000", "1.0000001", "-1", "1e3", "1.", ".5", "+1", "NaN", "1_0"]
)
def test_an_amount_that_is_not_plain_takes_the_full_checks(text: str) -> None:
    try:
        amount: Decimal | str = parse_money(text, "price", "MissingOrMalformedItems")
    except Exception as exc:
        amount = type(exc).__name__
    try:
        checked: Decimal | str = parse_money(f" {text} ", "price", "MissingOrMalformedItems")
    except Exception as exc:
        checked = type(exc).__name__
    assert str(amount) == str(checked)
    if isinstance(amount, Decimal):
        assert amount.as_tuple().exponent >= -MAX_DECIMALS


@pytest.mark.parametrize("qty", [1, 2, 1_000_000])
def test_a_whole_quantity_parses_as_its_numeric_string(qty: int) -> None:
    assert parse_qty(qty, "qty", "MissingOrMalformedItems") == qty
    assert parse_qty(str(qty), "qty", "MissingOrMalformedItems") == qty
