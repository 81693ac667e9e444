"""Crash harness: SIGKILL a real server many times under a mixed stream of order changes, and
check that every acknowledged change survived, once.

    .venv/bin/python -m bench.crash --database sqlite --kills 20 --requests 50000
    .venv/bin/python -m bench.crash --database postgresql://postgres@127.0.0.1:5432/test \\
        --kills 20 --requests 50000

``--connections`` drivers, each on its own keep-alive connection, run order lives: a
cancellation before its order now and then (held), the order (online through rest.pagex or
offline through the smart API), re-sends, an update, partial and whole cancels and their
retries, with product page views in between. Each driver owns its orders and keeps what the
server acknowledged (a 2xx reply) as the expected state of each one.

The server is killed with SIGKILL (with every process it started) at random moments: after a
random share of the requests, a few milliseconds into whatever is in flight, sometimes just
after a restart. After each kill ``recotrack check`` must find the statistics consistent;
then the server is restarted on the same database. A request cut off by a kill (or answered
503) may or may not have been made: a driver sends an order or a whole cancellation again
(both are idempotent, so the change must count once), and finds out by reading whether a
partial cancellation (which is not) was made. At the end every order is read back and compared
with what was acknowledged, top sellers, bought together, daily reports and buyer histories
are compared with a recomputation from the acknowledged states (more on the server: counted
twice; less: lost), and ``recotrack check`` runs once more.

A JSON summary is printed and written (``--out``); the exit status is 1 unless it is clean.
SQLite runs on a new file in a temporary directory; PostgreSQL in a new schema of the given
database, dropped afterwards (``--keep`` keeps either).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2

ONLINE, OFFLINE = "online", "offline"
PRODUCTS = tuple(f"P{n:02d}" for n in range(12))
PRICES = ("0.30", "1.00", "2.50", "9.99")
OFFLINE_CHANNELS = ("store", "callcentre")
Items = list[tuple[str, int]] | None  # None: the whole order
View = tuple[bool, str, dict[str, tuple[int, int, str]]]  # exists, state, ref -> (qty, live, price)


def log(message: str) -> None:
    print(f"[crash {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def recotrack_command() -> list[str]:
    """The ``recotrack`` beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("recotrack")
    found = str(beside) if beside.exists() else shutil.which("recotrack")
    if not found:
        raise SystemExit("recotrack is not installed: pip install -e '.[dev]'")
    return [found]


