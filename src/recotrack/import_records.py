"""The records of an import file: each line parsed into a typed record, on a process of its own.

``recotrack import`` parses on a second process (``parse_chunk``), so the writer's core does
not: json and the checks of ``recotrack.http.parse`` cost about as much CPU as applying a
record. Pickled, the records would cost the writer as much again to load (dataclasses,
``Decimal``, ``datetime``); they cross as plain values in ``marshal`` (``encode``) and the
writer builds them again in its transaction (``entries``, ``record``), so each run of a batch
places orders of its own.

On SQLite the parsing process also prepares every order as placing it stores it when nothing is
stored or held under its key, which is what almost every order of a file meets: its rows but
for its id (``recotrack.store.repository.new_order_rows``) and its statistics, summed by site
(``Chunk.totals``). The writer takes those rows for an order that meets it, without building
the order, and takes an order that does not back out of the sum before placing it itself.
"""

from __future__ import annotations

import json
import marshal
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, get_type_hints

from .domain.errors import ApiError
from .domain.orders import OFFLINE, ONLINE, CancelItem, Line, Order
from .domain.sessions import well_formed
from .domain.sites import check_channel, is_site_name
from .domain.stats import Delta, Report
from .http.parse import (
    parse_cancel_items,
    parse_offline,
    parse_online_order,
    parse_order_date,
    text,
)
from .services.orders import Context, start_history
from .store.db import Dialect, iso
from .store.repository import NewRows, new_order_rows
from .store.schema import SQLITE

Key = tuple[str, str, str, str]  # site, source, channel_key, order_no
# A prepared order: whether it counts in the crowd, then its rows (flat: one tuple less to
# load for every order of an import).
NewOrder = tuple[bool, *NewRows]


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


_NO_TOTALS = marshal.dumps({})


@dataclass(frozen=True)
class Chunk:
    """What the parsing process made of consecutive lines of the file."""

    records: bytes  # the records, for ``entries``
    lines: list[int]  # the line number of each record
    errors: list[tuple[int, str, str]]  # (line number, code, message): lines not records
    nonblank: int  # lines that are not blank
    totals: bytes = _NO_TOTALS  # the statistics of the prepared orders by site, for ``totals``


def parse_chunk(
    first_line: int, raws: list[bytes], now: datetime, offline_crowd: dict[str, bool] | None = None
) -> Chunk:
    """Parse lines ``first_line``, ``first_line + 1``, ... (run on the parsing process).

    With ``offline_crowd`` (by site, whether its offline orders count in the crowd; a site
    not named there is taken as not), every order is prepared too, for a SQLite store."""
    encoded, lines, errors, nonblank = [], [], [], 0
    totals: dict[str, Delta] = {}
    at = iso(now)
    for line_no, raw in enumerate(raws, start=first_line):
        if not raw.strip():
            continue
        nonblank += 1
        try:
            record = parse_record(line_no, raw, now)
        except ApiError as error:
            errors.append((line_no, error.code, error.message))
            continue
        if offline_crowd is None or record.order is None:
            encoded.append(encode(record))
        else:  # the line goes as it came, for the writer to parse again if it needs the order
            crowd = record.kind != "offline" or offline_crowd.get(record.site, False)
            new = _prepare(record.order, crowd, now, at, totals)
            encoded.append((line_no, record.kind, record.site, record.key, new, raw))
        lines.append(line_no)
    return Chunk(marshal.dumps(encoded), lines, errors, nonblank, _encode_totals(totals))


_MONEY = Dialect(SQLITE).money


def _prepare(
    order: Order, crowd: bool, now: datetime, at: str, totals: dict[str, Delta]
) -> NewOrder:
    """``order`` as placing it stores it when nothing is stored or held under its key (its
    id aside), its statistics added to its site's in ``totals``."""
    order.crowd = crowd
    start_history(order, now)
    total = totals.get(order.site)
    if total is None:
        total = totals[order.site] = Delta()
    total.add(order, +1)
    return (crowd, *new_order_rows(order, at, _MONEY))


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
    quietly), as ``Entry`` lists them."""
    order = None
    if record.order is not None:
        if record.order.new_events:
            raise ValueError("a parsed order has no history")
        order = dict(record.order.__dict__)
        del order["new_events"]  # empty; the list is the order's, to be filled by placing it
        for name in _ORDER_DECIMALS:
            order[name] = str(order[name])
        for name in _ORDER_MOMENTS:
            order[name] = order[name].isoformat()
        order["lines"] = [_encode_line(line) for line in record.order.lines]
    items = None
    if record.items is not None:
        items = [tuple(item.__dict__.values()) for item in record.items]
    context = tuple(record.context.__dict__.values())
    return (record.line, record.kind, record.site, record.key, None, (order, items, context))


def _encode_line(line: Line) -> dict[str, Any]:
    values = dict(line.__dict__)
    for name in _LINE_DECIMALS:
        values[name] = str(values[name])
    return values


class Entry(NamedTuple):
    """A record as it crossed: enough to place a prepared order, and the rest for ``record``."""

    line: int
    kind: str
    site: str
    key: Key
    new: NewOrder | None  # the order prepared (``parse_chunk``), if it was
    rest: Any  # the line itself if ``new`` is given, else the encoded order, items and context


def entries(records: bytes) -> list[Entry]:
    """The records of ``Chunk.records`` as they crossed."""
    return [Entry._make(values) for values in marshal.loads(records)]


def decode(records: bytes, now: datetime) -> list[Record]:
    """The records of ``Chunk.records``, new objects on every call (``now`` as parsed)."""
    return [record(entry, now) for entry in entries(records)]


def record(entry: Entry, now: datetime) -> Record:
    """The record ``entry`` crossed as, ``now`` being the moment it was parsed at; once for
    each entry (its values become the order's)."""
    line, kind, site, key, new, rest = entry
    if new is not None:
        return parse_record(line, rest, now)
    order_values, items, context = rest
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


def _encode_totals(totals: dict[str, Delta]) -> bytes:
    return marshal.dumps(
        {
            site: (
                {key: (units, str(revenue)) for key, (units, revenue) in total.products.items()},
                total.pairs,
                {
                    day: (
                        r.orders,
                        r.units,
                        str(r.revenue),
                        r.cancelled_orders,
                        str(r.cancelled_revenue),
                    )
                    for day, r in total.days.items()
                },
            )
            for site, total in totals.items()
        }
    )


def totals(chunk: Chunk) -> dict[str, Delta]:
    """The statistics of the chunk's prepared orders, summed by site."""
    return {
        site: Delta(
            {key: (units, Decimal(revenue)) for key, (units, revenue) in products.items()},
            pairs,
            {
                day: Report(orders, units, Decimal(revenue), cancelled, Decimal(cancelled_revenue))
                for day, (orders, units, revenue, cancelled, cancelled_revenue) in days.items()
            },
        )
        for site, (products, pairs, days) in marshal.loads(chunk.totals).items()
    }
