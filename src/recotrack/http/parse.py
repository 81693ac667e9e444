"""Wire formats into commands: page-tracking JSON, offline order bodies, cancel parameters.

Lenient where the vendor's integrations are (vendor-reference.md 2.2, 3): ``type`` in any
case, numbers as numeric strings, ``en`` or ``en-gb``, ``variant`` as SKU or attributes,
missing subtotal and shipping computed with a warning. Exact everywhere else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..domain.errors import ApiError
from ..domain.money import format_money, parse_money, parse_qty
from ..domain.orders import MAX_LINES, OFFLINE, ONLINE, CancelItem, Line, Order
from ..domain.sessions import NEW, well_formed
from ..services.commands import OnlineCancel, PageView

PAGE_TYPES = {
    "basket",
    "category",
    "checkout",
    "home",
    "order",
    "other",
    "product",
    "searchresults",
    "wishlist",
}
MAX_TEXT = 128
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_VENDOR_DATE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) ?(GMT|UTC|Z)")


def text(value: Any, field: str, code: str, limit: int = MAX_TEXT) -> str:
    """A string (or whole number) of 1 to ``limit`` printable characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        raise ApiError(
            code, f"{field} must be a string of 1-{limit} printable characters; got {_show(value)}"
        )
    return value


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


@dataclass(frozen=True)
class Money:
    currency: str
    subtotal: Decimal
    shipping: Decimal
    total: Decimal
    notes: tuple[tuple[str, str], ...]


def parse_lines(items: Any, where: str, offline: bool = False) -> list[Line]:
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_LINES:
        raise ApiError(
            "MissingOrMalformedItems",
            f"{where}.items must be a list of 1-{MAX_LINES} lines; got {_show(items)}",
        )
    lines = []
    for n, item in enumerate(items):
        at = f"{where}.items[{n}]"
        if not isinstance(item, dict):
            raise ApiError("MissingOrMalformedItems", f"{at} must be an object; got {_show(item)}")
        ref = item.get("refCode", item.get("refcode"))
        lines.append(
            Line(
                ref_code=text(ref, f"{at}.refCode", "MissingOrMalformedItems"),
                qty=parse_qty(item.get("qty"), f"{at}.qty", "MissingOrMalformedItems"),
                price=parse_money(item.get("price"), f"{at}.price", "MissingOrMalformedItems"),
                variant="" if offline else _variant(item.get("variant"), at),
                attributes=_attributes(item.get("attributes"), at) if offline else "",
            )
        )
    return lines


def _variant(variant: Any, at: str) -> str:
    """SKU wins over attributes (vendor-reference.md 3.6)."""
    if variant is None:
        return ""
    if not isinstance(variant, dict) or not all(isinstance(v, str) for v in variant.values()):
        raise ApiError(
            "MissingOrMalformedItems",
            f'{at}.variant must be an object of strings ({{"sku"}} or attributes)',
        )
    if variant.get("sku"):
        sku = variant["sku"][:MAX_TEXT]
        if not sku.isprintable():  # stored as is: PostgreSQL refuses a NUL, UTF-8 a surrogate
            raise ApiError("MissingOrMalformedItems", f"{at}.variant.sku must be printable")
        return "sku:" + sku
    return _canonical(variant, 1024, f"{at}.variant") if variant else ""


def _attributes(attributes: Any, at: str) -> str:
    if attributes is None:
        return ""
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise ApiError("MissingOrMalformedItems", f"{at}.attributes must be an object of strings")
    return _canonical(attributes, 4096, f"{at}.attributes") if attributes else ""


def _canonical(strings: dict[str, str], limit: int, where: str) -> str:
    """Canonical JSON text of an object of strings, refused if it holds a lone surrogate
    (JSON's ``"\\ud800"``), which UTF-8 and so neither database can store."""
    canonical = json.dumps(strings, sort_keys=True, ensure_ascii=False)[:limit]
    try:
        canonical.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError("MissingOrMalformedItems", f"{where} must be valid Unicode text") from None
    return canonical


