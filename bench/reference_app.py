"""The ceiling: the same stack as recotrack (Starlette on granian) with no database work.

Its cancel-shaped endpoint reads the same form body as cancel.pagex, decodes and checks it with
recotrack's own parser, and answers with recotrack's own renderer; nothing is stored. What it
serves per second on a machine is the most any recotrack endpoint could serve there.

    .venv/bin/granian --interface asgi --workers 1 --runtime-mode st --port 8090 \
        bench.reference_app:app
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recotrack.domain.sessions import render_session
from recotrack.http.errors import reply
from recotrack.http.parse import parse_cancel
from recotrack.http.wire import decode_form, merge_params

MAX_BODY = 256 * 1024


async def cancel_shaped(request: Request) -> Response:
    """Parse a cancel.pagex form and answer as if the order were cancelled."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return reply({}, status_code=413)
    query = list(request.query_params.multi_items())
    form = decode_form(body, "MissingOrMalformedParameter") if body else []
    params, conflicts = merge_params(query, form)
    version = request.path_params["version"]
    cancel = parse_cancel(version, request.path_params["site"], params, conflicts)
    if cancel.problem is not None:
        return reply({}, status_code=400)
    payload = {
        "session": {"session": render_session(cancel.session, version), "cuid": cancel.cuid},
        "order": {"orderNo": cancel.order_no, "state": "cancelled"},
    }
    return reply(payload)


async def healthz(request: Request) -> Response:
    return reply({})


app = Starlette(
    routes=[
        Route(
            "/tracker/api/{version}/{site}/order/cancel.pagex",
            cancel_shaped,
            methods=["GET", "POST"],
        ),
        Route("/healthz", healthz),
    ]
)
