"""The vendor-compatible smart API: offline orders and their cancellation (API.md 6)."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.errors import ApiError
from ..domain.sites import check_channel
from ..services.commands import OfflineCancel, OfflineOrder, SmartAuth
from ..services.offline import cancel_offline, place_offline
from ..services.orders import CREATED
from .context import Context
from .errors import reply
from .parse import parse_cancel_items, parse_offline, text
from .wire import JSON, load_json, media_type, read_body

HEADERS = ("site", "siteToken", "channel")
_MISSING = {
    "site": "SiteNotRecognized",
    "siteToken": "InvalidSiteToken",
    "channel": "MissingOrMalformedChannel",
}
_PREFIX = "/smart-api/orders/offline/"


def smart_auth(request: Request) -> SmartAuth:
    """The three headers, each required (400 naming the first one missing)."""
    values = []
    for name in HEADERS:
        value = request.headers.get(name)
        if not value:
            raise ApiError(_MISSING[name], f"the {name} header is required", status=400)
        values.append(value)
    return SmartAuth(values[0], values[1], check_channel(values[2]))


async def json_body(request: Request) -> object | None:
    """The JSON body, None when there is none; 415 unless it is application/json."""
    body = await read_body(request)
    if not body:
        return None
    if media_type(request) != JSON:
        raise ApiError("UnsupportedMediaType", f"a body must be sent as {JSON}")
    return load_json(body, "the body")


async def post_offline(request: Request) -> Response:
    ctx = Context.of(request)
    auth = smart_auth(request)
    now = ctx.now()
    try:
        data = await json_body(request)
        if data is None:
            raise ApiError("MalformedJson", "the body is required: a JSON object with an order")
        order, info = parse_offline(data, now)
        command = OfflineOrder(auth, order, info)
    except ApiError as problem:
        if problem.code == "PayloadTooLarge":
            raise
        command = OfflineOrder(auth, problem=problem)
    placed = await ctx.store.write(lambda repo: place_offline(repo, command, now))
    ctx.metrics.order_event("offline", placed.outcome)
    payload = {"order": {"refCode": placed.order.order_no, "state": placed.order.state.value}}
    return reply(payload, placed.warnings, 201 if placed.outcome == CREATED else 200)


async def delete_offline(request: Request) -> Response:
    ctx = Context.of(request)
    auth = smart_auth(request)
    raw_path = request.scope.get("raw_path", b"").decode("latin-1")
    raw = raw_path.split(_PREFIX, 1)[1] if _PREFIX in raw_path else None
    try:
        order_no = (
            request.path_params["order_number"] if raw is None else unquote(raw, errors="strict")
        )
        text(order_no, "order_number", "MissingOrMalformedOrderNo")
        items = parse_cancel_items(await json_body(request))
        command = OfflineCancel(auth, order_no, items)
    except (ApiError, UnicodeDecodeError) as problem:
        if isinstance(problem, ApiError) and problem.code == "PayloadTooLarge":
            raise
        if isinstance(problem, UnicodeDecodeError):
            problem = ApiError("MissingOrMalformedOrderNo", "order_number is not valid UTF-8")
        command = OfflineCancel(auth, "", problem=problem)
    now = ctx.now()
    held = ctx.settings.max_held_per_site
    result = await ctx.store.write(lambda repo: cancel_offline(repo, command, now, held))
    ctx.metrics.cancel_event("offline", "held" if result.held else "applied")
    payload = {"order": {"refCode": result.order_no, "state": result.state.value}}
    return reply(payload, result.warnings, 202 if result.held else 200)


class _AnyPath(PathConvertor):
    """``path`` that also spans line breaks: an order number with ``%0A`` is then answered
    400 ``MissingOrMalformedOrderNo`` by the handler, not 404 "no such endpoint"."""

    regex = "(?s:.*)"


register_url_convertor("anypath", _AnyPath())

ROUTES = [
    route
    for prefix in ("", "/tracker")
    for route in (
        Route(f"{prefix}/smart-api/orders/offline", post_offline, methods=["POST"]),
        Route(
            f"{prefix}/smart-api/orders/offline/{{order_number:anypath}}",
            delete_offline,
            methods=["DELETE"],
        ),
    )
]