def parse_money_fields(body: dict[str, Any], lines: list[Line], where: str) -> Money:
    """currency and total required; subtotal (also subTotal) and shipping computed if absent."""
    currency = body.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ApiError(
            "MissingOrMalformedCurrency",
            f"{where}.currency must be an ISO 4217 code such as GBP; got {_show(currency)}",
        )
    notes = []
    subtotal_value = body.get("subtotal", body.get("subTotal"))
    if subtotal_value is None:
        subtotal = sum((line.price * line.qty for line in lines), Decimal(0))
        notes.append(
            (
                "MissingOrMalformedSubtotal",
                f"{where}.subtotal is missing; computed as {format_money(subtotal)}",
            )
        )
    else:
        subtotal = parse_money(subtotal_value, f"{where}.subtotal", "MissingOrMalformedSubtotal")
    if body.get("shipping") is None:
        shipping = Decimal(0)
        notes.append(("MissingOrMalformedShipping", f"{where}.shipping is missing; taken as 0"))
    else:
        shipping = parse_money(body["shipping"], f"{where}.shipping", "MissingOrMalformedShipping")
    total = parse_money(body.get("total"), f"{where}.total", "MissingOrMalformedTotal")
    return Money(currency.upper(), subtotal, shipping, total, tuple(notes))


def parse_page(version: str, raw: bytes | str) -> PageView:
    """A rest.pagex request. Raises only for what prevents knowing the site; every other
    problem is carried in ``problem`` for the service to raise after the token check."""
    from .wire import load_json

    data = load_json(raw, "jd")
    if not isinstance(data, dict):
        raise ApiError("MalformedJson", "jd must be a JSON object")
    site = data.get("site")
    if not isinstance(site, str) or not site:
        raise ApiError("MalformedJson", f"site is required: a string; got {_show(site)}")
    token = data.get("clientToken")
    channel = data.get("channel", "web")
    base: dict[str, Any] = {
        "version": version,
        "site": site,
        "client_token": token if isinstance(token, str) else "",
        "channel": channel if isinstance(channel, str) else "web",
        "type": "",
        "session": "",
        "cuid": "",
    }
    try:
        return PageView(**{**base, **_page_fields(data)})
    except ApiError as problem:
        return PageView(**base, problem=problem)


def _page_fields(data: dict[str, Any]) -> dict[str, Any]:
    page_type = data.get("type")
    if not isinstance(page_type, str) or page_type.lower() not in PAGE_TYPES:
        raise ApiError(
            "TypeNotRecognized",
            f"type must be one of {', '.join(sorted(PAGE_TYPES))} (any case); got {_show(page_type)}",
        )
    kind = page_type.lower()
    if not isinstance(data.get("channel", "web"), str):
        raise ApiError("MissingOrMalformedChannel", "channel must be a string such as web")
    fields: dict[str, Any] = {
        "type": kind,
        "session": _identity(data.get("session"), "session", "MissingOrMalformedSession"),
        "cuid": _identity(data.get("cuid"), "cuid", "MissingOrMalformedCuid"),
        "user_id": _user_id(data.get("user")),
        "clicks": _clicks(data.get("info")),
    }
    if kind == "order":
        order, notes = parse_online_order(
            data.get("order"), fields["user_id"], data.get("channel", "web")
        )
        fields.update(
            order=order,
            warnings=notes,
            products=tuple(dict.fromkeys(line.ref_code for line in order.lines)),
        )
    elif kind in ("basket", "checkout"):
        contents = data.get(kind)
        code = "MissingOrMalformedBasket" if kind == "basket" else "MissingOrMalformedItems"
        if not isinstance(contents, dict) or not isinstance(contents.get("items", []), list):
            raise ApiError(code, f"{kind} must be an object with an items list")
        items = contents.get("items", [])
        lines = parse_lines(items, kind) if items else []
        fields[kind] = json.dumps(
            [[line.ref_code, line.qty, format_money(line.price)] for line in lines]
        )
        fields["products"] = tuple(dict.fromkeys(line.ref_code for line in lines))
    elif kind == "product":
        product = data.get("product")
        ref = product.get("refCode") if isinstance(product, dict) else None
        fields["products"] = (text(ref, "product.refCode", "MissingOrMalformedProduct"),)
    return fields


