"""Several real ``recotrack serve`` processes on one PostgreSQL database (API.md 7: a 2xx reply
is durable and visible to every later read, whichever replica serves it)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest

from .conftest import POSTGRES_URL, postgres_schema_url
from .support import ADMIN, AUTH, order_body

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="PostgreSQL tests need RECOTRACK_TEST_POSTGRES_URL (.ci/run sets it)",
    ),
]
RECOTRACK = str(Path(sys.executable).with_name("recotrack"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One replica: ``recotrack serve`` in its own process group (granian and its workers)."""

    def __init__(self, database: str, logs: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = logs / f"serve-{self.port}.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECOTRACK_")},
            "RECOTRACK_ADMIN_TOKEN": ADMIN,
            "RECOTRACK_LOG_LEVEL": "warning",
        }
        command = [RECOTRACK, "serve", "--port", str(self.port), "--database", database]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, "--workers", str(workers)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx2.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"serve on port {self.port} not ready: {self.log.read_text()}")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    yield from postgres_schema_url(POSTGRES_URL)


@pytest.fixture(scope="module")
def replicas(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Two replicas started together on an empty database (so both migrate at once): one
    ``serve --workers 2`` and one ``serve``, on different ports."""
    logs = tmp_path_factory.mktemp("replicas")
    servers = [Server(database, logs, workers=2), Server(database, logs)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


class Shop:
    """One site seen through HTTP, on any replica."""

    def __init__(self, client: httpx2.Client, server: Server, name: str) -> None:
        response = client.post(
            f"{server.base}/api/v1/sites",
            json={"name": name, "cancellations": True},
            headers=AUTH,
        )
        assert response.status_code == 201, response.text
        self.name = name
        self.token = response.json()["site"]["clientTokens"]["web"]

    def page(
        self, client: httpx2.Client, server: Server, session: dict[str, str], **fields: Any
    ) -> httpx2.Response:
        jd = {"site": self.name, "clientToken": self.token, **session, **fields}
        return client.get(
            f"{server.base}/tracker/api/v1_4/rest.pagex", params={"jd": json.dumps(jd)}
        )

    def session(self, client: httpx2.Client, server: Server) -> dict[str, str]:
        response = self.page(client, server, {"session": "new", "cuid": "new"}, type="home")
        assert response.status_code == 200, response.text
        issued: dict[str, str] = response.json()["session"]
        return issued

    def cancel(
        self,
        client: httpx2.Client,
        server: Server,
        session: dict[str, str],
        order_no: str,
        ref_code: str | None = None,
    ) -> httpx2.Response:
        params = {**session, "orderNo": order_no}
        if ref_code is not None:
            params.update(refCode=ref_code, qty="1")
        return client.post(
            f"{server.base}/tracker/api/v1_4/{self.name}/order/cancel.pagex", params=params
        )

    def order(self, client: httpx2.Client, server: Server, order_no: str) -> dict[str, Any]:
        response = client.get(
            f"{server.base}/api/v1/sites/{self.name}/orders/{order_no}", headers=AUTH
        )
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()["order"]
        return found


def live(order: dict[str, Any]) -> dict[str, int]:
    return {line["refCode"]: line["liveQuantity"] for line in order["lines"]}


def events(order: dict[str, Any]) -> Counter[str]:
    return Counter(event["event"] for event in order["history"])


def check(database: str, site: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECOTRACK, "check", "--site", site, "--database", database],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECOTRACK_")},
    )


def run_threads(targets: list[Any]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)


P_LINES = (("X", 12, "1.00"), ("Y", 6, "2.00"), ("Z", 3, "5.00"))
H_LINES = (("X", 12, "1.00"), ("Y", 6, "2.00"))
W_LINES = (("X", 4, "3.00"), ("Y", 4, "1.50"))
U_CONTENT = {"A": (("X", 2, "1.00"), ("Y", 1, "2.00")), "B": (("X", 3, "1.00"), ("Z", 1, "5.00"))}


def test_serve_with_two_workers_runs_two_processes_on_one_port(replicas: list[Server]) -> None:
    assert len(replicas[0].workers()) == 2
    assert len(replicas[1].workers()) == 1


def test_a_storm_of_places_resends_and_cancels_across_replicas_stays_exact(
    replicas: list[Server], database: str
) -> None:
    """Overlapping orders take concurrent re-sends, partial and whole cancels, held cancels
    and updates through every replica; each acknowledged change is there exactly once."""
    with httpx2.Client(timeout=30) as client:
        shop = Shop(client, replicas[0], "storm")
        first = shop.session(client, replicas[1])
        for order_no, lines in [
            *((f"P{n}", P_LINES) for n in range(4)),
            *((f"W{n}", W_LINES) for n in range(2)),
            ("U0", U_CONTENT["A"]),
        ]:
            placed = shop.page(
                client, replicas[1], first, type="order", order=order_body(order_no, *lines)
            )
            assert placed.status_code == 200 and placed.json()["status"] == "OK", placed.text

    ops: list[tuple[str, ...]] = []
    for n in range(4):
        ops += [("partial", f"P{n}", "X")] * 15 + [("partial", f"P{n}", "Y")] * 6
        ops += [("place", f"P{n}")] * 3
        ops += [("partial", f"H{n}", "X")] * 8 + [("place", f"H{n}")] * 4
    for n in range(2):
        ops += [("whole", f"W{n}")] * 5 + [("partial", f"W{n}", "Y")] * 3 + [("place", f"W{n}")] * 3
    ops += [("update", "U0", "A")] * 5 + [("update", "U0", "B")] * 5 + [("whole", "G0")] * 5
    random.Random(7).shuffle(ops)
    threads = 16
    answers: list[tuple[tuple[str, ...], int, str]] = []

    def contents(op: tuple[str, ...]) -> dict[str, Any]:
        order_no = op[1]
        if op[0] == "update":
            return order_body(order_no, *U_CONTENT[op[2]])
        lines = {"P": P_LINES, "H": H_LINES, "W": W_LINES}[order_no[0]]
        return order_body(order_no, *lines)

    def client_thread(share: list[tuple[str, ...]], seed: int) -> None:
        pick = random.Random(seed)
        with httpx2.Client(timeout=30) as client:
            session = shop.session(client, pick.choice(replicas))
            for op in share:
                server = pick.choice(replicas)
                if op[0] in ("place", "update"):
                    response = shop.page(client, server, session, type="order", order=contents(op))
                else:
                    ref_code = op[2] if op[0] == "partial" else None
                    response = shop.cancel(client, server, session, op[1], ref_code)
                body = response.json()
                code = body["errors"][0]["code"] if body.get("errors") else body["status"]
                answers.append((op, response.status_code, code))

    run_threads([partial(client_thread, ops[n::threads], n) for n in range(threads)])
    assert len(answers) == len(ops)
    tally = Counter((op[0], op[1][0], status, code) for op, status, code in answers)
    allowed = {
        ("partial", "P", 200, "OK"),
        ("partial", "P", 409, "QuantityExceedsRemaining"),
        ("place", "P", 200, "OK"),
        ("partial", "H", 200, "OK"),
        ("partial", "H", 202, "OrderNotFound"),
        ("place", "H", 200, "OK"),
        ("place", "H", 200, "CancelledOnArrival"),
        ("whole", "W", 200, "OK"),
        ("partial", "W", 200, "OK"),
        ("partial", "W", 409, "QuantityExceedsRemaining"),
        ("place", "W", 200, "OK"),
        ("update", "U", 200, "OK"),
        ("whole", "G", 202, "OrderNotFound"),
    }
    assert set(tally) <= allowed, tally

    def acks(order_no: str, ref_code: str, status: int) -> int:
        return sum(
            1 for op, got, _ in answers if op == ("partial", order_no, ref_code) and got == status
        )

    with httpx2.Client(timeout=30) as client:
        read = replicas[0]
        for n in range(4):
            order = shop.order(client, read, f"P{n}")
            assert acks(f"P{n}", "X", 200) == 12 and acks(f"P{n}", "X", 409) == 3
            assert acks(f"P{n}", "Y", 200) == 6
            assert live(order) == {"X": 0, "Y": 0, "Z": 3}
            assert events(order)["line-cancelled"] == 18

            order = shop.order(client, read, f"H{n}")
            done, held = acks(f"H{n}", "X", 200), acks(f"H{n}", "X", 202)
            assert done + held == 8
            assert live(order) == {"X": 4, "Y": 6}
            assert (events(order)["placed"], events(order)["applied"]) == (1, held)
            assert events(order)["line-cancelled"] == done
        for n in range(2):
            order = shop.order(client, read, f"W{n}")
            assert order["state"] == "cancelled" and set(live(order).values()) == {0}
            assert events(order)["cancelled"] == 1
            assert events(order)["line-cancelled"] == acks(f"W{n}", "Y", 200)
        order = shop.order(client, read, "U0")
        content = [(line["refCode"], line["quantity"]) for line in order["lines"]]
        assert content in ([("X", 2), ("Y", 1)], [("X", 3), ("Z", 1)])
        placed = shop.page(
            client, replicas[1], first, type="order", order=order_body("G0", ("X", 1, "1.00"))
        )
        assert placed.json()["errors"][0]["code"] == "CancelledOnArrival"
        order = shop.order(client, read, "G0")
        assert order["state"] == "cancelled" and events(order)["applied"] == 1

    checked = check(database, "storm")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "site storm: consistent" in checked.stdout


def test_a_write_through_one_replica_is_visible_in_the_next_read_through_another(
    replicas: list[Server],
) -> None:
    with httpx2.Client(timeout=30) as client:
        shop = Shop(client, replicas[1], "visible")
        session = shop.session(client, replicas[0])
        for n in range(12):
            one, other = (replicas[0], replicas[1]) if n % 2 else (replicas[1], replicas[0])
            body = order_body(f"V{n}", ("A", 2, "1.00"), ("B", 1, "4.00"))
            assert shop.page(client, one, session, type="order", order=body).status_code == 200
            assert shop.order(client, other, f"V{n}")["state"] == "placed"
            assert shop.cancel(client, other, session, f"V{n}", "A").status_code == 200
            assert live(shop.order(client, one, f"V{n}")) == {"A": 1, "B": 1}
            top = client.get(
                f"{other.base}/api/v1/sites/visible/recs/top-sellers", headers=AUTH
            ).json()["recs"]
            assert {rec["refCode"]: rec["score"] for rec in top} == {"A": n + 1, "B": n + 1}


def test_a_replica_killed_mid_storm_loses_nothing_it_acknowledged(
    replicas: list[Server], database: str, tmp_path: Path
) -> None:
    doomed = Server(database, tmp_path)
    try:
        doomed.wait_ready()
        servers = [*replicas, doomed]
        with httpx2.Client(timeout=30) as client:
            shop = Shop(client, replicas[0], "killed")
            first = shop.session(client, replicas[0])
            for n in range(4):
                body = order_body(f"K{n}", ("X", 1000, "1.00"), ("Y", 1000, "1.00"))
                assert shop.page(client, replicas[0], first, type="order", order=body).is_success

        acked: Counter[str] = Counter()  # cancels of K<n> acknowledged, and placed orders
        unknown: Counter[str] = Counter()  # sent, but no answer came back
        placed: list[str] = []
        unexpected: list[str] = []
        answered_by_doomed = threading.Semaphore(0)
        lock = threading.Lock()

        def client_thread(seed: int) -> None:
            pick = random.Random(seed)
            with httpx2.Client(timeout=30) as client:
                session = shop.session(client, replicas[seed % 2])
                for n in range(45):
                    server = servers[n % 3]
                    target = f"K{pick.randrange(4)}"
                    try:
                        if n % 5 == 4:
                            target = f"N{seed}-{n}"
                            body = order_body(target, ("X", 1, "1.00"), ("Z", 2, "0.50"))
                            response = shop.page(client, server, session, type="order", order=body)
                        else:
                            response = shop.cancel(client, server, session, target, "X")
                    except httpx2.TransportError:
                        with lock:
                            unknown[target] += 1
                        continue
                    if response.status_code != 200:
                        unexpected.append(response.text)
                        continue
                    with lock:
                        acked[target] += 1
                        if target.startswith("N"):
                            placed.append(target)
                    if server is doomed:
                        answered_by_doomed.release()

        def killer() -> None:
            for _ in range(25):
                if not answered_by_doomed.acquire(timeout=60):
                    break
            doomed.kill()

        run_threads([killer, *(partial(client_thread, seed) for seed in range(6))])
        assert unexpected == []
        assert doomed.proc.returncode == -signal.SIGKILL
        assert sum(unknown.values()) > 0  # the kill came while requests were still being sent

        with httpx2.Client(timeout=30) as client:
            for n in range(4):
                cancelled = 1000 - live(shop.order(client, replicas[1], f"K{n}"))["X"]
                assert acked[f"K{n}"] <= cancelled <= acked[f"K{n}"] + unknown[f"K{n}"]
            for order_no in placed:
                assert shop.order(client, replicas[0], order_no)["state"] == "placed"
        checked = check(database, "killed")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        doomed.stop()
