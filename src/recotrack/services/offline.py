"""The smart API: offline orders placed and cancelled per (site, channel) (API.md 6)."""

from __future__ import annotations

from datetime import datetime

from ..domain.errors import ApiError
from ..domain.orders import OFFLINE
from ..domain.sites import SITE, Site, is_site_name
from ..store.repository import Repository
from .commands import OfflineCancel, OfflineOrder, SmartAuth
from .orders import (
    CONFLICT,
    MAX_HELD_PER_SITE,
    Cancelled,
    Context,
    Placed,
    cancel_order,
    place_order,
    require,
    require_cancellations,
)


def authenticate(repo: Repository, auth: SmartAuth) -> Site:
    """The site named by the headers if the siteToken is the channel's; 401 otherwise.

    An unknown site and a wrong token answer alike, so the headers cannot probe for sites.
    """
    site = repo.get_site(auth.site) if is_site_name(auth.site) else None
    if site is None or not site.token_matches(SITE, auth.channel, auth.site_token):
        raise ApiError(
            "InvalidSiteToken",
            "siteToken is not valid for this site and channel (or the site is not known)",
        )
    return site


def place_offline(repo: Repository, request: OfflineOrder, now: datetime) -> Placed:
    site = authenticate(repo, request.auth)
    require(request.problem)
    assert request.order is not None
    order = request.order.copy()
    order.site, order.channel = site.name, request.auth.channel
    order.crowd = site.settings.offline_orders_affect_crowd
    placed = place_order(repo, site, order, now)
    if placed.outcome == CONFLICT:
        raise ApiError(
            "OrderConflict",
            f"offline order {order.order_no!r:.80} was already placed on channel"
            f" {order.channel!r} with different content; updates need cancellations enabled",
        )
    return placed


def cancel_offline(
    repo: Repository, request: OfflineCancel, now: datetime, max_held: int = MAX_HELD_PER_SITE
) -> Cancelled:
    site = authenticate(repo, request.auth)
    require_cancellations(site)
    require(request.problem)
    channel = request.auth.channel
    if repo.find_order(site.name, OFFLINE, channel, request.order_no, lock=False) is None:
        others = [c for c in repo.offline_channels_of(site.name, request.order_no) if c != channel]
        if others:
            raise ApiError(
                "ChannelMismatch",
                f"offline order {request.order_no!r:.80} was created on channel {others[0]!r},"
                f" not {channel!r}; cancel it with that channel and its siteToken",
            )
    return cancel_order(
        repo,
        site,
        OFFLINE,
        channel,
        request.order_no,
        request.items,
        Context(channel),
        now,
        max_held,
    )
