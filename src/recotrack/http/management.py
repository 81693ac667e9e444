"""The management API (ours), behind the admin bearer token (API.md 8)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.errors import ApiError
from ..domain.sites import SiteSettings, hash_token
from ..services import reads
from ..services.sites import create_site, rotate_token, update_site
from .context import Context
from .errors import reply
from .wire import JSON, load_json, media_type, read_body


def admin(request: Request) -> Context:
    """The context, once the bearer token is the admin token (401 otherwise)."""
    ctx = Context.of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = hash_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else ""
    if not ctx.admin_token_hash or not hmac.compare_digest(given, ctx.admin_token_hash):
        raise ApiError(
            "InvalidAdminToken", "send Authorization: Bearer <admin token> for the management API"
        )
    return ctx


async def json_object(request: Request) -> dict[str, Any]:
    body = await read_body(request)
    if media_type(request) != JSON:
        raise ApiError("UnsupportedMediaType", f"send the body as {JSON}")
    data = load_json(body, "the body")
    if not isinstance(data, dict):
        raise ApiError("MalformedJson", "the body must be a JSON object")
    return data


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(
            "MissingOrMalformedParameter", f"{name} must be a whole number from {low} to {high}"
        )
    return int(raw)


async def post_site(request: Request) -> Response:
    ctx = admin(request)
    data = await json_object(request)
    name = data.pop("name", None)
    settings = SiteSettings().patched(data) if data else SiteSettings()
    now = ctx.now()
    made = await ctx.store.write(lambda repo: create_site(repo, name, now, settings))
    site = {
        **reads.site_view(made.site),
        "clientTokens": made.client_tokens,
        "siteTokens": made.site_tokens,
    }
    return reply({"site": site}, status_code=201)


async def get_site(request: Request) -> Response:
    ctx = admin(request)
    name = request.path_params["site"]
    site = await ctx.store.read(lambda repo: reads.load_site(repo, name))
    return reply({"site": reads.site_view(site)})


async def patch_site(request: Request) -> Response:
    ctx = admin(request)
    name = request.path_params["site"]
    patch = await json_object(request)
    site = await ctx.store.write(lambda repo: update_site(repo, name, patch))
    return reply({"site": reads.site_view(site)})


async def post_token(request: Request) -> Response:
    ctx = admin(request)
    name = request.path_params["site"]
    channel = (await json_object(request)).get("channel")
    now = ctx.now()
    kind, token = await ctx.store.write(lambda repo: rotate_token(repo, name, channel, now))
    key = "clientToken" if kind == "client" else "siteToken"
    return reply({"site": {"name": name, "channel": channel, key: token}}, status_code=201)


def _read(key: str, work: Callable[[Request, Context], Callable[[Any], Any]]) -> Callable[..., Any]:
    """A GET endpoint: admin check, one read, ``{key: result}``."""

    async def endpoint(request: Request) -> Response:
        ctx = admin(request)
        result = await ctx.store.read(work(request, ctx))
        return reply(result if key == "" else {key: result})

    return endpoint


def _q(request: Request, name: str) -> str:
    return _printable(name, request.query_params.get(name, ""))


def _printable(name: str, value: str) -> str:
    """A query or path value as given, if printable: PostgreSQL refuses a NUL outright, so
    such a value is answered 400 at the edge on every backend rather than 503 on one."""
    if not value.isprintable():
        raise ApiError(
            "MissingOrMalformedParameter", f"{name} must be printable characters; got {value!r:.40}"
        )
    return value


ROUTES = [
    # The router tries routes in order (about 1 µs each): the recommendations, asked for
    # most, come first.
    Route(
        "/api/v1/sites/{site}/recs/top-sellers",
        _read(
            "recs",
            lambda r, c: (
                lambda repo: reads.top_sellers(
                    repo,
                    r.path_params["site"],
                    _q(r, "by") or "units",
                    _int(r, "days", 30, 1, 3650),
                    _int(r, "limit", 10, 1, 1000),
                    _q(r, "cuid"),
                    _q(r, "userId"),
                    c.now().date(),
                )
            ),
        ),
        methods=["GET"],
    ),
    Route(
        "/api/v1/sites/{site}/recs/bought-together",
        _read(
            "recs",
            lambda r, c: (
                lambda repo: reads.bought_together(
                    repo,
                    r.path_params["site"],
                    [_printable("refCode", v) for v in r.query_params.getlist("refCode")[:100]],
                    _int(r, "limit", 10, 1, 1000),
                    _q(r, "cuid"),
                    _q(r, "userId"),
                )
            ),
        ),
        methods=["GET"],
    ),
    Route("/api/v1/sites", post_site, methods=["POST"]),
    Route("/api/v1/sites/{site}", get_site, methods=["GET"]),
    Route("/api/v1/sites/{site}", patch_site, methods=["PATCH"]),
    Route("/api/v1/sites/{site}/tokens", post_token, methods=["POST"]),
    Route(
        "/api/v1/sites/{site}/orders/{order_no:path}",
        _read(
            "order",
            lambda r, c: (
                lambda repo: reads.order_view(
                    repo,
                    r.path_params["site"],
                    _q(r, "source") or "online",
                    _q(r, "channel"),
                    _printable("orderNo", r.path_params["order_no"]),
                )
            ),
        ),
        methods=["GET"],
    ),
    Route(
        "/api/v1/sites/{site}/orders",
        _read(
            "",
            lambda r, c: (
                lambda repo: reads.orders_page(
                    repo,
                    r.path_params["site"],
                    r.query_params.get("state"),
                    r.query_params.get("from"),
                    r.query_params.get("to"),
                    r.query_params.get("cursor"),
                    _int(r, "limit", reads.PAGE_SIZE, 1, 1000),
                )
            ),
        ),
        methods=["GET"],
    ),
    Route(
        "/api/v1/sites/{site}/held",
        _read(
            "held", lambda r, c: lambda repo: reads.held_view(repo, r.path_params["site"], c.now())
        ),
        methods=["GET"],
    ),
    Route(
        "/api/v1/sites/{site}/history",
        _read(
            "history",
            lambda r, c: (
                lambda repo: reads.history(
                    repo,
                    r.path_params["site"],
                    _q(r, "cuid"),
                    _q(r, "userId"),
                )
            ),
        ),
        methods=["GET"],
    ),
    Route(
        "/api/v1/sites/{site}/reports/daily",
        _read(
            "days",
            lambda r, c: (
                lambda repo: reads.daily_report(
                    repo,
                    r.path_params["site"],
                    _q(r, "from"),
                    _q(r, "to"),
                )
            ),
        ),
        methods=["GET"],
    ),
]
