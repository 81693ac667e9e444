"""A workload seeded from real grocery baskets, scaled to any number of orders.

    .venv/bin/python -m bench.workload --orders 1000000 --out var/bench/orders.jsonl

Each order copies the shape of a basket drawn at random from ``groceries.csv`` (14,963 baskets,
2-11 lines, 167 products), so product popularity, basket sizes and which products go together
stay those of the real shop. Scaling:

- products: each of the 167 products is split into variants (``whole milk #3``) chosen at
  random per order, so there are exactly ``--products`` refCodes with the same popularity per
  product family; fewer than 167 merge families;
- customers: each of the 3,898 members becomes ``customers / 3898`` customers (user ids);
- dates: orders are spread evenly over the last ``--days`` days, oldest first;
- channels: ``--offline-share`` of the orders are offline (store, callcentre, mobileapp, tv),
  the rest online (web, mobileweb);
- cancellations: ``--cancel-share`` of the orders (2 %) are cancelled, a third of those partly
  (one line); a tenth of the cancellations arrive before their order, the rest 1-500 records
  later;
- re-sends: ``--resend-share`` of the orders are sent again, unchanged, 1-500 records later.

The records are the JSON Lines that ``recotrack import`` loads (see ``recotrack.importer``).
The same seed gives the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from recotrack.demo import Basket, price_of, read_baskets

ONLINE_CHANNELS = ("web", "web", "web", "mobileweb")
OFFLINE_CHANNELS = ("store", "store", "callcentre", "mobileapp", "tv")
SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "groceries.csv"
MAX_DELAY = 500  # records between an order and its late cancellation or re-send


@dataclass(frozen=True)
class Config:
    orders: int
    products: int = 0  # 0: as in the seed data (167)
    customers: int = 0  # 0: scaled with the orders, as in the seed data
    offline_share: float = 0.2
    cancel_share: float = 0.02
    partial_share: float = 1 / 3
    early_share: float = 0.1  # of the cancellations: arrive before their order
    resend_share: float = 0.01
    days: int = 60
    seed: int = 7
    site: str = "bench"
    end: datetime | None = None  # the newest order's time; default now
    prefix: str = ""  # before every order number (W/S and the index)
    offline_channels: tuple[str, ...] = OFFLINE_CHANNELS


@dataclass(frozen=True)
class GeneratedOrder:
    """What the benchmark needs to know about an order it can cancel."""

    index: int
    online: bool
    channel: str
    order_no: str
    ref_codes: tuple[str, ...]


def seed_baskets(path: Path | None = None) -> list[Basket]:
    """The grocery baskets: ``shared/data/groceries.csv`` when it is there, else the copy
    shipped with the package."""
    if path is None and SHARED_CSV.exists():
        path = SHARED_CSV
    return read_baskets(path)


class Workload:
    """Orders, cancellations and re-sends in the order they are sent."""

    def __init__(self, config: Config, baskets: list[Basket] | None = None) -> None:
        self.config = config
        self.baskets = baskets if baskets is not None else seed_baskets()
        families = sorted({ref for basket in self.baskets for ref in basket.items})
        members = sorted({basket.user_id for basket in self.baskets})
        self._member_index = {member: n for n, member in enumerate(members)}
        self._variants = _variants(families, config.products or len(families))
        customers = config.customers or max(
            1, round(config.orders * len(members) / len(self.baskets))
        )
        self.customers = customers
        self._per_member = max(1, -(-customers // len(members)))  # ceil
        self.product_count = sum(len(v) for v in self._variants.values())
        self._prices: dict[str, str] = {}

    def order_no(self, index: int, online: bool) -> str:
        return f"{self.config.prefix}{'W' if online else 'S'}{index:09d}"

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record in sending order: orders, early and late cancels, re-sends."""
        for item in self._stream():
            yield item[1]

    def orders(self) -> Iterator[GeneratedOrder]:
        """The orders alone (each once), in index order."""
        for item in self._stream():
            if item[0] is not None:
                yield item[0]

    def _stream(self) -> Iterator[tuple[GeneratedOrder | None, dict[str, Any]]]:
        cfg = self.config
        rng = random.Random(cfg.seed)
        end = cfg.end or datetime.now(UTC).replace(microsecond=0)
        start = end - timedelta(days=cfg.days)
        span = (end - start).total_seconds()
        later: dict[int, list[dict[str, Any]]] = {}
        for index in range(cfg.orders):
            basket = self.baskets[rng.randrange(len(self.baskets))]
            online = rng.random() >= cfg.offline_share
            channel = rng.choice(ONLINE_CHANNELS if online else cfg.offline_channels)
            member = self._member_index[basket.user_id]
            customer = (
                f"u{(member * self._per_member + rng.randrange(self._per_member)) % self.customers}"
            )
            items: dict[str, int] = {}
            for family, qty in basket.items.items():
                variants = self._variants[family]
                ref = variants[rng.randrange(len(variants))] if len(variants) > 1 else variants[0]
                items[ref] = items.get(ref, 0) + qty
            moment = start + timedelta(seconds=span * index / max(1, cfg.orders - 1))
            order_no = self.order_no(index, online)
            record = self._order_record(order_no, online, channel, customer, items, moment)
            generated = GeneratedOrder(index, online, channel, order_no, tuple(sorted(items)))
            if rng.random() < cfg.cancel_share:
                cancel = self._cancel_record(generated, rng.random() < cfg.partial_share)
                if rng.random() < cfg.early_share:
                    yield None, cancel
                else:
                    later.setdefault(index + rng.randint(1, MAX_DELAY), []).append(cancel)
            yield generated, record
            if rng.random() < cfg.resend_share:
                later.setdefault(index + rng.randint(1, MAX_DELAY), []).append(record)
            for waiting in later.pop(index, ()):
                yield None, waiting
        for index in sorted(later):
            for waiting in later[index]:
                yield None, waiting

    def _price(self, ref: str) -> str:
        price = self._prices.get(ref)
        if price is None:
            price = self._prices[ref] = str(price_of(ref))
        return price

    def _order_record(
        self,
        order_no: str,
        online: bool,
        channel: str,
        customer: str,
        items: dict[str, int],
        moment: datetime,
    ) -> dict[str, Any]:
        lines = [
            {"refCode": ref, "qty": qty, "price": self._price(ref)}
            for ref, qty in sorted(items.items())
        ]
        subtotal = sum((Decimal(line["price"]) * line["qty"] for line in lines), Decimal(0))
        shipping = Decimal("3.95") if subtotal < 20 else Decimal(0)
        money = {
            "currency": "GBP",
            "shipping": str(shipping),
            "total": str(subtotal + shipping),
            "items": lines,
            "orderDate": moment.isoformat().replace("+00:00", "Z"),
        }
        site = self.config.site
        if online:
            return {
                "type": "order",
                "site": site,
                "channel": channel,
                "cuid": f"cuid-{customer}",
                "user": {"id": customer},
                "order": {"orderNo": order_no, "subtotal": str(subtotal), **money},
            }
        return {
            "type": "offline",
            "site": site,
            "channel": channel,
            "user": {"id": customer},
            "order": {"refCode": order_no, "subTotal": str(subtotal), **money},
        }

    def _cancel_record(self, order: GeneratedOrder, partial: bool) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "cancel" if order.online else "offline-cancel",
            "site": self.config.site,
            "orderNo": order.order_no,
            "reason": "customer changed their mind",
        }
        if not order.online:
            record["channel"] = order.channel
        if partial:
            record["items"] = [{"refCode": order.ref_codes[0], "qty": 1}]
        return record


