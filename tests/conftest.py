"""Fixtures: the app in process over real databases, SQLite files and (when its URL is given)
PostgreSQL, each test on its own database or schema."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from recotrack.http.app import create_app
from recotrack.settings import Settings
from recotrack.store import Store, open_store

from .support import ADMIN, Api

POSTGRES_URL = os.environ.get("RECOTRACK_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"]


class Clock:
    """The server's clock, moved by the test (time is injected, nothing is patched)."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'recotrack.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need RECOTRACK_TEST_POSTGRES_URL (.ci/run sets it)")
    yield from postgres_schema_url(POSTGRES_URL)


def postgres_schema_url(base: str) -> Iterator[str]:
    """``base`` with a search_path to a schema of its own, dropped afterwards."""
    import psycopg

    schema = f"rt_test_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, admin_token=ADMIN)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


@pytest.fixture
def client(settings: Settings, store: Store, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store=store, clock=clock)) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient, store: Store, clock: Clock) -> Api:
    return Api(client, store, clock)


@contextlib.contextmanager
def app_on(settings: Settings, clock: Clock) -> Iterator[Api]:
    """Another server in process on ``settings``' database, with a store of its own."""
    store = open_store(settings)
    try:
        with TestClient(create_app(settings, store=store, clock=clock)) as client:
            yield Api(client, store, clock)
    finally:
        store.close()


@pytest.fixture
def other(settings: Settings, clock: Clock) -> Iterator[Api]:
    """A second server on the same database (another process, another replica)."""
    with app_on(settings, clock) as api:
        yield api
