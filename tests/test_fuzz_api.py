"""Every operation of the OpenAPI description, fuzzed in process with schemathesis.

For each operation, positive and negative cases (schemathesis's two generation modes), half of
them sent with the real site, tokens and admin token so that valid requests get through too.
Every answer must be below 500, be the envelope, conform to the description (status codes,
content type, headers, response schema), and a 4xx must have changed nothing in the database.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.testclient import TestClient

from recotrack.http.app import create_app
from recotrack.http.openapi import spec
from recotrack.settings import Settings
from recotrack.store import Store, open_store

from .conftest import POSTGRES_URL, Clock, postgres_schema_url
from .fuzz_support import assert_envelope
from .support import ADMIN, AUTH

# Reporting a failing example of 100 KB warns; the failure, not the warning, is the news.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
EXAMPLES = 20  # per operation: 24 operations x 20 = 480 cases, each sent to every backend
SCHEMA = schemathesis.openapi.from_dict(spec())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TABLES = (
    "sites",
    "tokens",
    "sessions",
    "orders",
    "order_lines",
    "order_events",
    "held_cancels",
    "stat_products",
    "stat_pairs",
    "stat_days",
)
SITE = "fuzz"
BASELINE = {"cancellations": True, "cancelAuth": "open", "pendingCancelDays": 30}


@dataclass
class Target:
    """The app on one backend, with a site whose tokens the fuzzer may use."""

    app: Starlette
    client: TestClient
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)  # channel -> token

    def snapshot(self) -> list[list[str]]:
        """Every row of every table, to compare before and after a rejected request."""

        def dump(repo: Any) -> list[list[str]]:
            return [sorted(map(repr, repo.db.all(f"SELECT * FROM {t}"))) for t in TABLES]

        return self.store.read_sync(dump)

    def authenticate(self, case: Any) -> None:
        """Give the case the real site and credentials wherever it has a place for them."""
        if "site" in case.path_parameters:
            case.path_parameters["site"] = SITE
        headers = case.headers if case.headers is not None else {}
        if case.operation.definition.raw.get("security"):
            headers["Authorization"] = f"Bearer {ADMIN}"
        if case.operation.get_parameter("siteToken", "header") is not None:
            headers.update(site=SITE, channel="store", siteToken=self.tokens["store"])
        case.headers = headers
        if case.query and isinstance(case.query.get("jd"), str):
            case.query["jd"] = self._page(case.query["jd"])
        if case.media_type == "application/json" and case.path.endswith("rest.pagex"):
            page = case.body
            if isinstance(page, dict):
                page.update(site=SITE, clientToken=self.tokens["web"], channel="web")

    def _page(self, jd: str) -> str:
        try:
            page = json.loads(jd)
        except ValueError:
            return jd
        if isinstance(page, dict):
            page.update(site=SITE, clientToken=self.tokens["web"], channel="web")
        return json.dumps(page)

    def restore(self, case: Any, response: Any) -> None:
        """Undo what a fuzzed management call did to the fuzzing site's credentials."""
        if case.path_parameters.get("site") != SITE or response.status_code >= 300:
            return
        if case.method == "PATCH":
            self.client.patch(f"/api/v1/sites/{SITE}", json=BASELINE, headers=AUTH)
        if case.path.endswith("/tokens"):
            site = response.json()["site"]
            self.tokens[site["channel"]] = site.get("clientToken") or site["siteToken"]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Target]]:
    """The app on SQLite and, when its URL is given, on PostgreSQL: each case goes to both,
    so generating it (most of the time here) is paid once."""
    with contextlib.ExitStack() as stack:
        urls = [f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'recotrack.db'}"]
        if POSTGRES_URL:
            schema = postgres_schema_url(POSTGRES_URL)
            urls.append(next(schema))
            stack.callback(schema.close)
        made = []
        for url in urls:
            # Durability is not what is fuzzed here; NORMAL spares an fsync per commit.
            settings_ = Settings(database_url=url, admin_token=ADMIN, sqlite_synchronous="NORMAL")
            store = open_store(settings_)
            stack.callback(store.close)
            app = create_app(settings_, store=store, clock=Clock())
            client = stack.enter_context(TestClient(app))
            created = client.post("/api/v1/sites", json={"name": SITE, **BASELINE}, headers=AUTH)
            assert created.status_code == 201, created.text
            site = created.json()["site"]
            made.append(Target(app, client, store, {**site["clientTokens"], **site["siteTokens"]}))
        yield made


def _strategy(label: str) -> st.SearchStrategy[Any]:
    operation = OPERATIONS[label]
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    if not any(operation.iter_parameters()) and not operation.body:
        return positive  # nothing to negate (e.g. /healthz)
    return st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))


NOT_ENVELOPES = {"/metrics", "/docs", "/openapi.json"}  # text, HTML, the description


def check_envelope(case: Any, response: Any) -> None:
    if case.path in NOT_ENVELOPES:
        assert response.status_code == 200, _show(case, response)
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert_envelope(response.status_code, content_type, response.content, _show(case, response))


def _show(case: Any, response: Any) -> str:
    return f"{case.as_curl_command()}\n-> {response.status_code} {response.text[:500]}"


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_fuzzed_requests_get_the_envelope_and_rejections_change_nothing(
    targets: list[Target], label: str
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(label), real=st.sampled_from([True, True, False]))
    def run(case: Any, real: bool) -> None:
        for target in targets:
            if real:
                target.authenticate(case)
            before = target.snapshot()
            response = case.call(app=target.app)
            assert response.status_code < 500, _show(case, response)
            check_envelope(case, response)
            if 400 <= response.status_code < 500:
                assert target.snapshot() == before, f"changed data: {_show(case, response)}"
            case.validate_response(response, checks=CHECKS)
            target.restore(case, response)

    run()
