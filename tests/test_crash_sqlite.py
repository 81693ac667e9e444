"""A 2xx reply means the change is durable (API.md 7): SIGKILL the real server in the middle of
a stream of writes, restart it on the same SQLite file, and find every acknowledged order,
update and cancellation (held ones too) as it was acknowledged, and `recotrack check` clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.slow

ADMIN = "crash-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
RECOTRACK = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "recotrack"
SITE = "crash"
CUID = "crash-cuid"
PRODUCTS = ("K1", "K2", "K3", "K4", "K5")
THREADS = 4
ROUNDS = 3
ONLINE, OFFLINE = "online", "offline"
Items = list[tuple[str, int]] | None  # None: the whole order


# -- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``recotrack serve`` in its own process group, so SIGKILL takes its workers too."""

    def __init__(self, database: str, log: Path) -> None:
        self.database = database
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RECOTRACK_")}
        self.env["RECOTRACK_ADMIN_TOKEN"] = ADMIN

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(RECOTRACK), "serve", "--port", str(port), "--database", self.database],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx2.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not answer /healthz: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the server and every worker it started; wait until they are gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "server.log")
    try:
        yield running
    finally:
        running.kill()


# -- what each order should be, from its acknowledged changes -------------------------------


@dataclass
class Expected:
    exists: bool = False
    lines: dict[str, int] = field(default_factory=dict)  # refCode -> quantity
    cancelled: dict[str, int] = field(default_factory=dict)
    whole: bool = False
    held: list[Items] = field(default_factory=list)  # acknowledged with 202, not yet applied

    def copy(self) -> Expected:
        return replace(
            self, lines=dict(self.lines), cancelled=dict(self.cancelled), held=[*self.held]
        )

    def live(self) -> dict[str, int]:
        if self.whole:
            return {ref: 0 for ref in self.lines}
        return {ref: qty - self.cancelled.get(ref, 0) for ref, qty in self.lines.items()}

    @property
    def state(self) -> str:
        live = self.live()
        if not any(live.values()):
            return "cancelled"
        return "partially-cancelled" if any(self.cancelled.values()) else "placed"

    def place(self, lines: dict[str, int]) -> int:
        """The reply's HTTP status for an offline order (online ones always answer 200)."""
        if self.exists:
            if lines != self.lines:  # an update: cancellations made so far stay
                self.lines = dict(lines)
                self.cancelled = {
                    ref: min(n, lines[ref]) for ref, n in self.cancelled.items() if ref in lines
                }
            return 200
        self.exists, self.lines = True, dict(lines)
        for items in self.held:
            if items is None:
                self.whole = True
            else:
                for ref, qty in items:
                    if ref in self.lines:
                        live = self.live()[ref]
                        self.cancelled[ref] = self.cancelled.get(ref, 0) + min(qty, live)
        self.held = []
        return 201

    def cancel(self, items: Items) -> int:
        if not self.exists:
            if items is not None or None not in self.held:
                self.held.append(items)
            return 202
        if items is None:
            self.whole = True
        else:
            for ref, qty in items:
                self.cancelled[ref] = self.cancelled.get(ref, 0) + qty
        return 200

    def view(self) -> tuple[bool, str, dict[str, int]]:
        return (self.exists, self.state if self.exists else "", self.live() if self.exists else {})


@dataclass
class Tracked:
    source: str
    order_no: str
    acked: Expected = field(default_factory=Expected)
    maybe: Expected | None = None  # after the request the kill cut off, if it was made
    acks: int = 0  # 2xx replies

    @property
    def channel(self) -> str:
        return "store" if self.source == OFFLINE else ""


@dataclass
class Shop:
    """The site's tokens and the session cancels are sent in."""

    url: str
    client_token: str
    site_token: str
    session: str


