"""``recotrack demo``: real baskets in as online orders, a few per cent cancelled, and the
top sellers and a bought-together list before and after.

Orders go through the same parser and services as rest.pagex and cancel.pagex; only the HTTP
transport is skipped.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from .http.parse import parse_cancel, parse_page
from .services.commands import OnlineCancel, PageView
from .services.orders import Cancelled
from .services.sites import NewSite, create_site
from .services.tracking import PageResult, cancel_online, track_page
from .store import Store
from .store.repository import Repository

CHUNK = 500


@dataclass(frozen=True)
class Basket:
    user_id: str
    day: str
    items: dict[str, int]  # refCode -> quantity


def read_baskets(path: Path | None = None) -> list[Basket]:
    """Rows of ``transaction_number,date,items`` grouped by (member, date), in file order."""
    if path is None:
        raw = resources.files("recotrack").joinpath("data/groceries.csv.gz").read_bytes()
        text = gzip.decompress(raw).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    grouped: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for row in csv.DictReader(io.StringIO(text)):
        items = grouped[(row["transaction_number"], row["date"])]
        items[row["items"]] = items.get(row["items"], 0) + 1
    return [Basket(user, day, items) for (user, day), items in grouped.items()]


def price_of(ref_code: str) -> Decimal:
    """A fixed price from 0.50 to 9.99 per product, the same on every run."""
    digest = int.from_bytes(hashlib.sha256(ref_code.encode()).digest()[:4], "big")
    return Decimal(50 + digest % 950) / 100


def run_demo(
    store: Store,
    site_name: str,
    baskets: list[Basket],
    cancel_share: float,
    seed: int,
    now: Callable[[], datetime],
    out: Callable[[str], None],
) -> dict[str, Any]:
    made: NewSite = store.write_sync(lambda repo: create_site(repo, site_name, now()))
    token = made.client_tokens["web"]
    store.write_sync(lambda repo: _enable_cancellations(repo, site_name))
    placed = _place_all(store, site_name, token, baskets, now)
    focus = _most_common(baskets)
    before = _show(store, site_name, focus, now, out, "before cancellations")
    rng = random.Random(seed)
    count = max(1, int(len(placed) * cancel_share)) if cancel_share > 0 else 0  # 0 %: none
    chosen = rng.sample(range(len(placed)), count)
    whole = in_part = 0
    futures = []
    for n, index in enumerate(chosen):
        order_no, session, cuid, basket = placed[index]
        params = {"session": session, "cuid": cuid, "orderNo": order_no, "reason": "demo"}
        if n % 3 == 2:  # a third of them partly: one line
            params["refCode"] = sorted(basket.items)[0]
            in_part += 1
        else:
            whole += 1
        cancel = parse_cancel("v1_4", site_name, params, [])
        futures.append(store.submit(partial(_cancel, cancel, now)))
    for future in futures:
        future.result()
    out(f"\ncancelled {whole} orders whole and {in_part} in part ({len(chosen)} of {len(placed)})")
    after = _show(store, site_name, focus, now, out, "after cancellations")
    return {
        "site": site_name,
        "orders": len(placed),
        "cancelled": len(chosen),
        "before": before,
        "after": after,
        "clientToken": token,
    }


def _cancel(cancel: OnlineCancel, now: Callable[[], datetime], repo: Repository) -> Cancelled:
    return cancel_online(repo, cancel, now())


def _track(page: PageView, now: Callable[[], datetime], repo: Repository) -> PageResult:
    return track_page(repo, page, now())


def _enable_cancellations(repo: Any, site: str) -> None:
    from .services.sites import update_site

    update_site(repo, site, {"cancellations": True, "cancelAuth": "session"})


def _place_all(
    store: Store, site: str, token: str, baskets: list[Basket], now: Callable[[], datetime]
) -> list[tuple[str, str, str, Basket]]:
    placed = []
    for chunk in _chunks(list(enumerate(baskets)), CHUNK):
        futures: list[tuple[str, Basket, Future[Any]]] = []
        for n, basket in chunk:
            order_no = f"DEMO-{n:06d}"
            jd = {
                "type": "order",
                "site": site,
                "clientToken": token,
                "session": "new",
                "cuid": "new",
                "lang": "en-gb",
                "user": {"id": basket.user_id},
                "order": {
                    "orderNo": order_no,
                    "currency": "GBP",
                    "items": [
                        {"refCode": ref, "qty": qty, "price": str(price_of(ref))}
                        for ref, qty in sorted(basket.items.items())
                    ],
                    "shipping": "0",
                    "total": str(_total(basket)),
                    "subtotal": str(_total(basket)),
                },
            }
            page = parse_page("v1_4", json.dumps(jd))
            futures.append((order_no, basket, store.submit(partial(_track, page, now))))
        for order_no, basket, future in futures:
            result = future.result()
            placed.append((order_no, result.session.id, result.session.cuid, basket))
    return placed


def _total(basket: Basket) -> Decimal:
    return sum((price_of(ref) * qty for ref, qty in basket.items.items()), Decimal(0))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _most_common(baskets: list[Basket]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for basket in baskets:
        for ref in basket.items:
            counts[ref] += 1
    return min(counts, key=lambda ref: (-counts[ref], ref))


def _show(
    store: Store,
    site: str,
    focus: str,
    now: Callable[[], datetime],
    out: Callable[[str], None],
    title: str,
) -> dict[str, Any]:
    from datetime import timedelta

    today = now().date()
    first = (today - timedelta(days=29)).isoformat()
    top = store.read_sync(
        lambda r: r.top_sellers(site, "units", first, today.isoformat(), 5, set())
    )
    pairs = store.read_sync(lambda r: r.bought_together(site, [focus], 5, set()))
    days = store.read_sync(lambda r: r.report_days(site, today, today))
    report = days[0][1]
    out(f"\n== {title} ==")
    out(
        f"orders {report.orders}, units {report.units}, revenue {report.revenue:.2f} GBP,"
        f" cancelled orders {report.cancelled_orders}, cancelled revenue"
        f" {report.cancelled_revenue:.2f} GBP"
    )
    out("top sellers (units):")
    for ref, units in top:
        out(f"  {units:6d}  {ref}")
    out(f"bought together with {focus!r} (orders):")
    for ref, n in pairs:
        out(f"  {n:6d}  {ref}")
    return {
        "topSellers": [[r, int(u)] for r, u in top],
        "boughtTogether": [list(p) for p in pairs],
        "units": report.units,
        "revenue": str(report.revenue),
    }
