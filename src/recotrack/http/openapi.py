"""The OpenAPI 3.0 description of every surface, served at ``/openapi.json`` and ``/docs``.

Written out by hand (not derived from the routes or from ``STATUS``) so that
``tests/test_openapi.py`` can hold it against the app: every route, every method, every
error code, and real responses against the response schemas.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .apidocs import render_docs
from .errors import MEDIA_TYPE

Schema = dict[str, Any]

ERROR_CODES = [
    # The vendor's own names first (API.md 2), then ours.
    "MalformedJson",
    "TypeNotRecognized",
    "SiteNotRecognized",
    "MissingOrMalformedOrderNo",
    "MissingOrMalformedBasket",
    "MissingOrMalformedCurrency",
    "MissingOrMalformedSubtotal",
    "MissingOrMalformedShipping",
    "MissingOrMalformedTotal",
    "MissingOrMalformedItems",
    "MissingOrMalformedSession",
    "MissingOrMalformedCuid",
    "MissingOrMalformedUser",
    "MissingOrMalformedOrderDate",
    "MissingOrMalformedChannel",
    "MissingOrMalformedParameter",
    "MissingOrMalformedProduct",
    "InvalidClientToken",
    "InvalidSiteToken",
    "InvalidAdminToken",
    "SessionNotRecognized",
    "CancellationsNotEnabled",
    "OrderNotFound",
    "OrderConflict",
    "ChannelMismatch",
    "CancelledOnArrival",
    "LineNotFound",
    "QuantityExceedsRemaining",
    "ConflictingParameters",
    "ApiVersionNotSupported",
    "NotFound",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "Overloaded",
    "InternalError",
]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(max_length: int = 128, **extra: Any) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, **extra}


def _obj(required: list[str], properties: dict[str, Schema], **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    return schema


def _ok(**payload: Schema) -> Schema:
    """An OK/warning envelope carrying ``payload`` (every key required)."""
    envelope = _ref("Success")
    if not payload:
        return envelope
    return {"allOf": [envelope, _obj(list(payload), payload)]}


def _json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": _json_content(schema)}


# Which failures each kind of operation can answer, beside its own successes.
FAILURES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    503: "Overloaded",
}


def _responses(successes: dict[int, dict[str, Any]], *failures: int) -> dict[str, Any]:
    answers = {str(status): answer for status, answer in successes.items()}
    for status in failures:
        answers[str(status)] = {"$ref": f"#/components/responses/{FAILURES[status]}"}
    return answers


def _op(
    summary: str,
    tag: str,
    responses: dict[str, Any],
    description: str = "",
    parameters: list[Schema] | None = None,
    body: dict[str, Any] | None = None,
    admin: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    if admin:
        operation["security"] = [{"adminToken": []}]
    operation["responses"] = responses
    return operation


def _param(
    name: str, where: str, schema: Schema, description: str, required: bool = False
) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


# -- shared schemas ------------------------------------------------------------------------

MONEY_IN = {
    "description": "an exact amount >= 0 and below 10^12 with at most 6 decimal places, as a"
    " JSON number or a numeric string (never read through a binary float)",
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 999999999999},
        {"type": "string", "pattern": r"^\s*[0-9]{1,12}(\.[0-9]{1,6})?\s*$"},
    ],
}
QTY_IN = {
    "description": "a whole number from 1 to 1,000,000 (a numeric string is accepted)",
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 1000000},
        {"type": "string", "pattern": r"^\s*[1-9][0-9]{0,5}\s*$"},
    ],
}
MONEY_OUT = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2,}$", "example": "35.50"}
STATE = {"type": "string", "enum": ["placed", "partially-cancelled", "cancelled", "cancel-pending"]}
SITE_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
CHANNEL = {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"}
IDENTITY = _text(
    description='"new" asks the server to issue one; otherwise 1-128 printable characters',
    example="new",
)
TIME = {"type": "string", "format": "date-time"}
DAY = {"type": "string", "format": "date"}


SETTINGS: dict[str, Schema] = {
    "cancellations": {"type": "boolean", "default": False},
    "cancelAuth": {"type": "string", "enum": ["open", "session", "token"], "default": "session"},
    "offlineOrdersAffectCrowd": {"type": "boolean", "default": False},
    "sessionMaxAgeSeconds": {
        "type": "integer",
        "minimum": 60,
        "maximum": 31536000,
        "default": 14400,
    },
    "pendingCancelDays": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30},
}


def _items(line: Schema) -> Schema:
    return {"type": "array", "minItems": 1, "maxItems": 1000, "items": line}


SCHEMAS: dict[str, Schema] = {
    "ErrorCode": {"type": "string", "enum": ERROR_CODES},
    "Problem": _obj(
        ["code", "message"],
        {"code": _ref("ErrorCode"), "message": {"type": "string"}},
        description="One problem, with a message for a person naming the field at fault.",
    ),
    "Success": {
        "description": "A request that did its work; `errors` is present exactly when `status`"
        " is `warning`.",
        "oneOf": [
            {
                **_obj(["status"], {"status": {"type": "string", "enum": ["OK"]}}),
                "not": {"required": ["errors"]},
            },
            _obj(
                ["status", "errors"],
                {
                    "status": {"type": "string", "enum": ["warning"]},
                    "errors": {"type": "array", "minItems": 1, "items": _ref("Problem")},
                },
            ),
        ],
    },
    "Failure": _obj(
        ["status", "errors"],
        {
            "status": {"type": "string", "enum": ["fail"]},
            "errors": {"type": "array", "minItems": 1, "items": _ref("Problem")},
        },
        description="A request that did no work.",
    ),
    "SessionIds": _obj(
        ["session", "cuid"],
        {"session": {"type": "string"}, "cuid": {"type": "string"}},
        description="v1_4: `<12 digits>|<43 base62>` and `<11 digits>|<43 base62>`; v1_2 and"
        " v1_3 use `/`. A cuid this server never issued comes back as given.",
    ),
    "OrderRef": _obj(["orderNo", "state"], {"orderNo": {"type": "string"}, "state": STATE}),
    "OfflineOrderRef": _obj(["refCode", "state"], {"refCode": {"type": "string"}, "state": STATE}),
    "Line": _obj(
        ["refCode", "qty", "price"],
        {
            "refCode": _text(),
            "qty": QTY_IN,
            "price": MONEY_IN,
            "variant": {
                "description": '{"sku": …} or attributes; the SKU wins',
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 128},
            },
        },
    ),
    "OnlineOrder": _obj(
        ["orderNo", "items", "currency", "total"],
        {
            "orderNo": _text(),
            "items": _items(_ref("Line")),
            "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "example": "GBP"},
            "subtotal": {**MONEY_IN, "description": "computed as Σ qty×price (warning) if absent"},
            "shipping": {**MONEY_IN, "description": "taken as 0 (warning) if absent"},
            "total": MONEY_IN,
        },
    ),
    "Contents": _obj([], {"items": {"type": "array", "maxItems": 1000, "items": _ref("Line")}}),
    "Page": _obj(
        ["site", "clientToken", "type", "session", "cuid"],
        {
            "site": SITE_NAME,
            "clientToken": {"type": "string", "maxLength": 128},
            "channel": {**CHANNEL, "default": "web"},
            "type": {
                "type": "string",
                "description": "matched case-insensitively",
                "enum": [
                    "home",
                    "category",
                    "product",
                    "searchResults",
                    "basket",
                    "checkout",
                    "order",
                    "wishlist",
                    "other",
                ],
            },
            "session": IDENTITY,
            "cuid": IDENTITY,
            "lang": {"type": "string", "example": "en-gb"},
            "user": _obj(
                [],
                {"id": _text(256), "email": _text(256), "name": _text(256)},
                description="`id` from v1_4; `email` and `name` are the legacy keys",
            ),
            "order": _ref("OnlineOrder"),
            "basket": _ref("Contents"),
            "checkout": _ref("Contents"),
            "product": _obj(["refCode"], {"refCode": _text()}),
            "info": _obj(
                [],
                {
                    "smartRecs": _obj(
                        [],
                        {"click": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}},
                    )
                },
            ),
        },
        description="The page-tracking JSON (`jd`). `order` is required for `type: order`,"
        " `product` for `type: product`, `basket`/`checkout` for those types.",
    ),
    "PageForm": _obj(
        ["jd"],
        {"jd": {"type": "string", "description": "the Page object as JSON text"}},
    ),
    "Rec": _obj(
        ["refCode", "id"],
        {"refCode": {"type": "string"}, "id": {"type": "integer", "minimum": 1}},
    ),
    "PageReply": {
        "allOf": [
            _ref("Success"),
            _obj(
                ["pageTrackingId", "session", "smartRecs"],
                {
                    "pageTrackingId": {"type": "string"},
                    "session": _ref("SessionIds"),
                    "order": _ref("OrderRef"),
                    "info": _obj(
                        ["smartRecs"],
                        {
                            "smartRecs": {
                                "type": "array",
                                "items": _obj(
                                    ["click", "id"],
                                    {"click": {"type": "string"}, "id": {"type": "integer"}},
                                ),
                            }
                        },
                    ),
                    "smartRecs": {
                        "type": "array",
                        "items": _obj(
                            ["widget", "alias", "position", "recs"],
                            {
                                "widget": {"type": "string"},
                                "alias": {"type": "string"},
                                "position": {"type": "string"},
                                "recs": {"type": "array", "items": _ref("Rec")},
                            },
                        ),
                    },
                },
            ),
        ]
    },
    "CancelParams": _obj(
        ["session", "cuid", "orderNo"],
        {
            "session": _text(description="the current session (not new)"),
            "cuid": _text(description="the current cuid (not new)"),
            "orderNo": _text(),
            "refCode": _text(description="cancel this line only"),
            "qty": {"type": "string", "pattern": "^[0-9]{1,7}$", "description": "with refCode"},
            "clientToken": {"type": "string", "description": "needed when cancelAuth is token"},
            "reason": {"type": "string", "maxLength": 256},
        },
    ),
    "CancelReply": _ok(session=_ref("SessionIds"), order=_ref("OrderRef")),
    "OfflineLine": _obj(
        ["refCode", "qty", "price"],
        {
            "refCode": _text(),
            "qty": QTY_IN,
            "price": MONEY_IN,
            "attributes": {
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 256},
            },
        },
    ),
    "OfflineOrder": _obj(
        ["order"],
        {
            "lang": {"type": "string", "default": "en-gb"},
            "user": _obj(
                [],
                {
                    "id": _text(256),
                    "email": _text(256),
                    "segments": {"type": "array", "items": {"type": "string"}},
                    "info": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                description="when given, it needs id, email or segments",
            ),
            "order": _obj(
                ["refCode", "items", "currency", "total"],
                {
                    "refCode": _text(),
                    "orderDate": {
                        "type": "string",
                        "maxLength": 40,
                        "description": "ISO 8601 with or without zone (UTC assumed), or"
                        " `2017-04-23T14:25:00 GMT`; default: the time of receipt",
                        "example": "2017-04-23T14:25:00 GMT",
                    },
                    "customerId": _text(),
                    "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
                    "shipping": MONEY_IN,
                    "subTotal": MONEY_IN,
                    "subtotal": MONEY_IN,
                    "total": MONEY_IN,
                    "items": _items(_ref("OfflineLine")),
                },
            ),
        },
    ),
    "CancelItems": _obj(
        ["items"],
        {"items": _items(_obj(["refCode"], {"refCode": _text(), "qty": QTY_IN}))},
        description="Cancel these lines (all their live units when qty is absent).",
    ),
    "OfflineReply": _ok(order=_ref("OfflineOrderRef")),
    "Settings": _obj([], SETTINGS, additionalProperties=False, minProperties=1),
    "NewSite": _obj(
        ["name"],
        {"name": SITE_NAME, **SETTINGS},
        additionalProperties=False,
        description="A name and, optionally, any settings; nothing else.",
    ),
    "Site": _obj(
        [
            "name",
            "cancellations",
            "cancelAuth",
            "offlineOrdersAffectCrowd",
            "sessionMaxAgeSeconds",
            "pendingCancelDays",
            "channels",
            "createdAt",
        ],
        {
            "name": {"type": "string"},
            "cancellations": {"type": "boolean"},
            "cancelAuth": {"type": "string", "enum": ["open", "session", "token"]},
            "offlineOrdersAffectCrowd": {"type": "boolean"},
            "sessionMaxAgeSeconds": {"type": "integer"},
            "pendingCancelDays": {"type": "integer"},
            "channels": _obj(
                ["online", "offline"],
                {
                    "online": {"type": "array", "items": {"type": "string"}},
                    "offline": {"type": "array", "items": {"type": "string"}},
                },
            ),
            "createdAt": TIME,
        },
    ),
    "CreatedSite": {
        "allOf": [
            _ref("Site"),
            _obj(
                ["clientTokens", "siteTokens"],
                {
                    "clientTokens": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "per online channel; shown only here",
                    },
                    "siteTokens": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "per offline channel; shown only here",
                    },
                },
            ),
        ]
    },
    "RotatedToken": _obj(
        ["name", "channel"],
        {
            "name": {"type": "string"},
            "channel": {"type": "string"},
            "clientToken": {"type": "string", "description": "for an online channel"},
            "siteToken": {"type": "string", "description": "for any other channel"},
        },
    ),
    "OrderView": _obj(
        ["orderNo", "source", "channel", "state", "orderDate", "currency", "total", "lines"],
        {
            "orderNo": {"type": "string"},
            "source": {"type": "string", "enum": ["online", "offline"]},
            "channel": {"type": "string"},
            "state": STATE,
            "orderDate": TIME,
            "currency": {"type": "string"},
            "subtotal": MONEY_OUT,
            "shipping": MONEY_OUT,
            "total": MONEY_OUT,
            "liveTotal": MONEY_OUT,
            "cuid": {"type": "string"},
            "userId": {"type": "string"},
            "customerId": {"type": "string"},
            "session": {"type": "string"},
            "countsInCrowd": {"type": "boolean"},
            "lines": {
                "type": "array",
                "items": _obj(
                    ["refCode", "quantity", "liveQuantity", "price"],
                    {
                        "refCode": {"type": "string"},
                        "quantity": {"type": "integer"},
                        "liveQuantity": {"type": "integer"},
                        "price": MONEY_OUT,
                        "variant": {"type": "string"},
                    },
                ),
            },
            "history": {
                "type": "array",
                "items": _obj(
                    ["event", "at"],
                    {
                        "event": {
                            "type": "string",
                            "enum": [
                                "placed",
                                "updated",
                                "cancelled",
                                "line-cancelled",
                                "held",
                                "applied",
                                "conflict",
                            ],
                        },
                        "at": TIME,
                        "channel": {"type": "string"},
                        "session": {"type": "string"},
                        "cuid": {"type": "string"},
                        "reason": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                ),
            },
        },
    ),
    "OrderSummary": _obj(
        ["orderNo", "source", "channel", "state", "total", "currency", "orderDate"],
        {
            "orderNo": {"type": "string"},
            "source": {"type": "string", "enum": ["online", "offline"]},
            "channel": {"type": "string"},
            "state": STATE,
            "total": MONEY_OUT,
            "currency": {"type": "string"},
            "orderDate": {"type": "string"},
            "updatedAt": {"type": "string"},
        },
    ),
    "Held": _obj(
        ["source", "channel", "orderNo", "items", "at", "expiresAt"],
        {
            "source": {"type": "string", "enum": ["online", "offline"]},
            "channel": {"type": "string"},
            "orderNo": {"type": "string"},
            "items": {
                "type": "array",
                "nullable": True,
                "description": "null for a whole-order cancellation",
                "items": _obj(
                    ["refCode", "qty"],
                    {"refCode": {"type": "string"}, "qty": {"type": "integer", "nullable": True}},
                ),
            },
            "at": {"type": "string"},
            "expiresAt": {"type": "string"},
            "session": {"type": "string"},
            "cuid": {"type": "string"},
            "reason": {"type": "string"},
        },
    ),
    "Score": _obj(
        ["refCode", "score"],
        {
            "refCode": {"type": "string"},
            "score": {
                "description": "units or co-purchase count (integer), revenue (exact decimal"
                " string)",
                "anyOf": [{"type": "integer"}, MONEY_OUT],
            },
        },
    ),
    "Bought": _obj(
        ["refCode", "quantity", "lastBought"],
        {
            "refCode": {"type": "string"},
            "quantity": {"type": "integer", "minimum": 1},
            "lastBought": {"type": "string"},
        },
    ),
    "Day": _obj(
        ["date", "orders", "units", "revenue", "cancelledOrders", "cancelledRevenue"],
        {
            "date": DAY,
            "orders": {"type": "integer"},
            "units": {"type": "integer"},
            "revenue": MONEY_OUT,
            "cancelledOrders": {"type": "integer"},
            "cancelledRevenue": MONEY_OUT,
        },
    ),
}


def _failure(status: int, codes: str) -> dict[str, Any]:
    answer = _answer(f"`status: fail`. Codes: {codes}.", _ref("Failure"))
    if status == 503:
        answer["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return answer


RESPONSES = {
    "BadRequest": _failure(
        400,
        "MalformedJson, TypeNotRecognized, MissingOrMalformed…, ConflictingParameters;"
        " SiteNotRecognized for a malformed site name; a missing smart-API header answers with"
        " the code of that header (SiteNotRecognized, InvalidSiteToken, MissingOrMalformedChannel)",
    ),
    "Unauthorized": _failure(
        401, "InvalidClientToken, InvalidSiteToken, InvalidAdminToken, SessionNotRecognized"
    ),
    "Forbidden": _failure(403, "CancellationsNotEnabled"),
    "NotFound": _failure(
        404, "SiteNotRecognized, ApiVersionNotSupported, OrderNotFound, NotFound (no such path)"
    ),
    "Conflict": _failure(
        409,
        "OrderConflict (also: a site of that name exists), ChannelMismatch, LineNotFound,"
        " QuantityExceedsRemaining",
    ),
    "PayloadTooLarge": _failure(413, "PayloadTooLarge (256 KiB unless RECOTRACK_MAX_BODY_BYTES)"),
    "UnsupportedMediaType": _failure(415, "UnsupportedMediaType"),
    "Overloaded": _failure(503, "Overloaded (nothing was changed; retry after Retry-After)"),
}

# -- parameters ----------------------------------------------------------------------------

VERSION = _param(
    "version",
    "path",
    {"type": "string", "enum": ["v1_2", "v1_3", "v1_4"]},
    "any other value: 404 ApiVersionNotSupported",
)
PATH_SITE = _param("site", "path", SITE_NAME, "the site (tenant)")
SMART_HEADERS = [
    _param("site", "header", SITE_NAME, "the site", True),
    _param("siteToken", "header", {"type": "string"}, "the channel's siteToken", True),
    _param("channel", "header", CHANNEL, "an offline channel such as store", True),
]
JD = {
    "name": "jd",
    "in": "query",
    "required": True,
    "description": "the Page object as URL-encoded JSON",
    "content": _json_content(_ref("Page")),
}


def _cancel_query(required: bool) -> list[Schema]:
    props = SCHEMAS["CancelParams"]["properties"]
    needed = SCHEMAS["CancelParams"]["required"]
    return [
        _param(name, "query", schema, "see CancelParams", required and name in needed)
        for name, schema in props.items()
    ]


def _query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return _param(name, "query", schema, description, required)


LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many")
CUID_Q = _query("cuid", {"type": "string"}, "leave out what this cuid has live-bought")
USER_Q = _query("userId", {"type": "string"}, "leave out what this user has live-bought")

# -- operations ----------------------------------------------------------------------------

BODY_FAILURES = (413, 415)


def _tracker() -> dict[str, Any]:
    page = {
        200: _answer("OK, or warning (OrderConflict, CancelledOnArrival, …)", _ref("PageReply"))
    }
    page_fails = (400, 401, 404, 503)
    cancel = {
        200: _answer("cancelled, partially cancelled, or already cancelled", _ref("CancelReply")),
        202: _answer("warning OrderNotFound: the cancellation is held", _ref("CancelReply")),
    }
    cancel_fails = (400, 401, 403, 404, 409, 503)
    cancel_text = (
        "Checks in this order: version, site (404), cancellations on (403), parameters (400),"
        " cancelAuth (401), then apply."
    )
    return {
        "/tracker/api/{version}/rest.pagex": {
            "parameters": [VERSION],
            "get": _op(
                "Track a page (jd in the query string)",
                "tracker",
                _responses(page, *page_fails),
                parameters=[JD],
            ),
            "post": _op(
                "Track a page (jd as a form field, or the page as a JSON body)",
                "tracker",
                _responses(page, *page_fails, *BODY_FAILURES),
                body={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": _ref("PageForm")},
                        "application/json": {"schema": _ref("Page")},
                    },
                },
            ),
        },
        "/tracker/api/{version}/{site}/order/cancel.pagex": {
            "parameters": [VERSION, PATH_SITE],
            "get": _op(
                "Cancel an online order (parameters in the query string)",
                "tracker",
                _responses(cancel, *cancel_fails),
                cancel_text,
                parameters=_cancel_query(required=True),
            ),
            "post": _op(
                "Cancel an online order (query string and/or form body)",
                "tracker",
                _responses(cancel, *cancel_fails, *BODY_FAILURES),
                cancel_text + " The same name in both with different values: 400"
                " ConflictingParameters.",
                parameters=_cancel_query(required=False),
                body={
                    "required": False,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": _ref("CancelParams")}
                    },
                },
            ),
        },
    }


def _smart_api() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    place = {
        201: _answer("created (or warning CancelledOnArrival)", _ref("OfflineReply")),
        200: _answer("the same content again, or an update", _ref("OfflineReply")),
    }
    cancel = {
        200: _answer("cancelled (idempotent)", _ref("OfflineReply")),
        202: _answer("warning OrderNotFound: the cancellation is held", _ref("OfflineReply")),
    }
    order_number = _param(
        "order_number", "path", _text(), "the order's refCode, percent-decoded, 1-128 characters"
    )
    for prefix in ("", "/tracker"):
        paths[f"{prefix}/smart-api/orders/offline"] = {
            "post": _op(
                "Place an offline order",
                "smart API",
                _responses(place, 400, 401, 409, *BODY_FAILURES, 503),
                "Keyed by (site, channel, order.refCode). A missing header: 400 naming it; an"
                " unknown site or a wrong token: 401 InvalidSiteToken.",
                parameters=SMART_HEADERS,
                body={"required": True, "content": _json_content(_ref("OfflineOrder"))},
            )
        }
        paths[f"{prefix}/smart-api/orders/offline/{{order_number}}"] = {
            "delete": _op(
                "Cancel an offline order, or lines of it",
                "smart API",
                _responses(cancel, 400, 401, 403, 409, *BODY_FAILURES, 503),
                "Found only under another channel: 409 ChannelMismatch.",
                parameters=[*SMART_HEADERS, order_number],
                body={"required": False, "content": _json_content(_ref("CancelItems"))},
            )
        }
    return paths


def _management() -> dict[str, Any]:
    def read(summary: str, payload: Schema, *params: Schema, bad: bool = True) -> dict[str, Any]:
        fails = (400, 401, 404, 503) if bad else (401, 404, 503)
        return {
            "parameters": [PATH_SITE],
            "get": _op(
                summary,
                "management",
                _responses({200: _answer("OK", payload)}, *fails),
                parameters=list(params),
                admin=True,
            ),
        }

    recs = {"recs": {"type": "array", "items": _ref("Score")}}
    return {
        "/api/v1/sites": {
            "post": _op(
                "Create a site; its tokens are shown once",
                "management",
                _responses(
                    {201: _answer("created", _ok(site=_ref("CreatedSite")))},
                    400,
                    401,
                    409,
                    *BODY_FAILURES,
                    503,
                ),
                body={"required": True, "content": _json_content(_ref("NewSite"))},
                admin=True,
            )
        },
        "/api/v1/sites/{site}": {
            "parameters": [PATH_SITE],
            "get": _op(
                "A site and its settings",
                "management",
                _responses({200: _answer("OK", _ok(site=_ref("Site")))}, 401, 404, 503),
                admin=True,
            ),
            "patch": _op(
                "Change settings",
                "management",
                _responses(
                    {200: _answer("OK", _ok(site=_ref("Site")))},
                    400,
                    401,
                    404,
                    *BODY_FAILURES,
                    503,
                ),
                body={"required": True, "content": _json_content(_ref("Settings"))},
                admin=True,
            ),
        },
        "/api/v1/sites/{site}/tokens": {
            "parameters": [PATH_SITE],
            "post": _op(
                "Rotate (or add) a channel's token; the old one stops working",
                "management",
                _responses(
                    {201: _answer("the new token, shown once", _ok(site=_ref("RotatedToken")))},
                    400,
                    401,
                    404,
                    *BODY_FAILURES,
                    503,
                ),
                body={
                    "required": True,
                    "content": _json_content(_obj(["channel"], {"channel": CHANNEL})),
                },
                admin=True,
            ),
        },
        "/api/v1/sites/{site}/orders/{orderNo}": {
            "parameters": [PATH_SITE, _param("orderNo", "path", _text(), "the order number")],
            "get": _op(
                "One order with its lines and history",
                "management",
                _responses({200: _answer("OK", _ok(order=_ref("OrderView")))}, 400, 401, 404, 503),
                parameters=[
                    _query("source", {"type": "string", "enum": ["online", "offline"]}, "online"),
                    _query("channel", {"type": "string"}, "an offline order's channel"),
                ],
                admin=True,
            ),
        },
        "/api/v1/sites/{site}/orders": read(
            "Orders, newest first, paged",
            {
                "allOf": [
                    _ok(orders={"type": "array", "items": _ref("OrderSummary")}),
                    _obj([], {"next": {"type": "string", "description": "the next page"}}),
                ]
            },
            _query(
                "state",
                {"type": "string", "enum": ["placed", "partially-cancelled", "cancelled"]},
                "only orders in this state",
            ),
            _query("from", DAY, "first day"),
            _query("to", DAY, "last day"),
            _query("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "from next"),
            LIMIT,
        ),
        "/api/v1/sites/{site}/held": read(
            "Cancellations held for orders not seen yet",
            _ok(held={"type": "array", "items": _ref("Held")}),
            bad=False,
        ),
        "/api/v1/sites/{site}/recs/top-sellers": read(
            "Top sellers",
            _ok(**recs),
            _query("by", {"type": "string", "enum": ["units", "revenue"]}, "ranking"),
            _query("days", {"type": "integer", "minimum": 1, "maximum": 3650}, "window"),
            LIMIT,
            CUID_Q,
            USER_Q,
        ),
        "/api/v1/sites/{site}/recs/bought-together": read(
            "Bought together with the given products",
            _ok(**recs),
            _query(
                "refCode",
                {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "one or more products",
                required=True,
            ),
            LIMIT,
            CUID_Q,
            USER_Q,
        ),
        "/api/v1/sites/{site}/history": read(
            "A buyer's live purchases (give cuid or userId)",
            _ok(history={"type": "array", "items": _ref("Bought")}),
            CUID_Q,
            USER_Q,
        ),
        "/api/v1/sites/{site}/reports/daily": read(
            "Orders, units and revenue per day",
            _ok(days={"type": "array", "items": _ref("Day")}),
            _query("from", DAY, "first day", required=True),
            _query("to", DAY, "last day", required=True),
        ),
    }


def _ops() -> dict[str, Any]:
    def get(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {"get": _op(summary, "operations", responses)}

    return {
        "/healthz": get("Liveness", {"200": _answer("alive", _ref("Success"))}),
        "/readyz": get(
            "Readiness: the database answers",
            _responses({200: _answer("ready", _ref("Success"))}, 503),
        ),
        "/metrics": get(
            "Prometheus metrics",
            {
                "200": {
                    "description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        "/openapi.json": get(
            "This description",
            {"200": {"description": "OpenAPI 3.0", "content": _json_content({"type": "object"})}},
        ),
        "/docs": get(
            "This description as a page",
            {
                "200": {
                    "description": "HTML",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        ),
    }


INTRO = (
    "Self-hosted order tracking, wire-compatible with Optimizely Product Recommendations"
    " (Peerius). Every JSON reply is the envelope `{status, errors?, …}`: `status` is `OK`,"
    " `warning` (useful work done, with `errors`) or `fail` (nothing done; every 4xx/5xx)."
)


@functools.cache
def _spec() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "recotrack", "version": "1", "description": INTRO},
        "tags": [
            {"name": "tracker", "description": "page tracking and online cancels (vendor)"},
            {"name": "smart API", "description": "offline orders (vendor)"},
            {"name": "management", "description": "ours; Authorization: Bearer <admin token>"},
            {"name": "operations", "description": "load balancers and Prometheus"},
        ],
        "paths": {**_tracker(), **_smart_api(), **_management(), **_ops()},
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def spec() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_spec())


@functools.cache
def _spec_json() -> bytes:
    return json.dumps(_spec(), ensure_ascii=False, indent=1).encode("utf-8")


async def openapi_json(request: Request) -> Response:
    return Response(_spec_json(), media_type=MEDIA_TYPE)


@functools.cache
def _docs_page() -> str:
    return render_docs(_spec())


async def docs(request: Request) -> Response:
    return HTMLResponse(_docs_page())


ROUTES = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
