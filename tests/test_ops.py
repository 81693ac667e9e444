"""Operations endpoints: liveness, readiness and Prometheus metrics that move with traffic."""

from __future__ import annotations

import re
from typing import Any

from recotrack.http.smartapi import ROUTES

from .support import AUTH, Api

SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?) (\S+)$')
OFFLINE = "/smart-api/orders/offline"
# The DELETE route's template, as the router knows it (the label is the template, not the path).
DELETE_ROUTE = next(
    route.path
    for route in ROUTES
    if route.methods and "DELETE" in route.methods and route.path.startswith("/smart-api")
)


def scrape(api: Api) -> dict[str, float]:
    """Every sample of /metrics by its series name with labels."""
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SERIES.match(line)
        assert match, f"not a Prometheus sample: {line!r}"
        samples[match[1]] = float(match[2])
    return samples


def requests_total(route: str, method: str, status: int) -> str:
    return f'recotrack_requests_total{{route="{route}",method="{method}",status="{status}"}}'


def moved(before: dict[str, float], after: dict[str, float], prefix: str) -> dict[str, float]:
    """How each series starting with ``prefix`` changed between two scrapes."""
    return {
        name: after[name] - before.get(name, 0)
        for name in after
        if name.startswith(prefix) and after[name] != before.get(name, 0)
    }


def offline_body(ref: str) -> dict[str, Any]:
    return {
        "order": {
            "refCode": ref,
            "currency": "GBP",
            "total": "2",
            "items": [{"refCode": "A", "qty": 2, "price": "1"}],
        }
    }


def test_healthz_answers_ok_without_credentials(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"status": "OK"}


def test_readyz_answers_ok_once_the_database_answers(api: Api) -> None:
    response = api.client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"status": "OK"}


def test_metrics_declare_every_family_with_help_and_type(api: Api) -> None:
    text = api.client.get("/metrics").text
    for family, kind in [
        ("recotrack_requests_total", "counter"),
        ("recotrack_request_seconds", "histogram"),
        ("recotrack_orders_total", "counter"),
        ("recotrack_cancellations_total", "counter"),
        ("recotrack_write_batch_size", "histogram"),
    ]:
        assert f"# TYPE {family} {kind}\n" in text
        assert f"# HELP {family} " in text
    assert text.endswith("\n")


def test_request_counters_move_by_route_template_and_status(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    before = scrape(api)
    assert api.offline(site, offline_body("R1")).status_code == 201
    assert api.offline(site, offline_body("R1")).status_code == 200
    assert api.delete_offline(site, "R1").status_code == 200
    assert api.delete_offline(site, "R2").status_code == 202
    assert api.delete_offline(site, "R3", prefix="/tracker").status_code == 202
    assert api.client.get("/nope").status_code == 404
    assert api.client.get(OFFLINE).status_code == 405
    assert api.client.get("/api/v1/sites/mysite").status_code == 401
    assert api.client.get("/api/v1/sites/mysite", headers=AUTH).status_code == 200
    after = scrape(api)
    assert moved(before, after, "recotrack_requests_total") == {
        requests_total("/metrics", "GET", 200): 1,  # the first scrape
        requests_total(OFFLINE, "POST", 201): 1,
        requests_total(OFFLINE, "POST", 200): 1,
        requests_total(DELETE_ROUTE, "DELETE", 200): 1,
        requests_total(DELETE_ROUTE, "DELETE", 202): 1,
        requests_total(f"/tracker{DELETE_ROUTE}", "DELETE", 202): 1,
        requests_total("unmatched", "GET", 404): 1,
        requests_total(OFFLINE, "GET", 405): 1,
        requests_total("/api/v1/sites/{site}", "GET", 401): 1,
        requests_total("/api/v1/sites/{site}", "GET", 200): 1,
    }
    assert not any("R2" in name or "mysite" in name for name in after)  # templates, not paths
    latency = moved(before, after, "recotrack_request_seconds")
    assert latency['recotrack_request_seconds_bucket{le="+Inf"}'] == 10
    assert latency["recotrack_request_seconds_count"] == 10
    assert latency["recotrack_request_seconds_sum"] > 0


def test_order_and_cancellation_counters_move(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    before = scrape(api)
    api.offline(site, offline_body("R1"))
    api.offline(site, offline_body("R1"))
    api.offline(site, offline_body("R2"))
    api.delete_offline(site, "R1")
    api.delete_offline(site, "R9")
    api.place(site, {**offline_body("O1")["order"], "orderNo": "O1"})
    after = scrape(api)
    assert moved(before, after, "recotrack_orders_total") == {
        'recotrack_orders_total{source="offline",outcome="created"}': 2,
        'recotrack_orders_total{source="offline",outcome="same"}': 1,
        'recotrack_orders_total{source="online",outcome="created"}': 1,
    }
    assert moved(before, after, "recotrack_cancellations_total") == {
        'recotrack_cancellations_total{source="offline",kind="applied"}': 1,
        'recotrack_cancellations_total{source="offline",kind="held"}': 1,
    }
    assert moved(before, after, "recotrack_held_cancellations_total") == {
        "recotrack_held_cancellations_total": 1
    }


def test_write_batch_sizes_count_every_committed_write(api: Api) -> None:
    site = api.create_site("mysite", cancellations=True)
    before = scrape(api)
    api.offline(site, offline_body("R1"))
    api.delete_offline(site, "R1")
    api.client.patch("/api/v1/sites/mysite", json={"pendingCancelDays": 3}, headers=AUTH)
    after = scrape(api)
    batches = moved(before, after, "recotrack_write_batch_size")
    writes = after["recotrack_writes_total"] - before["recotrack_writes_total"]
    assert writes == 3
    assert batches["recotrack_write_batch_size_sum"] == writes
    assert batches["recotrack_write_batch_size_count"] == (
        after["recotrack_write_batches_total"] - before["recotrack_write_batches_total"]
    )
    assert (
        batches['recotrack_write_batch_size_bucket{le="+Inf"}']
        == (batches["recotrack_write_batch_size_count"])
    )
    buckets = [value for name, value in after.items() if "write_batch_size_bucket" in name]
    assert buckets == sorted(buckets)  # cumulative


def test_reads_do_not_count_as_writes(api: Api) -> None:
    api.create_site("mysite")
    before = scrape(api)
    api.client.get("/readyz")
    api.client.get("/api/v1/sites/mysite", headers=AUTH)
    api.client.get("/api/v1/sites/mysite/recs/top-sellers", headers=AUTH)
    after = scrape(api)
    assert after["recotrack_writes_total"] == before["recotrack_writes_total"]
    assert moved(before, after, "recotrack_write_batch_size") == {}
