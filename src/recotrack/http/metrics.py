"""Prometheus text-format metrics, kept in process with no dependency.

Requests by route and status, a latency histogram, orders placed, cancellations by kind,
held cancellations, and write-batch sizes from the store.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, "+Inf"), self.counts, strict=True):
            running += count
            sep = "," if labels else ""
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        wrap = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{wrap} {self.sum}")
        out.append(f"{name}_count{wrap} {running}")
        return out


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        self.orders: Counter[tuple[str, str]] = Counter()
        self.cancels: Counter[tuple[str, str]] = Counter()
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.store_stats: Callable[[], dict[str, float]] = dict

    def order_event(self, source: str, outcome: str) -> None:
        self.orders[(source, outcome)] += 1

    def cancel_event(self, source: str, kind: str) -> None:
        self.cancels[(source, kind)] += 1

    def render(self) -> str:
        lines = [
            "# HELP recotrack_requests_total HTTP requests by route, method and status.",
            "# TYPE recotrack_requests_total counter",
        ]
        for (route, method, status), n in sorted(self.requests.items()):
            lines.append(
                f'recotrack_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP recotrack_request_seconds Request latency.",
            "# TYPE recotrack_request_seconds histogram",
            *self.latency.lines("recotrack_request_seconds"),
            "# HELP recotrack_orders_total Orders received by source and outcome.",
            "# TYPE recotrack_orders_total counter",
        ]
        for (source, outcome), n in sorted(self.orders.items()):
            lines.append(f'recotrack_orders_total{{source="{source}",outcome="{outcome}"}} {n}')
        lines += [
            "# HELP recotrack_cancellations_total Cancellations by source and kind (applied, held).",
            "# TYPE recotrack_cancellations_total counter",
        ]
        for (source, kind), n in sorted(self.cancels.items()):
            lines.append(f'recotrack_cancellations_total{{source="{source}",kind="{kind}"}} {n}')
        stats = self.store_stats()
        lines += [
            "# HELP recotrack_held_cancellations_total Cancellations held for unseen orders.",
            "# TYPE recotrack_held_cancellations_total counter",
            f"recotrack_held_cancellations_total {sum(n for (_, k), n in self.cancels.items() if k == 'held')}",
            "# HELP recotrack_write_batches_total Write transactions committed.",
            "# TYPE recotrack_write_batches_total counter",
            f"recotrack_write_batches_total {stats.get('batches', 0)}",
            "# HELP recotrack_writes_total Writes committed (several per batch).",
            "# TYPE recotrack_writes_total counter",
            f"recotrack_writes_total {stats.get('writes', 0)}",
            "# HELP recotrack_write_queue Writes waiting for the writer.",
            "# TYPE recotrack_write_queue gauge",
            f"recotrack_write_queue {stats.get('queued', 0)}",
            "# HELP recotrack_write_batch_size Writes per committed transaction.",
            "# TYPE recotrack_write_batch_size histogram",
            *self.batch_sizes.lines("recotrack_write_batch_size"),
        ]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Counts every request by its route template (not its path, which holds ids)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests[(name, scope["method"], status)] += 1
            self.metrics.latency.observe(time.perf_counter() - started)
