"""The one renderer of the envelope (API.md section 2) and the exception handlers.

Every reply of every surface is built by ``reply``; every error reply by ``error_reply``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from ..domain.errors import ApiError, Warning_
from ..domain.money import plain
from ..store.db import StoreError

log = logging.getLogger("recotrack")
MEDIA_TYPE = "application/json; charset=utf-8"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def reply(
    payload: dict[str, Any] | None = None,
    warnings: Iterable[Warning_] = (),
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """``{"status": "OK"|"warning", "errors"?: [...], **payload}``."""
    problems = list(warnings)
    body: dict[str, Any] = {"status": "warning" if problems else "OK"}
    if problems:
        body["errors"] = [{"code": w.code, "message": w.message} for w in problems]
    if payload:
        body.update(payload)
    return _json(body, status_code, headers)


def error_reply(error: ApiError) -> Response:
    """``{"status": "fail", "errors": [{"code", "message"}]}`` with the error's HTTP status."""
    headers = {"Retry-After": "1"} if error.status in (429, 503) else None
    body = {"status": "fail", "errors": [{"code": error.code, "message": error.message}]}
    return _json(body, error.status, headers)


def _json(body: dict[str, Any], status_code: int, headers: dict[str, str] | None) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_default)
    return Response(content, status_code, headers, MEDIA_TYPE)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_reply(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = ApiError(
            "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}"
        )
        response = error_reply(error)
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response
    if exc.status_code == 404:
        return error_reply(ApiError("NotFound", f"no such endpoint: {request.url.path[:200]}"))
    return error_reply(ApiError("MalformedJson", str(exc.detail)[:200], status=exc.status_code))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this path. Starlette's own Allow names only the
    first route that matches the path (GET but not PATCH on /api/v1/sites/{site})."""
    scope = {**request.scope, "method": ""}
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def on_store_error(request: Request, exc: Exception) -> Response:
    # The first line only: the lines after it of a PostgreSQL error (DETAIL) quote the row
    # it refused, session ids and cuids included, and those have no place in a log.
    log.error("store error on %s: %s", request.url.path, str(exc).partition("\n")[0])
    return error_reply(
        ApiError("Overloaded", "the database did not take the change; nothing was changed, retry")
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return error_reply(ApiError("InternalError", "the server failed; nothing was changed"))


HANDLERS: dict[Any, Any] = {
    ApiError: on_api_error,
    HTTPException: on_http_exception,
    StoreError: on_store_error,
    Exception: on_unexpected,
}
