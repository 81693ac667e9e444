"""Every failure a caller can see, with its wire code and HTTP status.

An ``ApiError`` is raised anywhere (parsing, domain rules, services) and turned into the
envelope of API.md section 2 by the one renderer in ``recotrack.http.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass

# The HTTP status each code answers with unless the raiser says otherwise.
STATUS: dict[str, int] = {
    "MalformedJson": 400,
    "TypeNotRecognized": 400,
    "SiteNotRecognized": 404,
    "MissingOrMalformedOrderNo": 400,
    "MissingOrMalformedBasket": 400,
    "MissingOrMalformedCurrency": 400,
    "MissingOrMalformedSubtotal": 400,
    "MissingOrMalformedShipping": 400,
    "MissingOrMalformedTotal": 400,
    "MissingOrMalformedItems": 400,
    "MissingOrMalformedSession": 400,
    "MissingOrMalformedCuid": 400,
    "MissingOrMalformedUser": 400,
    "MissingOrMalformedOrderDate": 400,
    "MissingOrMalformedChannel": 400,
    "MissingOrMalformedParameter": 400,
    "MissingOrMalformedProduct": 400,
    "InvalidClientToken": 401,
    "InvalidSiteToken": 401,
    "InvalidAdminToken": 401,
    "SessionNotRecognized": 401,
    "CancellationsNotEnabled": 403,
    "OrderNotFound": 404,
    "OrderConflict": 409,
    "ChannelMismatch": 409,
    "CancelledOnArrival": 200,
    "LineNotFound": 409,
    "QuantityExceedsRemaining": 409,
    "ConflictingParameters": 400,
    "ApiVersionNotSupported": 404,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "PayloadTooLarge": 413,
    "UnsupportedMediaType": 415,
    "Overloaded": 503,
    "InternalError": 500,
}


class ApiError(Exception):
    """A request that did no work: rendered as ``status: fail`` with one error."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS[code]

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r}, {self.status})"


@dataclass(frozen=True)
class Warning_:
    """A problem reported next to useful work: rendered as ``status: warning``."""

    code: str
    message: str
