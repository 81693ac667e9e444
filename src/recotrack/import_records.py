"""The records of an import file: each line parsed into a typed record, on a process of its own.

``recotrack import`` parses on a second process (``parse_chunk``), so the writer's core does
not: json and the checks of ``recotrack.http.parse`` cost about as much CPU as applying a
record. Pickled, the records would cost the writer as much again to load (dataclasses,
``Decimal``, ``datetime``); they cross as plain values in ``marshal`` (``encode``) and the
writer builds them again in its transaction (``decode``), so each run of a batch places orders
of its own.
"""

from __future__ import annotations

import json
import marshal
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, get_type_hints

from .domain.errors import ApiError
from .domain.orders import OFFLINE, ONLINE, CancelItem, Line, Order
from .domain.sessions import well_formed
from .domain.sites import check_channel, is_site_name
from .http.parse import (
    parse_cancel_items,
    parse_offline,
    parse_online_order,
    parse_order_date,
    text,
)
from .services.orders import Context

Key = tuple[str, str, str, str]  # site, source, channel_key, order_no


# -- parsing: a line into a record --------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One parsed line: a change of one order key."""

    line: int
    kind: str  # order, offline, cancel, offline-cancel
    site: str
    key: Key
    order: Order | None = None
    items: list[CancelItem] | None = None
    context: Context = Context()


