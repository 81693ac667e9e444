"""Throughput of cancel.pagex against real ``recotrack serve`` processes, by layout.

    .venv/bin/python bench/pg_scaling.py --database postgresql://USER@HOST/DB
    .venv/bin/python bench/pg_scaling.py --database sqlite:///tmp/bench.db --layouts 1x1

A layout ``RxW`` is R ``serve`` processes on different ports, each with ``--workers W``, all on
one database (for PostgreSQL a fresh schema per layout, dropped afterwards). Each run creates
a site with cancellations on, places ``--orders`` orders through rest.pagex and issues
sessions, then wrk (``apt-get install wrk``) sends ``--clients`` concurrent connections,
split between the replicas, each request cancelling one unit of a random order's line
through cancel.pagex, for 2 s of warm-up and then ``--seconds``. It prints requests per second
(wrk's, summed over replicas), latency percentiles, failed requests, writes per commit (from
/metrics) and whether ``recotrack check`` then finds the statistics exact. wrk runs on the
same machine: on a small machine it competes with the servers for the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx2

# The harness's helpers (bench/run.py), also when this file is run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.run import ADMIN, RECOTRACK, fresh_schema, run_recotrack, serving  # noqa: E402

AUTH = {"Authorization": f"Bearer {ADMIN}"}


@contextmanager
def database_for(url: str) -> Iterator[str]:
    """A fresh schema on PostgreSQL, a fresh file on SQLite."""
    if url.startswith("sqlite:///"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    with fresh_schema(url) as schema_url:
        yield schema_url


@contextmanager
def servers(database: str, replicas: int, workers: int) -> Iterator[list[str]]:
    """``replicas`` ``recotrack serve`` processes on ``database``, each ready (``/readyz``);
    their base URLs. Their warnings and errors go to this process's standard error."""
    command = [RECOTRACK, "serve", "--workers", str(workers), "--database", database]
    with ExitStack() as started:
        bases = [
            started.enter_context(serving(command, ready="/readyz", stderr=None))[0]
            for _ in range(replicas)
        ]
        yield [f"http://{base}" for base in bases]


LUA = """
local sessions = {%(sessions)s}
local orders = %(orders)d
local errors = 0
request = function()
  local n = math.random(0, orders - 1)
  local s = sessions[math.random(#sessions)]
  return wrk.format("POST", "/tracker/api/v1_4/bench/order/cancel.pagex?session=" .. s[1]
    .. "&cuid=" .. s[2] .. "&orderNo=B" .. n .. "&refCode=P" .. (n %% 50) .. "&qty=1")
end
"""


def prepare(bases: list[str], orders: int, sessions: int) -> list[tuple[str, str]]:
    """The site, its orders (placed through rest.pagex) and sessions for the cancels."""
    with httpx2.Client(timeout=60) as http:
        made = http.post(
            f"{bases[0]}/api/v1/sites", json={"name": "bench", "cancellations": True}, headers=AUTH
        )
        token = made.json()["site"]["clientTokens"]["web"]

        def page(base: str, **fields: object) -> tuple[str, str]:
            jd = {"site": "bench", "clientToken": token, "session": "new", "cuid": "new", **fields}
            response = http.get(
                f"{base}/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(jd)}
            )
            assert response.status_code == 200, response.text
            issued = response.json()["session"]
            return quote(issued["session"], safe=""), quote(issued["cuid"], safe="")

        for n in range(orders):
            lines = [
                {"refCode": f"P{(n + k) % 50}", "qty": 1_000_000, "price": "1.00"} for k in (0, 1)
            ]
            order = {
                "orderNo": f"B{n}",
                "items": lines,
                "currency": "GBP",
                "subtotal": "2000000",
                "shipping": "0",
                "total": "2000000",
            }
            page(bases[n % len(bases)], type="order", order=order)
        return [page(bases[n % len(bases)], type="home") for n in range(sessions)]


def load(bases: list[str], script: Path, connections: int, seconds: float) -> dict[str, float]:
    """wrk against every replica at once (connections split between them); summed figures."""
    share = max(1, connections // len(bases))
    runs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{share}", f"-d{seconds:g}s", "--latency", "-s", str(script), base],
            stdout=subprocess.PIPE,
            text=True,
        )
        for base in bases
    ]
    figures = {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "failures": 0.0}
    for run in runs:
        out, _ = run.communicate()
        figures["rps"] += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        for name, label in (("p50_ms", "50%"), ("p99_ms", "99%")):
            value = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
            assert value is not None, out
            ms = float(value.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[value.group(2)]
            figures[name] = max(figures[name], ms)
        failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        figures["failures"] += float(failed.group(1)) if failed else 0.0
    return figures


def writes_per_commit(bases: list[str]) -> float:
    """Mean writes per committed transaction, from /metrics (one worker process per replica:
    with --workers above 1 the one that answers)."""
    writes = commits = 0.0
    for base in bases:
        text = httpx2.get(f"{base}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("recotrack_write_batch_size_sum"):
                writes += float(line.split()[-1])
            elif line.startswith("recotrack_write_batch_size_count"):
                commits += float(line.split()[-1])
    return writes / commits if commits else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--layouts", default="1x1,1x2,2x1")
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32, help="wrk connections, in all")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    print(f"cancel.pagex, {args.clients} connections, {args.seconds:g} s, {os.cpu_count()} CPUs")
    for layout in args.layouts.split(","):
        replicas, workers = (int(part) for part in layout.split("x"))
        with database_for(args.database) as database, servers(database, replicas, workers) as b:
            sessions = prepare(b, args.orders, 4 * args.clients)
            with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
                pairs = ", ".join(f'{{"{s}", "{c}"}}' for s, c in sessions)
                script.write(LUA % {"sessions": pairs, "orders": args.orders})
                script.flush()
                load(b, Path(script.name), args.clients, 2)  # warm up
                figures = load(b, Path(script.name), args.clients, args.seconds)
            figures["batch"] = writes_per_commit(b)
            checked = run_recotrack("check", database=database)
        print(
            f"{layout:>4}: {figures['rps']:7.0f} req/s  p50 {figures['p50_ms']:6.1f} ms"
            f"  p99 {figures['p99_ms']:6.1f} ms  failures {figures['failures']:.0f}"
            f"  writes/commit {figures['batch']:4.1f}"
            f"  check {'exact' if checked.returncode == 0 else 'DIFFERENCES'}"
        )


if __name__ == "__main__":
    main()
