"""Instructions per request, counted by callgrind: a measure of CPU work that the machine's
noise does not move.

On this shared machine the CPU time per request of the same code moves by 15 % between runs,
more than most single changes save. Instruction counts under ``valgrind --tool=callgrind`` repeat
to 0.01 % whatever else runs, so they tell whether a change made a request cheaper.

The app runs in process on a SQLite file (raw ASGI calls, 32 in flight, the server's own
batching), on the grocery products weighted by how often they are bought. Each endpoint is
driven twice, with ``--small`` and ``--large`` requests after the same set-up, and the
difference of the two totals is divided by the difference of the counts, so start-up and
set-up cancel out::

    .venv/bin/python -m bench.instructions --endpoints cancel,order,top-sellers

``import`` counts the writer's work per record of ``recotrack import`` the same way: the
grocery workload of ``--small`` and ``--large`` orders is generated and parsed outside
callgrind (the parsing process's work), and the counted run applies the parsed chunks as the
import's writer does, one transaction per chunk (decoding, the services, the SQL, the commit).

Compare two versions by running it in each checkout. ``--drive ENDPOINT N`` runs the driver
alone (no valgrind) and prints what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from recotrack.domain.sites import SiteSettings
from recotrack.http.app import create_app
from recotrack.import_records import Chunk, parse_chunk
from recotrack.importer import BATCH, apply_batch
from recotrack.services.sites import create_site
from recotrack.settings import Settings
from recotrack.store import open_store

from .workload import Config, Workload, encoder, seed_baskets

ADMIN = "instructions-admin-token-0123456789"
SITE = "bench"
SESSIONS = 200
PLACED = 900  # orders placed before any endpoint is measured (cancel.pagex cancels them)
IN_FLIGHT = 32
FORM = [(b"content-type", b"application/x-www-form-urlencoded")]
ENDPOINTS = ("cancel", "order", "top-sellers")  # and "import", per record
MOMENT = datetime(2026, 11, 1, tzinfo=UTC)  # the import's "now", and its newest order

Call = tuple[str, str, bytes, list[tuple[bytes, bytes]]]


async def asgi(app: Any, call: Call) -> tuple[int, bytes]:
    """One request through the app, as a server would make it."""
    method, path, body, headers = call
    path, _, query = path.partition("?")
    events = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def popular_products() -> list[str]:
    """Grocery products, each as often as it is bought: random choices follow popularity."""
    return [
        ref for basket in seed_baskets() for ref, qty in basket.items.items() for _ in range(qty)
    ]


def page(token: str, session: tuple[str, str], jd: dict[str, Any]) -> Call:
    fields = {"site": SITE, "clientToken": token, "session": session[0], "cuid": session[1]}
    body = "jd=" + quote(json.dumps({**fields, "lang": "en-gb", **jd}), safe="")
    return ("POST", "/tracker/api/v1_4/rest.pagex", body.encode(), FORM)


def order_page(token: str, session: tuple[str, str], order_no: str, items: list[str]) -> Call:
    lines = [{"refCode": ref, "qty": 1, "price": "2.50"} for ref in items]
    total = f"{2.5 * len(lines):.2f}"
    order = {"orderNo": order_no, "currency": "GBP", "subtotal": total, "shipping": "0"}
    return page(
        token, session, {"type": "order", "order": {**order, "total": total, "items": lines}}
    )


async def drive(endpoint: str, requests: int, database: Path) -> Counter[int]:
    """Set up a site, sessions and ``PLACED`` orders, then send ``requests`` to ``endpoint``;
    the replies' status codes."""
    rng = random.Random(7)
    products = popular_products()
    app = create_app(Settings(database_url=f"sqlite:///{database}", admin_token=ADMIN))
    admin = [(b"authorization", f"Bearer {ADMIN}".encode())]
    json_body = [*admin, (b"content-type", b"application/json")]
    site = {"name": SITE, "cancellations": True}
    status, body = await asgi(app, ("POST", "/api/v1/sites", json.dumps(site).encode(), json_body))
    if status != 201:
        raise SystemExit(f"could not create the site: {status} {body[:200]!r}")
    token = json.loads(body)["site"]["clientTokens"]["web"]
    sessions = []
    for n in range(SESSIONS):
        home = page(token, ("new", "new"), {"type": "home", "user": {"id": f"user-{n}"}})
        issued = json.loads((await asgi(app, home))[1])["session"]
        sessions.append((issued["session"], issued["cuid"]))

    def basket() -> list[str]:
        items: list[str] = []
        while len(items) < 3:
            ref = rng.choice(products)
            if ref not in items:
                items.append(ref)
        return items

    def cancel(n: int) -> Call:
        session, cuid = sessions[n % SESSIONS]
        body = f"session={quote(session)}&cuid={quote(cuid)}&orderNo=placed-{n}"
        return ("POST", f"/tracker/api/v1_4/{SITE}/order/cancel.pagex", body.encode(), FORM)

    calls: dict[str, Callable[[int], Call]] = {
        "order": lambda n: order_page(token, sessions[n % SESSIONS], f"new-{n}", basket()),
        "cancel": cancel,
        "top-sellers": lambda n: ("GET", f"/api/v1/sites/{SITE}/recs/top-sellers", b"", admin),
    }
    placed = [
        order_page(token, sessions[n % SESSIONS], f"placed-{n}", basket()) for n in range(PLACED)
    ]
    await many(app, placed)
    return await many(app, [calls[endpoint](n) for n in range(requests)])


