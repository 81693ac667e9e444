"""The vendor-compatible tracker: rest.pagex and cancel.pagex (API.md 5)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.errors import ApiError
from ..domain.sessions import VERSIONS, page_tracking_id, recommendation_ids, render_session
from ..services.commands import OnlineCancel
from ..services.tracking import cancel_online, recommend, track_page
from .context import Context
from .errors import reply
from .parse import parse_cancel, parse_page
from .wire import FORM, JSON, decode_form, media_type, merge_params, read_body


def check_version(request: Request) -> str:
    version: str = request.path_params["version"]
    if version not in VERSIONS:
        raise ApiError(
            "ApiVersionNotSupported",
            f"API version {version[:20]!r} is not supported; use one of {', '.join(VERSIONS)}",
        )
    return version


async def rest_pagex(request: Request) -> Response:
    ctx = Context.of(request)
    version = check_version(request)
    if request.method == "GET":
        raw: bytes | str | None = request.query_params.get("jd")
    else:
        body = await read_body(request)
        kind = media_type(request)
        if kind == JSON:
            raw = body
        elif kind == FORM:
            raw = dict(decode_form(body)).get("jd")
        else:
            raise ApiError(
                "UnsupportedMediaType",
                f"POST a form ({FORM}) with the field jd, or a JSON body ({JSON})",
            )
    if raw is None:
        raise ApiError("MalformedJson", "jd is required: the page's JSON, URL-encoded")
    page = parse_page(version, raw)
    now = ctx.now()
    result = await ctx.store.write(lambda repo: track_page(repo, page, now))
    session = result.session
    widget = await ctx.store.read(
        lambda reads: recommend(reads, page.site, page.type, page.products, session, now.date())
    )
    payload: dict[str, Any] = {
        "pageTrackingId": page_tracking_id(),
        "session": {"session": render_session(session.id, version), "cuid": session.cuid},
    }
    if result.placed is not None:
        placed = result.placed.order
        payload["order"] = {"orderNo": placed.order_no, "state": placed.state.value}
        ctx.metrics.order_event(placed.source, result.placed.outcome)
    if page.clicks:
        payload["info"] = {"smartRecs": [{"click": "ok", "id": click} for click in page.clicks]}
    payload["smartRecs"] = [
        {
            "widget": f"{page.type}_{widget.kind}",
            "alias": widget.kind,
            "position": f"{page.type}_main",
            "recs": [
                {"refCode": ref, "id": rec_id}
                for ref, rec_id in zip(
                    widget.ref_codes, recommendation_ids(len(widget.ref_codes)), strict=True
                )
            ],
        }
    ]
    return reply(payload, result.warnings)


async def cancel_pagex(request: Request) -> Response:
    ctx = Context.of(request)
    version = check_version(request)
    # Most cancellations come as a form body: an empty query string is not parsed.
    query = list(request.query_params.multi_items()) if request.scope["query_string"] else []
    form: list[tuple[str, str]] = []
    problem = None
    body = await read_body(request) if request.method == "POST" else b""
    if body and media_type(request) != FORM:
        problem = ApiError(
            "UnsupportedMediaType",
            f"send session, cuid and orderNo in the query string or a {FORM} body",
        )
    elif body:
        try:
            form = decode_form(body, "MissingOrMalformedParameter")
        except ApiError as error:
            problem = error
    params, conflicts = merge_params(query, form)
    site = request.path_params["site"]
    cancel = parse_cancel(version, site, params, conflicts)
    if problem is not None:  # raised after the site and switch checks, as API.md 5.2 orders
        cancel = OnlineCancel(version, site, problem=problem)
    now = ctx.now()
    held = ctx.settings.max_held_per_site
    result = await ctx.store.write(lambda repo: cancel_online(repo, cancel, now, held))
    ctx.metrics.cancel_event("online", "held" if result.held else "applied")
    payload = {
        "session": {"session": render_session(cancel.session, version), "cuid": cancel.cuid},
        "order": {"orderNo": result.order_no, "state": result.state.value},
    }
    return reply(payload, result.warnings, 202 if result.held else 200)


ROUTES = [
    Route("/tracker/api/{version}/rest.pagex", rest_pagex, methods=["GET", "POST"]),
    Route(
        "/tracker/api/{version}/{site}/order/cancel.pagex", cancel_pagex, methods=["GET", "POST"]
    ),
]