def _identity(value: Any, field: str, code: str) -> str:
    if value == NEW:
        return NEW
    if not isinstance(value, str) or not well_formed(value):
        raise ApiError(
            code, f'{field} must be "new" or 1-128 printable characters; got {_show(value)}'
        )
    return value


def _user_id(user: Any) -> str:
    if user is None:
        return ""
    if not isinstance(user, dict):
        raise ApiError("MissingOrMalformedUser", f"user must be an object; got {_show(user)}")
    for key in ("id", "email", "name"):  # id from v1_4; email and name are the legacy ones
        if user.get(key) is not None:
            return text(user[key], f"user.{key}", "MissingOrMalformedUser", 256)
    return ""


def _clicks(info: Any) -> tuple[int, ...]:
    if not isinstance(info, dict) or not isinstance(info.get("smartRecs"), dict):
        return ()
    click = info["smartRecs"].get("click")
    if isinstance(click, str) and click.isdigit():
        click = int(click)
    if isinstance(click, int) and not isinstance(click, bool) and 0 < click < 2**63:
        return (click,)
    return ()


def parse_online_order(
    body: Any, user_id: str, channel: str
) -> tuple[Order, tuple[tuple[str, str], ...]]:
    """rest.pagex's ``order`` object (API.md 5.1), with the notes its money fields made; the
    caller sets the site, session, cuid and date."""
    if not isinstance(body, dict):
        raise ApiError("MissingOrMalformedOrderNo", "order must be an object with an orderNo")
    order_no = text(body.get("orderNo"), "order.orderNo", "MissingOrMalformedOrderNo")
    lines = parse_lines(body.get("items"), "order")
    money = parse_money_fields(body, lines, "order")
    order = Order(
        site="",
        source=ONLINE,
        channel=channel,
        order_no=order_no,
        currency=money.currency,
        subtotal=money.subtotal,
        shipping=money.shipping,
        total=money.total,
        lines=lines,
        ordered_at=datetime.now(UTC),
        user_id=user_id,
    )
    return order, money.notes


def parse_offline(data: Any, now: datetime) -> tuple[Order, dict[str, str]]:
    """The smart API's offline order body (API.md 6.1)."""
    if not isinstance(data, dict):
        raise ApiError("MalformedJson", "the body must be a JSON object with an order")
    body = data.get("order")
    if not isinstance(body, dict):
        raise ApiError("MissingOrMalformedOrderNo", "order must be an object with a refCode")
    order_no = text(body.get("refCode"), "order.refCode", "MissingOrMalformedOrderNo")
    lines = parse_lines(body.get("items"), "order", offline=True)
    money = parse_money_fields(body, lines, "order")
    user_id, info = "", {}
    user = data.get("user")
    if user is not None:
        if not isinstance(user, dict) or not any(user.get(k) for k in ("id", "email", "segments")):
            raise ApiError(
                "MissingOrMalformedUser",
                "user, when given, must be an object with id, email or segments",
            )
        key = "id" if user.get("id") is not None else "email"  # id wins; null means absent
        if user.get(key) is not None:
            user_id = text(user[key], f"user.{key}", "MissingOrMalformedUser", 256)
        raw_info = user.get("info", {})
        if not isinstance(raw_info, dict):
            raise ApiError("MissingOrMalformedUser", "user.info must be an object")
        info = {str(k)[:64]: str(v)[:256] for k, v in raw_info.items()}
    customer = body.get("customerId")
    order = Order(
        site="",
        source=OFFLINE,
        channel="",
        order_no=order_no,
        currency=money.currency,
        subtotal=money.subtotal,
        shipping=money.shipping,
        total=money.total,
        lines=lines,
        ordered_at=parse_order_date(body.get("orderDate"), now),
        dated=body.get("orderDate") is not None,
        user_id=user_id,
        customer_id="" if customer is None else text(customer, "order.customerId", "MalformedJson"),
    )
    return order, info