def parse_record(line_no: int, raw: bytes | str, now: datetime) -> Record:
    """A line of the file as a record; ``ApiError`` naming the field at fault otherwise."""
    try:
        data = _json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0][:160]
        raise ApiError("MalformedJson", f"the line is not valid JSON: {detail}") from None
    except RecursionError:
        raise ApiError("MalformedJson", "the line is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError("MalformedJson", "each line must be a JSON object with a type")
    kind = data.get("type")
    site = data.get("site")
    if not is_site_name(site):
        raise ApiError(
            "SiteNotRecognized",
            f"site must be a site name (1-64 of A-Z a-z 0-9 _ -); got {site!r:.80}",
        )
    assert isinstance(site, str)
    if kind == "order":
        return _online_order(line_no, site, data, now)
    if kind == "offline":
        order, _ = parse_offline(data, now)
        channel = check_channel(data.get("channel"))
        order.site, order.channel = site, channel
        key = (site, OFFLINE, channel, order.order_no)
        return Record(line_no, kind, site, key, order=order)
    if kind in ("cancel", "offline-cancel"):
        return _cancel(line_no, site, kind, data)
    raise ApiError(
        "TypeNotRecognized",
        f"type must be order, offline, cancel or offline-cancel; got {kind!r:.80}",
    )


_DECODER = json.JSONDecoder(parse_float=Decimal)


def _json(raw: bytes | str) -> Any:
    """``json.loads(raw, parse_float=Decimal)`` with one decoder for every line (``loads``
    makes one per call, a tenth of the time of a short line)."""
    if isinstance(raw, str):
        if raw.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", raw, 0)
    else:
        raw = raw.decode(json.detect_encoding(raw), "surrogatepass")
    return _DECODER.decode(raw)


def _online_order(line_no: int, site: str, data: dict[str, Any], now: datetime) -> Record:
    channel = check_channel(data.get("channel", "web"))
    order, _ = parse_online_order(data.get("order"), "", channel)
    user = data.get("user")
    if user is not None:
        if not isinstance(user, dict):
            raise ApiError("MissingOrMalformedUser", "user must be an object with an id")
        if user.get("id") is not None:
            order.user_id = text(user["id"], "user.id", "MissingOrMalformedUser", 256)
    order.site = site
    order.ordered_at = parse_order_date(data["order"].get("orderDate"), now)
    order.session = _identity(data, "session", "MissingOrMalformedSession")
    order.cuid = _identity(data, "cuid", "MissingOrMalformedCuid")
    order_no = order.order_no
    return Record(line_no, "order", site, (site, ONLINE, "", order_no), order=order)


def _cancel(line_no: int, site: str, kind: str, data: dict[str, Any]) -> Record:
    order_no = text(data.get("orderNo"), "orderNo", "MissingOrMalformedOrderNo")
    items = None
    if data.get("items") is not None:
        items = parse_cancel_items({"items": data["items"]})
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 256 or not reason.isprintable():
        raise ApiError(
            "MissingOrMalformedParameter", "reason must be at most 256 printable characters"
        )
    session = _identity(data, "session", "MissingOrMalformedSession")
    cuid = _identity(data, "cuid", "MissingOrMalformedCuid")
    if kind == "cancel":
        key = (site, ONLINE, "", order_no)
        context = Context("", session, cuid, reason)
    else:
        channel = check_channel(data.get("channel"))
        key = (site, OFFLINE, channel, order_no)
        context = Context(channel, session, cuid, reason)
    return Record(line_no, kind, site, key, items=items, context=context)


def _identity(data: dict[str, Any], name: str, code: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or not well_formed(value):
        raise ApiError(code, f"{name} must be 1-128 printable characters; got {value!r:.40}")
    return value


# -- the parsing process ------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """What the parsing process made of consecutive lines of the file."""

    records: bytes  # the records, for ``decode``
    lines: list[int]  # the line number of each record
    errors: list[tuple[int, str, str]]  # (line number, code, message): lines not records
    nonblank: int  # lines that are not blank


def parse_chunk(first_line: int, raws: list[bytes], now: datetime) -> Chunk:
    """Parse lines ``first_line``, ``first_line + 1``, ... (run on the parsing process)."""
    encoded, lines, errors, nonblank = [], [], [], 0
    for line_no, raw in enumerate(raws, start=first_line):
        if not raw.strip():
            continue
        nonblank += 1
        try:
            record = parse_record(line_no, raw, now)
        except ApiError as error:
            errors.append((line_no, error.code, error.message))
            continue
        encoded.append(encode(record))
        lines.append(line_no)
    return Chunk(marshal.dumps(encoded), lines, errors, nonblank)


# -- records as plain values ----------------------------------------------------------------

# Every field of an order and of a line crosses; those of these types change form on the way.
_ORDER_FIELDS = tuple(f.name for f in fields(Order))
_LINE_FIELDS = tuple(f.name for f in fields(Line))
_ORDER_TYPES = get_type_hints(Order)
_LINE_TYPES = get_type_hints(Line)
_ORDER_DECIMALS = tuple(name for name in _ORDER_FIELDS if _ORDER_TYPES[name] is Decimal)
_ORDER_MOMENTS = tuple(name for name in _ORDER_FIELDS if _ORDER_TYPES[name] is datetime)
_LINE_DECIMALS = tuple(name for name in _LINE_FIELDS if _LINE_TYPES[name] is Decimal)
# The fields of a record of an order that are not the order's: their defaults.
_ORDER_RECORD = {f.name: f.default for f in fields(Record) if f.default is not MISSING}


def encode(record: Record) -> tuple[Any, ...]:
    """``record`` as values ``marshal`` takes (it refuses any other: nothing is lost
    quietly)."""
    order = None
    if record.order is not None:
        if record.order.new_events:
            raise ValueError("a parsed order has no history")
        order = dict(record.order.__dict__)
        for name in _ORDER_DECIMALS:
            order[name] = str(order[name])
        for name in _ORDER_MOMENTS:
            order[name] = order[name].isoformat()
        order["lines"] = [_encode_line(line) for line in record.order.lines]
    items = None
    if record.items is not None:
        items = [tuple(item.__dict__.values()) for item in record.items]
    context = tuple(record.context.__dict__.values())
    return (record.line, record.kind, record.site, record.key, order, items, context)


def _encode_line(line: Line) -> dict[str, Any]:
    values = dict(line.__dict__)
    for name in _LINE_DECIMALS:
        values[name] = str(values[name])
    return values


def decode(records: bytes) -> list[Record]:
    """The records of ``Chunk.records``, new objects on every call."""
    return [_decode(values) for values in marshal.loads(records)]


def _decode(values: tuple[Any, ...]) -> Record:
    line, kind, site, key, order_values, items, context = values
    if order_values is not None:
        # Built as Order.copy builds its snapshot, field by field without __init__: this
        # runs on the writer for every order of the file.
        for name in _ORDER_DECIMALS:
            order_values[name] = Decimal(order_values[name])
        for name in _ORDER_MOMENTS:
            order_values[name] = datetime.fromisoformat(order_values[name])
        order_values["lines"] = [_decode_line(each) for each in order_values["lines"]]
        order_values["new_events"] = []
        order = object.__new__(Order)
        order.__dict__.update(order_values)
        record = object.__new__(Record)
        record.__dict__.update(_ORDER_RECORD, line=line, kind=kind, site=site, key=key, order=order)
        return record
    return Record(
        line,
        kind,
        site,
        key,
        None,
        None if items is None else [CancelItem(*item) for item in items],
        Context(*context),
    )


def _decode_line(values: dict[str, Any]) -> Line:
    for name in _LINE_DECIMALS:
        values[name] = Decimal(values[name])
    line = object.__new__(Line)
    line.__dict__.update(values)
    return line
