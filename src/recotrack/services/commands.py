"""Typed requests, built by the HTTP layer (or the CLI) and decided by the services.

A ``problem`` is a validation error found while parsing that must be reported only after the
checks API.md orders before it (site, feature switch, credentials): the service raises it at
that point, so an unknown site is a 404 even when the rest of the request is malformed too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain.errors import ApiError
from ..domain.orders import CancelItem, Order


@dataclass(frozen=True)
class PageView:
    """One rest.pagex request."""

    version: str
    site: str
    client_token: str
    channel: str
    type: str  # lower case
    session: str  # as sent, "new" or an id
    cuid: str
    user_id: str = ""
    order: Order | None = None  # type order: the order, without session and cuid yet
    basket: str = ""  # type basket: contents as JSON text
    checkout: str = ""  # type checkout: contents as JSON text
    products: tuple[str, ...] = ()  # refCodes the page is about
    clicks: tuple[int, ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()  # lenient parsing notes (code, message)
    problem: ApiError | None = None


@dataclass(frozen=True)
class OnlineCancel:
    """One cancel.pagex request."""

    version: str
    site: str
    session: str = ""
    cuid: str = ""
    order_no: str = ""
    items: list[CancelItem] | None = None
    client_token: str = ""
    reason: str = ""
    problem: ApiError | None = None


@dataclass(frozen=True)
class SmartAuth:
    """The smart API's headers."""

    site: str
    site_token: str
    channel: str


@dataclass(frozen=True)
class OfflineOrder:
    auth: SmartAuth
    order: Order | None = None
    user_info: dict[str, str] = field(default_factory=dict)
    problem: ApiError | None = None


@dataclass(frozen=True)
class OfflineCancel:
    auth: SmartAuth
    order_no: str
    items: list[CancelItem] | None = None
    problem: ApiError | None = None
