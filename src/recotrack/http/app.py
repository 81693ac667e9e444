"""The composition root: ``create_app`` wires settings, store, clock and routes."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.middleware import Middleware

from ..domain.sites import hash_token
from ..settings import Settings
from ..store import Store, open_store
from . import management, openapi, ops, smartapi, tracker
from .context import Context
from .errors import HANDLERS
from .metrics import Metrics, MetricsMiddleware

ADMIN_TOKEN_KEY = "admin_token_hash"


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    store: Store | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Starlette:
    """The ASGI app. It owns (and closes) the store unless one is given."""
    owned = store is None
    store = store if store is not None else open_store(settings)
    if settings.admin_token:
        admin_hash = hash_token(settings.admin_token)
    else:
        admin_hash = store.read_sync(lambda repo: repo.get_meta(ADMIN_TOKEN_KEY)) or ""
    metrics = Metrics()
    metrics.store_stats = lambda: store.stats
    store.on_batch = metrics.batch_sizes.observe
    ctx = Context(settings, store, metrics, clock, admin_hash)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if owned:
            await store.drained()
            store.close()

    app = Starlette(
        routes=[
            *tracker.ROUTES,
            *smartapi.ROUTES,
            *management.ROUTES,
            *ops.ROUTES,
            *openapi.ROUTES,
        ],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


def app_from_env() -> Starlette:
    """Factory for the server processes: settings come from ``RECOTRACK_*``."""
    app = create_app(Settings.from_env())
    # What start-up made lives as long as the process: keep it out of the cyclic collector's
    # full passes, which otherwise stop every request in flight for tens of milliseconds.
    gc.collect()
    gc.freeze()
    return app