def server_env(admin_token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOTRACK_")}
    env["RECOTRACK_ADMIN_TOKEN"] = admin_token
    env.update(extra or {})
    return env


class ServerProcess:
    """``recotrack serve`` on 127.0.0.1 in a process group of its own, so that one SIGKILL
    takes it and every worker it started. Use it as a context manager: it is killed on exit,
    whatever happened."""

    def __init__(
        self,
        database: str,
        log_path: Path,
        env: dict[str, str],
        workers: int = 1,
        start_timeout: float = 30.0,
    ) -> None:
        self.database = database
        self.log_path = log_path
        self.env = env
        self.workers = workers
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            command = [*recotrack_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
            command += ["--workers", str(self.workers), "--database", self.database]
            with self.log_path.open("ab") as out:
                self.process = subprocess.Popen(
                    command,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return
            self.kill()
        raise RuntimeError(f"the server did not start; see {self.log_path}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL the process group; wait until the server process is gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        self.process = None

    def group_pids(self) -> list[int]:
        """Every live process of the server's group (the server and its workers)."""
        if self.process is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields_ = stat.rsplit(")", 1)[1].split()
            if int(fields_[2]) == self.process.pid:  # field 5: the process group
                pids.append(int(entry.name))
        return pids

    def rss_bytes(self) -> int:
        """Resident memory of the server and its workers, from /proc."""
        total = 0
        for pid in self.group_pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total


def run_check(database: str, env: dict[str, str]) -> tuple[bool, str]:
    """``recotrack check`` on the database: (clean, its output)."""
    done = subprocess.run(
        [*recotrack_command(), "check", "--database", database],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode == 0, (done.stdout + done.stderr)[-2000:]


@contextlib.contextmanager
def database_for(spec: str, work: Path, keep: bool) -> Iterator[str]:
    """A new, empty database: a SQLite file under ``work``, or a schema of its own in the
    PostgreSQL database ``spec`` names (dropped afterwards unless ``keep``)."""
    if spec == "sqlite":
        yield f"sqlite:///{work / 'crash.db'}"
        return
    if spec.startswith("sqlite:///"):
        yield spec
        return
    import psycopg

    schema = f"rt_crash_{secrets.token_hex(5)}"
    with psycopg.connect(spec, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in spec else "?"
    try:
        yield f"{spec}{sep}options=-csearch_path%3D{schema}"
    finally:
        if not keep:
            with psycopg.connect(spec, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def shown_url(url: str) -> str:
    """The database URL without a password (after the user name, or ``password=``)."""
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    return re.sub(r"^([a-z]+://[^:/@]+):[^@]*@", r"\1:***@", url)


# -- what each order should be, from the changes the server acknowledged --------------------


@dataclass
class Expected:
    exists: bool = False
    lines: dict[str, int] = field(default_factory=dict)  # refCode -> quantity
    prices: dict[str, Decimal] = field(default_factory=dict)
    cancelled: dict[str, int] = field(default_factory=dict)
    whole: bool = False
    held: list[Items] = field(default_factory=list)  # acknowledged 202s not applied yet

    def copy(self) -> Expected:
        return replace(
            self,
            lines=dict(self.lines),
            prices=dict(self.prices),
            cancelled=dict(self.cancelled),
            held=list(self.held),
        )

    def live(self) -> dict[str, int]:
        if self.whole:
            return {ref: 0 for ref in self.lines}
        return {ref: qty - self.cancelled.get(ref, 0) for ref, qty in self.lines.items()}

    @property
    def state(self) -> str:
        if not any(self.live().values()):
            return "cancelled"
        return "partially-cancelled" if any(self.cancelled.values()) else "placed"

    def place(self, content: dict[str, tuple[int, Decimal]]) -> None:
        lines = {ref: qty for ref, (qty, _) in content.items()}
        prices = {ref: price for ref, (_, price) in content.items()}
        if self.exists:
            if (lines, prices) != (self.lines, self.prices):  # an update: cancels stay
                self.lines, self.prices = lines, prices
                self.cancelled = {
                    ref: min(n, lines[ref]) for ref, n in self.cancelled.items() if ref in lines
                }
            return
        self.exists, self.lines, self.prices = True, lines, prices
        for items in self.held:
            if items is None:
                self.whole = True
                continue
            for ref, qty in items:
                if ref in self.lines:
                    taken = min(qty, self.live()[ref])
                    self.cancelled[ref] = self.cancelled.get(ref, 0) + taken
        self.held = []

    def cancel(self, items: Items) -> None:
        if not self.exists:
            if items is not None or None not in self.held:  # a whole one is held once
                self.held.append(items)
            return
        if items is None:
            self.whole = True
            return
        for ref, qty in items:
            self.cancelled[ref] = self.cancelled.get(ref, 0) + qty

    def view(self) -> View:
        if not self.exists:
            return (False, "", {})
        live = self.live()
        return (
            True,
            self.state,
            {ref: (qty, live[ref], f"{self.prices[ref]:.2f}") for ref, qty in self.lines.items()},
        )


@dataclass(frozen=True, eq=False)
class Site:
    name: str
    client_token: str
    site_tokens: dict[str, str]  # offline channel -> siteToken
    offline_crowd: bool
    cancel_auth: str


@dataclass
class Order:
    site: Site
    source: str
    channel: str  # the offline channel; "" online
    order_no: str
    acked: Expected = field(default_factory=Expected)
    acks: int = 0  # acknowledged changes (2xx replies to changes of this order)
    diverged: bool = False


@dataclass
class Doubt:
    """A change sent whose outcome is unknown: cut off by a kill, or answered 503."""

    order: Order
    op: str  # place or cancel
    arg: Any
    after: Expected


class Unexpected(Exception):
    """The server answered something the acknowledged states rule out."""


# -- the drivers ----------------------------------------------------------------------------


@dataclass
class Shared:
    """What the drivers share with the harness: counters under one lock, and round control."""

    admin_token: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    killing: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)
    problems: list[str] = field(default_factory=list)
    cut_off: int = 0
    unexpected_transport: int = 0
    retried: int = 0
    resolved_by_reading: int = 0
    found_made: int = 0  # changes in doubt found to have been made before the kill
    overloaded: int = 0

    def count(self, kind: str) -> None:
        with self.lock:
            self.requests += 1
            self.kinds[kind] += 1

    def status(self, code: int) -> None:
        with self.lock:
            self.statuses[code] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text[:600])


class Driver:
    """One connection's worth of clients: runs order lives, one request at a time."""

    def __init__(self, index: int, seed: int, sites: list[Site], shared: Shared) -> None:
        self.index = index
        self.rng = random.Random(f"{seed}-{index}")
        self.sites = sites
        self.shared = shared
        self.cuid = f"cuid-{seed}-{index}"
        self.user = f"user-{seed}-{index}"
        self.sessions: dict[str, str] = {}  # site -> a session the server issued
        self.orders: list[Order] = []
        self.doubt: Doubt | None = None
        self._life: Iterator[tuple[str, Any]] | None = None
        self._order: Order | None = None
        self._serial = 0
        self.seed = seed
        self.failures = 0

    # -- one round, until the server dies (or, when draining, until the lives end) -------

    def run_round(self, url: str) -> None:
        try:
            self._round(url)
        except Exception as exc:  # a bug here or a broken answer: reported, never hidden
            self.shared.problem(f"driver {self.index} failed: {exc!r}")

    def _round(self, url: str) -> None:
        with httpx2.Client(base_url=url, timeout=30) as client:
            try:
                for site in self.sites:
                    if site.name not in self.sessions:
                        self.sessions[site.name] = self._new_session(client, site)
                for _ in range(10_000_000):  # bounded: a round ends by a kill or draining
                    try:
                        if self.doubt is not None:
                            self._resolve(client)
                        if self.shared.draining.is_set() and self._life is None:
                            return
                        self._step(client)
                    except Unexpected as exc:  # the order is dropped; the others go on
                        self.shared.problem(f"driver {self.index}: {exc}")
                        self.doubt = self._life = self._order = None
                        self.failures += 1
                        if self.failures >= 10:
                            return
            except httpx2.TransportError:
                with self.shared.lock:
                    if self.shared.killing.is_set():
                        self.shared.cut_off += 1
                    else:
                        self.shared.unexpected_transport += 1

    def _new_session(self, client: httpx2.Client, site: Site) -> str:
        page = {"type": "home", "session": "new", "cuid": self.cuid}
        response = self._page(client, site, page, "page")
        if response.status_code != 200:
            raise Unexpected(f"no session: {response.status_code} {response.text[:300]}")
        session: str = response.json()["session"]["session"]
        return session

    def _step(self, client: httpx2.Client) -> None:
        if self._life is None:
            self._serial += 1
            source = ONLINE if self.rng.random() < 0.6 else OFFLINE
            site = self.rng.choice(self.sites)
            channel = self.rng.choice(OFFLINE_CHANNELS) if source == OFFLINE else ""
            order_no = f"c{self.seed}-{self.index}-{self._serial}"
            self._order = Order(site, source, channel, order_no)
            self.orders.append(self._order)
            self._life = self._plan(self._order)
        assert self._order is not None
        if self.rng.random() < 0.1:  # a product page: a read of the recommendations
            ref = self.rng.choice(PRODUCTS)
            page = {
                "type": "product",
                "session": self.sessions[self._order.site.name],
                "cuid": self.cuid,
                "product": {"refCode": ref},
            }
            self._page(client, self._order.site, page, "product-page")
            return
        step = next(self._life, None)
        if step is None or self._order.diverged:
            self._life = self._order = None
            return
        self._change(client, self._order, *step)

    def _plan(self, order: Order) -> Iterator[tuple[str, Any]]:
        """One order's life; cancels are decided on what is acknowledged so far."""
        rng = self.rng

        def content() -> dict[str, tuple[int, Decimal]]:
            refs = rng.sample(PRODUCTS, rng.randint(1, 4))
            return {ref: (rng.randint(1, 3), Decimal(rng.choice(PRICES))) for ref in refs}

        first = content()
        if rng.random() < 0.2:  # held until the order arrives
            ref = rng.choice(sorted(first))
            yield "cancel", None if rng.random() < 0.4 else [(ref, rng.randint(1, 2))]
        yield "place", first
        if rng.random() < 0.4:
            yield "place", first  # a reload of the confirmation page
        latest = first
        if rng.random() < 0.35:
            latest = content()
            yield "place", latest  # an update
        for _ in range(rng.randint(0, 2)):
            live = {ref: n for ref, n in order.acked.live().items() if n}
            if live:
                ref = rng.choice(sorted(live))
                yield "cancel", [(ref, rng.randint(1, live[ref]))]
        if rng.random() < 0.3:
            yield "cancel", None
            if rng.random() < 0.5:
                yield "cancel", None  # a retry
        if rng.random() < 0.1:
            yield "place", latest  # a late re-send after the cancels

    # -- a change and its answer ---------------------------------------------------------

    def _change(self, client: httpx2.Client, order: Order, op: str, arg: Any) -> None:
        after = order.acked.copy()
        if op == "place":
            after.place(arg)
        else:
            after.cancel(arg)
        self.doubt = Doubt(order, op, arg, after)
        response = self._send(client, order, op, arg)
        if response.status_code == 503:
            with self.shared.lock:
                self.shared.overloaded += 1
            self._resolve(client)
            return
        self._expect(order, op, arg, after, response, retry=False)
        order.acked, self.doubt = after, None
        order.acks += 1

    def _expect(
        self,
        order: Order,
        op: str,
        arg: Any,
        after: Expected,
        response: httpx2.Response,
        retry: bool,
    ) -> None:
        """Raise ``Unexpected`` unless the reply is what ``after`` says (a retry of a change
        that may have been made already is 200 where the first would be 201)."""
        if op == "place":
            created = not order.acked.exists
            if order.source == ONLINE:
                statuses = {200}
            elif retry and created:
                statuses = {200, 201}
            else:
                statuses = {201} if created else {200}
            state = after.state
        else:
            statuses = {200} if after.exists else {202}
            state = after.state if after.exists else "cancel-pending"
        try:
            got = response.json().get("order", {}).get("state")
        except ValueError:
            got = None
        if response.status_code not in statuses or got != state:
            order.diverged = True
            raise Unexpected(
                f"{order.site.name} {order.source} {order.order_no} {op} {arg}"
                f"{' (retry)' if retry else ''}: expected {sorted(statuses)} {state},"
                f" got {response.status_code} {response.text[:300]}"
            )

    def _resolve(self, client: httpx2.Client) -> None:
        """Settle the change in doubt: send an idempotent one again, read for a partial cancel."""
        doubt = self.doubt
        assert doubt is not None
        order = doubt.order
        for attempt in range(20):
            if doubt.op == "place" or doubt.arg is None:
                response = self._send(client, order, doubt.op, doubt.arg)
                if response.status_code == 503:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self._expect(order, doubt.op, doubt.arg, doubt.after, response, retry=True)
                created = order.source == OFFLINE and doubt.op == "place" and not order.acked.exists
                with self.shared.lock:
                    self.shared.retried += 1
                    if created and response.status_code == 200:  # it was made before the kill
                        self.shared.found_made += 1
                order.acked, order.acks = doubt.after, order.acks + 1
            else:
                seen = read_view(client, self.shared, order)
                if seen is None:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                made = self._made(client, order, seen, doubt)
                if made:
                    order.acked, order.acks = doubt.after, order.acks + 1
                with self.shared.lock:
                    self.shared.resolved_by_reading += 1
                    if made:
                        self.shared.found_made += 1
            self.doubt = None
            return
        raise Unexpected(f"{order.order_no}: still 503 after 20 tries")

    def _made(self, client: httpx2.Client, order: Order, seen: View, doubt: Doubt) -> bool:
        """Whether the partial cancellation in doubt was made, from the order as read."""
        if seen[0]:
            if seen == doubt.after.view():
                return True
            if seen == order.acked.view():
                return False
            order.diverged = True
            raise Unexpected(f"{order.order_no}: after a cut-off partial cancel it is {seen}")
        held = read_held(client, self.shared, order)
        if held == len(doubt.after.held):
            return True
        if held == len(order.acked.held):
            return False
        order.diverged = True
        raise Unexpected(f"{order.order_no}: {held} held after a cut-off partial cancel")

    # -- the wire --------------------------------------------------------------------------

    def _page(
        self, client: httpx2.Client, site: Site, page: dict[str, Any], kind: str
    ) -> httpx2.Response:
        jd = {"site": site.name, "clientToken": site.client_token, "channel": "web", **page}
        self.shared.count(kind)
        response = client.get("/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(jd)})
        self.shared.status(response.status_code)
        if response.status_code == 503:  # a page changes no order: nothing to settle
            with self.shared.lock:
                self.shared.overloaded += 1
        elif response.status_code != 200:
            raise Unexpected(f"{kind}: {response.status_code} {response.text[:300]}")
        return response

    def _send(self, client: httpx2.Client, order: Order, op: str, arg: Any) -> httpx2.Response:
        site = order.site
        kind = f"{order.source}-{op}" + ("" if op == "place" or arg is None else "-partial")
        self.shared.count(kind)
        if op == "place":
            items = [
                {"refCode": ref, "qty": qty, "price": str(price)}
                for ref, (qty, price) in arg.items()
            ]
            total = str(sum((price * qty for qty, price in arg.values()), Decimal(0)))
            if order.source == ONLINE:
                jd = {
                    "site": site.name,
                    "clientToken": site.client_token,
                    "channel": "web",
                    "type": "order",
                    "session": self.sessions[site.name],
                    "cuid": self.cuid,
                    "order": {
                        "orderNo": order.order_no,
                        "items": items,
                        "currency": "GBP",
                        "subtotal": total,
                        "shipping": "0",
                        "total": total,
                    },
                }
                response = client.get("/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(jd)})
            else:
                body = {
                    "user": {"id": self.user},
                    "order": {
                        "refCode": order.order_no,
                        "items": items,
                        "currency": "GBP",
                        "subTotal": total,
                        "shipping": "0",
                        "total": total,
                    },
                }
                response = client.post(
                    "/smart-api/orders/offline", json=body, headers=smart(site, order.channel)
                )
        elif order.source == ONLINE:
            params = {
                "session": self.sessions[site.name],
                "cuid": self.cuid,
                "orderNo": order.order_no,
            }
            if site.cancel_auth == "token":
                params["clientToken"] = site.client_token
            if arg is not None:
                [(ref, qty)] = arg
                params.update(refCode=ref, qty=str(qty))
            response = client.post(f"/tracker/api/v1_4/{site.name}/order/cancel.pagex", data=params)
        else:
            headers = smart(site, order.channel)
            content = None
            if arg is None:
                del headers["Content-Type"]
            else:
                content = json.dumps({"items": [{"refCode": r, "qty": q} for r, q in arg]})
            response = client.request(
                "DELETE",
                f"/smart-api/orders/offline/{quote(order.order_no, safe='')}",
                content=content,
                headers=headers,
            )
        self.shared.status(response.status_code)
        return response


def smart(site: Site, channel: str) -> dict[str, str]:
    return {
        "site": site.name,
        "siteToken": site.site_tokens[channel],
        "channel": channel,
        "Content-Type": "application/json",
    }


def admin_headers(shared: Shared) -> dict[str, str]:
    return {"Authorization": f"Bearer {shared.admin_token}"}


def read_view(
    client: httpx2.Client, shared: Shared, order: Order, kind: str = "read-order"
) -> View | None:
    """The order as the management API shows it; None on a 503."""
    shared.count(kind)
    response = client.get(
        f"/api/v1/sites/{order.site.name}/orders/{quote(order.order_no, safe='')}",
        params={"source": order.source, "channel": order.channel},
        headers=admin_headers(shared),
    )
    shared.status(response.status_code)
    if response.status_code == 503:
        return None
    if response.status_code == 404:
        return (False, "", {})
    if response.status_code != 200:
        raise Unexpected(f"reading {order.order_no}: {response.status_code} {response.text[:300]}")
    got = response.json()["order"]
    lines: dict[str, tuple[int, int, str]] = {}
    for line in got["lines"]:
        qty, live, price = lines.get(line["refCode"], (0, 0, line["price"]))
        lines[line["refCode"]] = (qty + line["quantity"], live + line["liveQuantity"], price)
    return (True, got["state"], lines)


def read_held(client: httpx2.Client, shared: Shared, order: Order) -> int:
    """How many cancellations the server holds for this order."""
    shared.count("read-held")
    response = client.get(f"/api/v1/sites/{order.site.name}/held", headers=admin_headers(shared))
    shared.status(response.status_code)
    if response.status_code != 200:
        raise Unexpected(f"reading held: {response.status_code} {response.text[:300]}")
    return sum(
        1
        for held in response.json()["held"]
        if (held["orderNo"], held["source"], held["channel"])
        == (order.order_no, order.source, order.channel)
    )


# -- the statistics the acknowledged states make --------------------------------------------


@dataclass
class Expectation:
    """API.md section 7 recomputed from the acknowledged states of one site's orders."""

    units: Counter[str] = field(default_factory=Counter)
    revenue: dict[str, Decimal] = field(default_factory=dict)
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    report: dict[str, Decimal] = field(default_factory=dict)
    history: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, site: Site, orders: list[tuple[Order, str, str]]) -> Expectation:
        """``orders``: (order, its cuid, its user id)."""
        made = cls()
        report = Counter[str]()
        money: dict[str, Decimal] = {"revenue": Decimal(0), "cancelledRevenue": Decimal(0)}
        for order, cuid, user in orders:
            state = order.acked
            if not state.exists:
                continue
            live = {ref: n for ref, n in state.live().items() if n}
            report["orders"] += 1 if live else 0
            report["units"] += sum(live.values())
            report["cancelledOrders"] += 1 if state.state == "cancelled" else 0
            for ref, qty in state.lines.items():
                money["revenue"] += state.prices[ref] * live.get(ref, 0)
                money["cancelledRevenue"] += state.prices[ref] * (qty - live.get(ref, 0))
            who = ("cuid", cuid) if order.source == ONLINE else ("userId", user)
            bought = made.history.setdefault(who, Counter())
            for ref, n in live.items():
                bought[ref] += n
            if order.source == OFFLINE and not site.offline_crowd:
                continue
            for ref, n in live.items():
                made.units[ref] += n
                made.revenue[ref] = made.revenue.get(ref, Decimal(0)) + state.prices[ref] * n
            for a, b in combinations(sorted(live), 2):
                made.pairs[(a, b)] += 1
                made.pairs[(b, a)] += 1
        made.report = {key: Decimal(n) for key, n in report.items()} | money
        return made


def compare(
    name: str, have: dict[Any, Any], want: dict[Any, Any], found: list[tuple[str, str]]
) -> None:
    """Record each key whose figure differs: ("over" or "under", what)."""
    for key in sorted(set(have) | set(want), key=str):
        got, expected = have.get(key, 0), want.get(key, 0)
        if Decimal(str(got)) != Decimal(str(expected)):
            kind = "over" if Decimal(str(got)) > Decimal(str(expected)) else "under"
            found.append((kind, f"{name} {key}: server {got}, acknowledged {expected}"))


# -- the harness ----------------------------------------------------------------------------


@dataclass
class Config:
    database: str = "sqlite"
    kills: int = 20
    requests: int = 50_000
    seed: int = 1
    connections: int = 16
    workers: int = 1
    keep: bool = False
    work: Path | None = None  # where the SQLite file and the server log go (default: a temp dir)
    # Called with the database URL after each kill, while the server is down: the harness's
    # own test damages the database here to see that the harness notices.
    after_kill: Callable[[str], None] | None = None


def kill_points(config: Config, rng: random.Random) -> list[int]:
    """Requests to run in each round before its kill (the last round has no kill). One kill
    in six comes almost at once after a restart, while the drivers settle their doubts."""
    shares = [rng.uniform(0.3, 1.7) for _ in range(config.kills + 1)]
    early = [rng.random() < 1 / 6 for _ in range(config.kills)] + [False]
    scale = config.requests / sum(s for s, e in zip(shares, early, strict=True) if not e)
    return [
        rng.randint(0, 8) if e else max(1, round(s * scale))
        for s, e in zip(shares, early, strict=True)
    ]


def setup_sites(url: str, shared: Shared, seed: int) -> list[Site]:
    """Two sites with cancellations on: one counts offline orders in the crowd and asks for an
    issued session to cancel; the other does not, and asks for a clientToken too."""
    sites = []
    tag = secrets.token_hex(3)
    for suffix, crowd, auth in (("a", True, "session"), ("b", False, "token")):
        name = f"crash{seed}{tag}{suffix}"
        response = httpx2.post(
            f"{url}/api/v1/sites",
            json={
                "name": name,
                "cancellations": True,
                "cancelAuth": auth,
                "offlineOrdersAffectCrowd": crowd,
            },
            headers=admin_headers(shared),
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"creating a site: {response.status_code} {response.text}")
        made = response.json()["site"]
        tokens = {channel: made["siteTokens"][channel] for channel in OFFLINE_CHANNELS}
        sites.append(Site(name, made["clientTokens"]["web"], tokens, crowd, auth))
    return sites


class Harness:
    def __init__(self, config: Config, say: Callable[[str], None] = log) -> None:
        self.config = config
        self.say = say
        self.rng = random.Random(config.seed)
        self.shared = Shared(admin_token=secrets.token_urlsafe(32))
        self.kills: list[dict[str, Any]] = []
        self.checks = {"runs": 0, "failures": 0}
        self.check_output: list[str] = []

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        load_start = os.getloadavg()
        with contextlib.ExitStack() as stack:
            work = self.config.work
            if work is None:
                made = tempfile.mkdtemp(prefix="recotrack-crash-")
                work = Path(made)
                if not self.config.keep:
                    stack.callback(shutil.rmtree, made, True)
            work.mkdir(parents=True, exist_ok=True)
            url = stack.enter_context(database_for(self.config.database, work, self.config.keep))
            env = server_env(self.shared.admin_token)
            server = stack.enter_context(
                ServerProcess(url, work / "server.log", env, self.config.workers)
            )
            summary = self._run(server, url, env)
        summary.update(
            seconds=round(time.monotonic() - started, 1),
            load_average_start=[round(x, 2) for x in load_start],
            load_average_end=[round(x, 2) for x in os.getloadavg()],
            cpus=os.cpu_count(),
        )
        return summary

    def _run(self, server: ServerProcess, url: str, env: dict[str, str]) -> dict[str, Any]:
        config, shared = self.config, self.shared
        server.start()
        sites = setup_sites(server.url, shared, config.seed)
        drivers = [Driver(n, config.seed, sites, shared) for n in range(config.connections)]
        points = kill_points(config, self.rng)
        self.say(
            f"{config.database.split('://')[0]}: {config.requests} requests, {config.kills}"
            f" kills, {config.connections} connections"
        )
        for round_no, point in enumerate(points):
            last = round_no == len(points) - 1
            before = shared.requests
            shared.killing.clear()
            threads = [
                threading.Thread(target=d.run_round, args=(server.url,), daemon=True)
                for d in drivers
            ]
            for thread in threads:
                thread.start()
            self._wait(threads, before + point)
            if last:
                shared.draining.set()  # the drivers end the lives they are in, and stop
                for thread in threads:
                    thread.join(timeout=120)
                if any(t.is_alive() for t in threads):
                    shared.problem("drivers did not finish their lives")
                break
            time.sleep(self.rng.uniform(0, 0.03))  # into whatever is in flight
            shared.killing.set()
            in_flight = sum(1 for d in drivers if d.doubt is not None)
            server.kill()
            for thread in threads:
                thread.join(timeout=60)
            if config.after_kill is not None:
                config.after_kill(url)
            clean = self._check(url, env)
            self.kills.append(
                {"after_requests": shared.requests, "in_flight": in_flight, "check_clean": clean}
            )
            self.say(
                f"kill {len(self.kills)}/{config.kills}: {shared.requests} requests,"
                f" {in_flight} changes in flight, check {'clean' if clean else 'FAILED'}"
            )
            server.start()
        if any(d.doubt is not None for d in drivers):
            shared.problem("a change was left in doubt at the end")
        verdict = self._verify(server.url, drivers, sites)
        server.kill()
        self._check(url, env)
        return self._summary(url, drivers, verdict)

    def _wait(self, threads: list[threading.Thread], target: int) -> None:
        """Until ``target`` requests were sent, every driver has stopped, or nothing moves for
        a minute."""
        last, moved = self.shared.requests, time.monotonic()
        while self.shared.requests < target and any(t.is_alive() for t in threads):
            time.sleep(0.002)
            if self.shared.requests != last:
                last, moved = self.shared.requests, time.monotonic()
            elif time.monotonic() - moved > 60:
                self.shared.problem("no request was sent for a minute")
                return

    def _check(self, url: str, env: dict[str, str]) -> bool:
        clean, output = run_check(url, env)
        self.checks["runs"] += 1
        if not clean:
            self.checks["failures"] += 1
            self.check_output.append(output)
        return clean

    def _verify(self, url: str, drivers: list[Driver], sites: list[Site]) -> dict[str, Any]:
        """Every order as acknowledged; the statistics as the acknowledged states make them."""
        shared = self.shared
        orders = [order for d in drivers for order in d.orders]
        local = threading.local()
        clients: list[httpx2.Client] = []

        def check_one(order: Order) -> str | None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx2.Client(base_url=url, timeout=60)
                with shared.lock:
                    clients.append(client)
            try:
                seen = read_view(client, shared, order, "verify")
            except (Unexpected, httpx2.TransportError) as exc:
                return f"{order.order_no}: {exc}"
            want = order.acked.view()
            if seen != want:
                return f"{order.site.name} {order.source} {order.order_no}: server {seen}, acknowledged {want}"
            return None

        try:
            with ThreadPoolExecutor(8) as pool:
                wrong = [w for w in pool.map(check_one, orders) if w is not None]
        finally:
            for client in clients:
                client.close()
        found: list[tuple[str, str]] = []
        held_left = 0
        today = datetime.now(UTC).date()
        with httpx2.Client(base_url=url, timeout=120, headers=admin_headers(shared)) as client:
            for site in sites:
                mine = [(o, d.cuid, d.user) for d in drivers for o in d.orders if o.site == site]
                want = Expectation.of(site, mine)
                base = f"/api/v1/sites/{site.name}"
                for by in ("units", "revenue"):
                    recs = self._get(client, f"{base}/recs/top-sellers", by=by, days=3, limit=1000)[
                        "recs"
                    ]
                    have = {r["refCode"]: r["score"] for r in recs}
                    expected = want.units if by == "units" else want.revenue
                    compare(f"{site.name} top sellers by {by}", have, dict(expected), found)
                have_pairs: dict[tuple[str, str], int] = {}
                for ref in PRODUCTS:
                    recs = self._get(
                        client, f"{base}/recs/bought-together", refCode=ref, limit=1000
                    )["recs"]
                    have_pairs.update({(ref, r["refCode"]): r["score"] for r in recs})
                compare(f"{site.name} bought together", have_pairs, dict(want.pairs), found)
                days = self._get(
                    client,
                    f"{base}/reports/daily",
                    **{"from": (today - timedelta(days=2)).isoformat(), "to": today.isoformat()},
                )["days"]
                report = {
                    key: sum((Decimal(str(day[key])) for day in days), Decimal(0))
                    for key in want.report
                }
                compare(f"{site.name} daily report", report, want.report, found)
                for (kind, who), bought in sorted(want.history.items()):
                    rows = self._get(client, f"{base}/history", **{kind: who})["history"]
                    have = {r["refCode"]: r["quantity"] for r in rows}
                    compare(f"{site.name} history of {who}", have, dict(bought), found)
                held_left += len(self._get(client, f"{base}/held")["held"])
        return {"wrong": wrong, "stats": found, "held_left": held_left, "orders": len(orders)}

    def _get(self, client: httpx2.Client, path: str, **params: Any) -> Any:
        self.shared.count("verify")
        response = client.get(path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def _summary(self, url: str, drivers: list[Driver], verdict: dict[str, Any]) -> dict[str, Any]:
        shared = self.shared
        over = [text for kind, text in verdict["stats"] if kind == "over"]
        under = [text for kind, text in verdict["stats"] if kind == "under"]
        orders = [order for d in drivers for order in d.orders]
        server_errors = sum(n for code, n in shared.statuses.items() if code >= 500 and code != 503)
        problems = shared.problems + verdict["wrong"][:20] + over[:20] + under[:20]
        problems += [f"recotrack check: {text}" for text in self.check_output[:5]]
        stream = sum(n for kind, n in shared.kinds.items() if kind != "verify")
        summary = {
            "backend": "postgresql" if url.startswith("postgres") else "sqlite",
            "database": shown_url(url),
            "seed": self.config.seed,
            "connections": self.config.connections,
            "workers": self.config.workers,
            "requests": stream,
            "verification_requests": shared.kinds["verify"],
            "requests_by_kind": dict(sorted(shared.kinds.items())),
            "statuses": {str(k): v for k, v in sorted(shared.statuses.items())},
            "server_errors": server_errors,
            "overloaded_503": shared.overloaded,
            "kills": len(self.kills),
            "cut_off": shared.cut_off,
            "unexpected_transport_errors": shared.unexpected_transport,
            "retried_after_doubt": shared.retried,
            "resolved_by_reading": shared.resolved_by_reading,
            "in_doubt_found_made": shared.found_made,
            "orders": len(orders),
            "acknowledged_changes": sum(order.acks for order in orders),
            "acknowledged_changes_checked": sum(
                order.acks for order in orders if not order.diverged
            ),
            "lost": len(verdict["wrong"]) + len(under),
            "double_counted": len(over),
            "orders_not_as_acknowledged": len(verdict["wrong"]),
            "held_left": verdict["held_left"],
            "check_runs": self.checks["runs"],
            "check_failures": self.checks["failures"],
            "kill_points": self.kills,
            "problems": problems[:60],
        }
        summary["ok"] = (
            not problems
            and summary["lost"] == 0
            and summary["double_counted"] == 0
            and server_errors == 0
            and summary["check_failures"] == 0
            and summary["unexpected_transport_errors"] == 0
            and summary["held_left"] == 0
            and summary["kills"] == self.config.kills
        )
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crash", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database", default="sqlite", help="sqlite (a new file) or postgresql://..."
    )
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the server")
    parser.add_argument("--requests", type=int, default=50_000, help="requests to drive")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16, help="drivers, one connection each")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--out", type=Path, help="where to write the JSON summary")
    parser.add_argument("--keep", action="store_true", help="keep the database and server log")
    parser.add_argument("--work", type=Path, help="directory for the SQLite file and the log")
    args = parser.parse_args(argv)
    config = Config(
        database=args.database,
        kills=args.kills,
        requests=args.requests,
        seed=args.seed,
        connections=args.connections,
        workers=args.workers,
        keep=args.keep,
        work=args.work,
    )
    summary = Harness(config).run()
    text = json.dumps(summary, indent=2)
    print(text)
    out = args.out or Path("var") / "crash" / f"crash-{summary['backend']}-seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    log(f"summary written to {out}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
