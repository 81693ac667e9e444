"""What the management API and the CLI show: orders with their history, held cancellations,
recommendations, buyer history and daily reports, as JSON-ready dicts (money as exact text)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ..domain.errors import ApiError
from ..domain.money import format_money
from ..domain.orders import OFFLINE, ONLINE, Order
from ..domain.sites import CLIENT, SITE, Site
from ..store.db import iso
from ..store.readmodel import MAX_REPORT_DAYS
from ..store.repository import Repository
from .sites import load_site

PAGE_SIZE = 100


def site_view(site: Site) -> dict[str, Any]:
    return {
        "name": site.name,
        **site.settings.to_wire(),
        "channels": {"online": site.channels(CLIENT), "offline": site.channels(SITE)},
        "createdAt": iso(site.created_at),
    }


def order_view(
    repo: Repository, site: str, source: str, channel: str, order_no: str
) -> dict[str, Any]:
    load_site(repo, site)
    if source not in (ONLINE, OFFLINE):
        raise ApiError("MissingOrMalformedParameter", "source must be online or offline")
    key_channel = channel if source == OFFLINE else ""
    order = repo.find_order(site, source, key_channel, order_no, lock=False)
    if order is None and source == OFFLINE and not channel:
        channels = repo.offline_channels_of(site, order_no)
        if channels:
            order = repo.find_order(site, OFFLINE, channels[0], order_no, lock=False)
    if order is None:
        raise ApiError("OrderNotFound", f"no {source} order {order_no!r:.80} in site {site!r}")
    return _order_dict(repo, order)


def _order_dict(repo: Repository, order: Order) -> dict[str, Any]:
    assert order.id is not None
    return {
        "orderNo": order.order_no,
        "source": order.source,
        "channel": order.channel,
        "state": order.state.value,
        "orderDate": iso(order.ordered_at),
        "currency": order.currency,
        "subtotal": format_money(order.subtotal),
        "shipping": format_money(order.shipping),
        "total": format_money(order.total),
        "liveTotal": format_money(
            sum((line.price * line.live for line in order.lines), 0 * order.total)
        ),
        "cuid": order.cuid,
        "userId": order.user_id,
        "customerId": order.customer_id,
        "session": order.session,
        "countsInCrowd": order.crowd,
        "lines": [
            {
                "refCode": line.ref_code,
                "quantity": line.qty,
                "liveQuantity": line.live,
                "price": format_money(line.price),
                **({"variant": line.variant} if line.variant else {}),
            }
            for line in order.lines
        ],
        "history": [
            {
                "event": e.kind,
                "at": iso(e.at),
                "channel": e.channel,
                "session": e.session,
                "cuid": e.cuid,
                "reason": e.reason,
                **({"detail": e.detail} if e.detail else {}),
            }
            for e in repo.order_events(order.site, order.id)
        ],
    }


def orders_page(
    repo: Repository,
    site: str,
    state: str | None,
    first: str | None,
    last: str | None,
    cursor: str | None,
    limit: int = PAGE_SIZE,
) -> dict[str, Any]:
    load_site(repo, site)
    after = 0
    if cursor:
        if not cursor.isdigit() or len(cursor) > 18:
            raise ApiError("MissingOrMalformedParameter", "cursor must be a value from next")
        after = int(cursor)
    states = ("placed", "partially-cancelled", "cancelled")
    if state is not None and state not in states:
        raise ApiError("MissingOrMalformedParameter", f"state must be one of {', '.join(states)}")
    first = _day(first, "from").isoformat() if first else None
    last = _day(last, "to").isoformat() if last else None
    rows = repo.list_orders(site, state, first, last, after, limit + 1)
    payload: dict[str, Any] = {
        "orders": [
            {
                "orderNo": r.order_no,
                "source": r.source,
                "channel": r.channel,
                "state": r.state,
                "total": format_money(r.total),
                "currency": r.currency,
                "orderDate": r.ordered_at,
                "updatedAt": r.updated_at,
            }
            for r in rows[:limit]
        ]
    }
    if len(rows) > limit:
        payload["next"] = str(rows[limit - 1].id)
    return payload


def held_view(repo: Repository, site: str, now: datetime) -> list[dict[str, Any]]:
    load_site(repo, site)
    import json

    return [
        {
            "source": r[0],
            "channel": r[1],
            "orderNo": r[2],
            "items": None
            if r[3] is None
            else [{"refCode": ref, "qty": qty} for ref, qty in json.loads(r[3])],
            "at": r[4],
            "expiresAt": r[5],
            "session": r[6],
            "cuid": r[7],
            "reason": r[8],
        }
        for r in repo.list_held(site, iso(now))
    ]


def top_sellers(
    repo: Repository,
    site: str,
    by: str,
    days: int,
    limit: int,
    cuid: str,
    user_id: str,
    today: date,
) -> list[dict[str, Any]]:
    load_site(repo, site)
    if by not in ("units", "revenue"):
        raise ApiError("MissingOrMalformedParameter", "by must be units or revenue")
    exclude = repo.live_bought(site, cuid, user_id)
    first = (today - timedelta(days=days - 1)).isoformat()
    return [
        {"refCode": ref, "score": format_money(Decimal(score)) if by == "revenue" else score}
        for ref, score in repo.top_sellers(site, by, first, today.isoformat(), limit, exclude)
    ]


def bought_together(
    repo: Repository, site: str, ref_codes: list[str], limit: int, cuid: str, user_id: str
) -> list[dict[str, Any]]:
    load_site(repo, site)
    if not ref_codes:
        raise ApiError("MissingOrMalformedItems", "give at least one refCode")
    exclude = repo.live_bought(site, cuid, user_id)
    return [
        {"refCode": ref, "score": n}
        for ref, n in repo.bought_together(site, ref_codes, limit, exclude)
    ]


def history(repo: Repository, site: str, cuid: str, user_id: str) -> list[dict[str, Any]]:
    load_site(repo, site)
    if not cuid and not user_id:
        raise ApiError("MissingOrMalformedCuid", "give cuid or userId")
    return [
        {"refCode": ref, "quantity": qty, "lastBought": last}
        for ref, qty, last in repo.history(site, cuid=cuid, user_id=user_id)
    ]


def daily_report(repo: Repository, site: str, first: str, last: str) -> list[dict[str, Any]]:
    load_site(repo, site)
    start, end = _day(first, "from"), _day(last, "to")
    if end < start or (end - start).days >= MAX_REPORT_DAYS:
        raise ApiError(
            "MissingOrMalformedParameter",
            f"to must be on or after from, and from..to at most {MAX_REPORT_DAYS} days",
        )
    return [
        {
            "date": day,
            "orders": r.orders,
            "units": r.units,
            "revenue": format_money(r.revenue),
            "cancelledOrders": r.cancelled_orders,
            "cancelledRevenue": format_money(r.cancelled_revenue),
        }
        for day, r in repo.report_days(site, start, end)
    ]


def _day(value: str | None, name: str) -> date:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        raise ApiError(
            "MissingOrMalformedParameter", f"{name} must be a date YYYY-MM-DD; got {value!r:.40}"
        ) from None
