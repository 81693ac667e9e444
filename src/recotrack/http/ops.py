"""Operations endpoints: liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .context import Context
from .errors import reply


async def healthz(request: Request) -> Response:
    return reply()


async def readyz(request: Request) -> Response:
    ctx = Context.of(request)
    await ctx.store.read(lambda repo: repo.site_names())
    return reply()


async def metrics(request: Request) -> Response:
    ctx = Context.of(request)
    return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4")


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