def send(client: httpx2.Client, shop: Shop, order: Tracked, op: str, arg: Any) -> Any:
    if op == "place":
        lines = [{"refCode": ref, "qty": qty, "price": "2.50"} for ref, qty in arg.items()]
        total = str(sum(Decimal("2.50") * qty for qty in arg.values()))
        if order.source == ONLINE:
            jd = {
                "site": SITE,
                "clientToken": shop.client_token,
                "channel": "web",
                "type": "order",
                "session": "new",
                "cuid": CUID,
                "order": {
                    "orderNo": order.order_no,
                    "items": lines,
                    "currency": "GBP",
                    "subtotal": total,
                    "shipping": "0",
                    "total": total,
                },
            }
            return client.get("/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(jd)})
        body = {
            "order": {
                "refCode": order.order_no,
                "items": lines,
                "currency": "GBP",
                "subTotal": total,
                "shipping": "0",
                "total": total,
            }
        }
        return client.post("/smart-api/orders/offline", json=body, headers=smart(shop))
    if order.source == ONLINE:
        params = {"session": shop.session, "cuid": CUID, "orderNo": order.order_no}
        if arg is not None:
            [(ref, qty)] = arg
            params.update(refCode=ref, qty=str(qty))
        return client.post(f"/tracker/api/v1_4/{SITE}/order/cancel.pagex", params=params)
    headers = smart(shop)
    if arg is None:
        del headers["Content-Type"]
        content = None
    else:
        content = json.dumps({"items": [{"refCode": ref, "qty": qty} for ref, qty in arg]})
    return client.request(
        "DELETE", f"/smart-api/orders/offline/{order.order_no}", content=content, headers=headers
    )


def smart(shop: Shop) -> dict[str, str]:
    return {
        "site": SITE,
        "siteToken": shop.site_token,
        "channel": "store",
        "Content-Type": "application/json",
    }


def plan(rng: random.Random, order: Tracked) -> Iterator[tuple[str, Any]]:
    """One order's life: maybe a cancel before it, the order, re-sends, an update, partial and
    whole cancels (and their retries). Cancels are decided on what is acknowledged so far."""

    def content() -> dict[str, int]:
        return {ref: rng.randint(1, 3) for ref in rng.sample(PRODUCTS, rng.randint(1, 3))}

    first = content()
    if rng.random() < 0.25:
        ref = rng.choice(sorted(first))
        yield "cancel", None if rng.random() < 0.5 else [(ref, 1)]
    yield "place", first
    if rng.random() < 0.5:
        yield "place", first
    if rng.random() < 0.5:
        yield "place", content()
    for _ in range(rng.randint(0, 2)):
        live = {ref: n for ref, n in order.acked.live().items() if n}
        if live:
            ref = rng.choice(sorted(live))
            yield "cancel", [(ref, rng.randint(1, live[ref]))]
    if rng.random() < 0.4:
        yield "cancel", None
        if rng.random() < 0.5:
            yield "cancel", None


def writer(
    shop: Shop,
    seed: str,
    stop: threading.Event,
    orders: list[Tracked],
    problems: list[str],
) -> None:
    """Send order lives one request at a time until the server dies; record what was acked."""
    rng = random.Random(seed)
    with httpx2.Client(base_url=shop.url, timeout=10) as client:
        for n in range(100_000):
            order = Tracked(rng.choice((ONLINE, OFFLINE)), f"{seed}-{n}")
            orders.append(order)
            for op, arg in plan(rng, order):
                after = order.acked.copy()
                status = after.place(arg) if op == "place" else after.cancel(arg)
                if order.source == ONLINE and op == "place":
                    status = 200
                try:
                    response = send(client, shop, order, op, arg)
                except httpx2.TransportError:
                    order.maybe = after  # cut off by the kill: made or not, never acked
                    return
                got = response.json().get("order", {}).get("state")
                want = "cancel-pending" if status == 202 else after.state
                if response.status_code != status or got != want:
                    problems.append(f"{order} {op} {arg}: want {status} {want}: {response.text}")
                    return
                order.acked, order.acks = after, order.acks + 1
                if stop.is_set():
                    return


def verify(shop: Shop, orders: list[Tracked]) -> None:
    """Each order is as acknowledged (or as the one cut-off request left it); an order whose
    cancellation was acknowledged before it existed arrives with the cancellation applied."""
    with httpx2.Client(base_url=shop.url, timeout=10, headers=AUTH) as client:
        for order in orders:
            candidates = [order.acked] + ([order.maybe] if order.maybe else [])
            response = client.get(
                f"/api/v1/sites/{SITE}/orders/{order.order_no}",
                params={"source": order.source, "channel": order.channel},
            )
            if response.status_code == 404:
                seen: tuple[bool, str, dict[str, int]] = (False, "", {})
            else:
                assert response.status_code == 200, response.text
                got = response.json()["order"]
                live = {line["refCode"]: line["liveQuantity"] for line in got["lines"]}
                seen = (True, got["state"], live)
            matches = [c for c in candidates if c.view() == seen]
            assert matches, f"{order}: the server has {seen}"
            order.acked, order.maybe = matches[-1], None
            if not order.acked.exists and any(c.held for c in matches):
                # The held cancellation must have survived: the order arrives with it applied.
                lines = {"K1": 1, "K2": 1, "K3": 1, "K4": 1, "K5": 1}
                outcomes = []
                for candidate in matches:
                    after = candidate.copy()
                    after.place(lines)
                    outcomes.append((after, "warning" if candidate.held else "OK"))
                response = send(client, shop, order, "place", lines)
                assert response.status_code in (200, 201), response.text
                placed = (response.json()["order"]["state"], response.json()["status"])
                arrived = [after for after, status in outcomes if (after.state, status) == placed]
                assert arrived, f"{order}: placed after its held cancel, it is {placed}"
                order.acked = arrived[-1]


def top_sellers(orders: list[Tracked]) -> list[list[Any]]:
    units: dict[str, int] = {}
    for order in orders:
        if order.source == ONLINE and order.acked.exists:
            for ref, live in order.acked.live().items():
                units[ref] = units.get(ref, 0) + live
    ranked = sorted(((ref, n) for ref, n in units.items() if n), key=lambda r: (-r[1], r[0]))
    return [[ref, n] for ref, n in ranked]


def test_sigkill_mid_stream_loses_no_acknowledged_change(server: Server, tmp_path: Path) -> None:
    server.start()
    made = httpx2.post(
        f"{server.url}/api/v1/sites",
        json={"name": SITE, "cancellations": True},
        headers=AUTH,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    site = made.json()["site"]
    page = {"site": SITE, "clientToken": site["clientTokens"]["web"], "type": "home"}
    visit = httpx2.get(
        f"{server.url}/tracker/api/v1_4/rest.pagex",
        params={"jd": json.dumps({**page, "session": "new", "cuid": CUID})},
        timeout=10,
    )
    assert visit.status_code == 200, visit.text
    session = visit.json()["session"]["session"]
    orders: list[Tracked] = []
    cut_off = 0
    for round_no in range(ROUNDS):
        shop = Shop(server.url, site["clientTokens"]["web"], site["siteTokens"]["store"], session)
        stop = threading.Event()
        problems: list[str] = []
        threads = [
            threading.Thread(
                target=writer, args=(shop, f"r{round_no}t{t}", stop, orders, problems), daemon=True
            )
            for t in range(THREADS)
        ]
        before = len(orders)
        for thread in threads:
            thread.start()
        time.sleep(random.Random(round_no).uniform(0.8, 1.5))
        server.kill()  # mid-stream: the writers are waiting on replies
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
        assert problems == []
        assert sum(order.acks for order in orders[before:]) >= 20, "the writers made no progress"
        cut_off += sum(1 for order in orders if order.maybe is not None)

        checked = subprocess.run(
            [str(RECOTRACK), "check", "--database", server.database],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"site {SITE}: consistent" in checked.stdout

        server.start()
        shop.url = server.url
        verify(shop, orders)
        recs = httpx2.get(
            f"{server.url}/api/v1/sites/{SITE}/recs/top-sellers",
            params={"limit": 1000},
            headers=AUTH,
            timeout=10,
        )
        assert [[r["refCode"], r["score"]] for r in recs.json()["recs"]] == top_sellers(orders)
    assert cut_off > 0, "no request was in flight when the server was killed"