def parse_order_date(value: Any, now: datetime) -> datetime:
    """ISO 8601 with or without zone (UTC assumed), or the vendor's ``2017-04-23T14:25:00 GMT``."""
    if value is None:
        return now
    accepted = "ISO 8601 such as 2017-04-23T14:25:00Z, or 2017-04-23T14:25:00 GMT"
    if not isinstance(value, str) or len(value) > 40:
        raise ApiError(
            "MissingOrMalformedOrderDate", f"order.orderDate must be {accepted}; got {_show(value)}"
        )
    vendor = _VENDOR_DATE.fullmatch(value.strip())
    candidate = vendor[1] + "+00:00" if vendor else value.strip()
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise ApiError(
            "MissingOrMalformedOrderDate", f"order.orderDate must be {accepted}; got {_show(value)}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the last day a datetime holds
        moment = datetime.min.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 9999:
        raise ApiError("MissingOrMalformedOrderDate", f"order.orderDate must be {accepted}")
    return moment


def parse_cancel_items(value: Any) -> list[CancelItem] | None:
    """The DELETE extension body ``{"items": [{"refCode", "qty"?}]}``."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("items"), list)
        or not value["items"]
    ):
        raise ApiError(
            "MissingOrMalformedItems", 'the body must be {"items": [{"refCode", "qty"}]}'
        )
    items = []
    for n, item in enumerate(value["items"][: MAX_LINES + 1]):
        if not isinstance(item, dict):
            raise ApiError("MissingOrMalformedItems", f"items[{n}] must be an object")
        ref = text(item.get("refCode"), f"items[{n}].refCode", "MissingOrMalformedItems")
        qty = item.get("qty")
        items.append(
            CancelItem(
                ref,
                None
                if qty is None
                else parse_qty(qty, f"items[{n}].qty", "MissingOrMalformedItems"),
            )
        )
    if len(items) > MAX_LINES:
        raise ApiError("MissingOrMalformedItems", f"at most {MAX_LINES} items")
    return items


CANCEL_PARAMS = ("session", "cuid", "orderNo", "refCode", "qty", "clientToken", "reason")


def parse_cancel(
    version: str, site: str, params: dict[str, str], conflicts: list[str]
) -> OnlineCancel:
    """cancel.pagex parameters (API.md 5.2), problems carried for the service to raise."""
    try:
        if conflicts:
            raise ApiError(
                "ConflictingParameters",
                f"{', '.join(conflicts)} given in both the query string and the body with"
                " different values",
            )
        session = _identity(params.get("session"), "session", "MissingOrMalformedSession")
        cuid = _identity(params.get("cuid"), "cuid", "MissingOrMalformedCuid")
        if NEW in (session, cuid):
            field = "session" if session == NEW else "cuid"
            raise ApiError(
                f"MissingOrMalformed{field.capitalize()}",
                f'{field} must be the current {field}, not "new", to cancel',
            )
        order_no = text(params.get("orderNo"), "orderNo", "MissingOrMalformedOrderNo")
        items = None
        if params.get("refCode") is not None:
            ref = text(params["refCode"], "refCode", "MissingOrMalformedItems")
            qty = params.get("qty")
            items = [
                CancelItem(
                    ref, None if qty is None else parse_qty(qty, "qty", "MissingOrMalformedItems")
                )
            ]
        elif params.get("qty") is not None:
            raise ApiError("MissingOrMalformedItems", "qty needs refCode: the line to cancel from")
        reason = params.get("reason", "")
        if len(reason) > 256 or not reason.isprintable():
            raise ApiError(
                "MissingOrMalformedParameter", "reason must be at most 256 printable characters"
            )
        return OnlineCancel(
            version, site, session, cuid, order_no, items, params.get("clientToken", ""), reason
        )
    except ApiError as problem:
        return OnlineCancel(version, site, problem=problem)