def _variants(families: list[str], products: int) -> dict[str, list[str]]:
    """refCodes per product family: ``products`` in all, spread evenly over the families."""
    if products < len(families):
        merged = families[:products]
        return {family: [merged[n % products]] for n, family in enumerate(families)}
    base, extra = divmod(products, len(families))
    return {
        family: [family if v == 0 else f"{family} #{v}" for v in range(base + (n < extra))]
        for n, family in enumerate(families)
    }


def encoder() -> json.JSONEncoder:
    """How a record becomes its line (compact, UTF-8 as it is)."""
    return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def write_jsonl(workload: Workload, path: Path) -> int:
    """Write every record as one JSON line; returns the number of lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    dumps = encoder().encode
    with path.open("w", encoding="utf-8") as out:
        buffer = []
        for record in workload.records():
            buffer.append(dumps(record))
            count += 1
            if len(buffer) >= 10_000:
                out.write("\n".join(buffer) + "\n")
                buffer.clear()
        if buffer:
            out.write("\n".join(buffer) + "\n")
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--products", type=int, default=0)
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--offline-share", type=float, default=0.2)
    parser.add_argument("--cancel-share", type=float, default=0.02)
    parser.add_argument("--resend-share", type=float, default=0.01)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--site", default="bench")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config = Config(
        orders=args.orders,
        products=args.products,
        customers=args.customers,
        offline_share=args.offline_share,
        cancel_share=args.cancel_share,
        resend_share=args.resend_share,
        days=args.days,
        seed=args.seed,
        site=args.site,
    )
    workload = Workload(config)
    lines = write_jsonl(workload, args.out)
    print(
        f"{lines} records ({config.orders} orders, {workload.product_count} products,"
        f" {workload.customers} customers) written to {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