async def many(app: Any, calls: list[Call]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(call: Call) -> None:
        async with gate:
            statuses[(await asgi(app, call))[0]] += 1

    tasks: list[Awaitable[None]] = [one(call) for call in calls]
    await asyncio.gather(*tasks)
    return statuses


def parsed_chunks(orders: int, path: Path) -> int:
    """The workload of ``orders`` orders parsed into ``recotrack import``'s chunks (orders
    prepared, as for SQLite), pickled to ``path``; how many records they hold."""
    dumps = encoder().encode
    config = Config(orders=orders, site=SITE, end=MOMENT)
    raws = [dumps(record).encode() for record in Workload(config).records()]
    chunks = [
        parse_chunk(first + 1, raws[first : first + BATCH], MOMENT, {SITE: False})
        for first in range(0, len(raws), BATCH)
    ]
    path.write_bytes(pickle.dumps(chunks))
    return len(raws)


def drive_import(chunks: Path, database: Path) -> Counter[str]:
    """Apply pickled chunks to a new site as the import's writer does; the outcomes."""
    loaded: list[Chunk] = pickle.loads(chunks.read_bytes())
    outcomes: Counter[str] = Counter()
    store = open_store(Settings(database_url=f"sqlite:///{database}"))
    try:
        store.write_sync(
            lambda repo: create_site(repo, SITE, MOMENT, SiteSettings(cancellations=True))
        )
        for chunk in loaded:
            summary = store.submit(lambda repo, c=chunk: apply_batch(c, MOMENT, repo)).result()
            outcomes.update(summary.outcomes)
    finally:
        store.close()
    return outcomes


def counted(endpoint: str, requests: int) -> tuple[int, int]:
    """Instructions of a whole driver run under callgrind, and the requests (for import: the
    records) it made."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "callgrind.out"
        extra: list[str] = []
        if endpoint == "import":
            chunks = Path(work) / "chunks.pickle"
            requests = parsed_chunks(requests, chunks)
            extra = ["--chunks", str(chunks)]
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
            + ["-m", "bench.instructions", "--drive", endpoint, str(requests), *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        found = re.search(r"Collected : (\d+)", run.stderr)
        if run.returncode != 0 or found is None:
            raise SystemExit(
                f"callgrind failed for {endpoint}: {run.stdout[-400:]}{run.stderr[-400:]}"
            )
        return int(found.group(1)), requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=900, help=f"at most {PLACED} for cancel")
    parser.add_argument("--drive", nargs=2, metavar=("ENDPOINT", "N"), help="the driver alone")
    parser.add_argument("--chunks", type=Path, help="import: parsed chunks (made if not given)")
    args = parser.parse_args(argv)
    if args.drive:
        endpoint, requests = args.drive[0], int(args.drive[1])
        with tempfile.TemporaryDirectory() as work:
            database = Path(work) / "recotrack.db"
            if endpoint == "import":
                chunks = args.chunks or Path(work) / "chunks.pickle"
                if args.chunks is None:
                    parsed_chunks(requests, chunks)
                print(
                    json.dumps({"endpoint": endpoint, "outcomes": drive_import(chunks, database)})
                )
                return
            statuses = asyncio.run(drive(endpoint, requests, database))
        print(json.dumps({"endpoint": endpoint, "statuses": dict(statuses)}))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind: apt-get install valgrind")
    for endpoint in args.endpoints.split(","):
        (small, few), (large, many_) = counted(endpoint, args.small), counted(endpoint, args.large)
        per_request = (large - small) / (many_ - few)
        unit = "record" if endpoint == "import" else "request"
        print(f"{endpoint}: {per_request / 1e6:.3f} M instructions per {unit}", flush=True)


if __name__ == "__main__":
    main()
