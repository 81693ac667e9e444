"""Placing and cancelling orders: the rules both surfaces share (API.md 5.1, 5.2, 5.4, 6).

Every change of an order moves the read model from what the order counted before to what it
counts after (``repo.count``) in the same transaction, so the statistics never count a
cancelled line, whatever order requests arrive in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..domain.errors import ApiError, Warning_
from ..domain.orders import CancelItem, Event, HeldCancel, Order, State
from ..domain.sites import Site
from ..settings import Settings
from ..store.repository import Repository

# How a placement went.
CREATED, SAME, UPDATED, CONFLICT = "created", "same", "updated", "conflict"
MAX_HELD_PER_SITE = Settings.max_held_per_site  # the default of RECOTRACK_MAX_HELD_PER_SITE


@dataclass
class Placed:
    order: Order
    outcome: str
    warnings: list[Warning_] = field(default_factory=list)


@dataclass
class Cancelled:
    order_no: str
    state: State
    held: bool = False  # the order is not known yet: the cancellation is held

    @property
    def warnings(self) -> list[Warning_]:
        if not self.held:
            return []
        return [
            Warning_(
                "OrderNotFound",
                f"order {self.order_no!r:.80} has not been seen yet; the cancellation is held"
                " and applied if it arrives",
            )
        ]


@dataclass(frozen=True)
class Context:
    """Who asked, for the order's history."""

    channel: str = ""
    session: str = ""
    cuid: str = ""
    reason: str = ""


def place_order(repo: Repository, site: Site, new: Order, now: datetime) -> Placed:
    """Store a new order, ignore a same-content re-send, or update it when the site allows."""
    repo.lock_order_key(site.name, new.source, new.key_channel, new.order_no)
    existing = repo.find_order(site.name, new.source, new.key_channel, new.order_no)
    if existing is None:
        return _create(repo, site, new, now)
    if existing.content() == new.content():
        return Placed(existing, SAME)
    if not site.settings.cancellations:
        return Placed(
            existing,
            CONFLICT,
            [
                Warning_(
                    "OrderConflict",
                    f"order {new.order_no!r:.80} was already placed with different content;"
                    " the first one is kept (order updates need cancellations enabled)",
                )
            ],
        )
    before = existing.copy()
    existing.replace_content(new)
    existing.new_events.append(_event("updated", now, Context(new.channel, new.session, new.cuid)))
    repo.update_order(existing, now, lines_replaced=True)
    repo.count(site.name, before, existing)
    return Placed(existing, UPDATED)


def cancel_order(
    repo: Repository,
    site: Site,
    source: str,
    channel_key: str,
    order_no: str,
    items: list[CancelItem] | None,
    context: Context,
    now: datetime,
    max_held: int = MAX_HELD_PER_SITE,
    admit: Callable[[], None] | None = None,
) -> Cancelled:
    """Cancel a whole order, or lines of it; hold the cancellation if the order is unseen
    (503 ``Overloaded`` if the site already holds ``max_held``). ``admit`` runs once the order
    is read, before anything changes: it raises to refuse the cancellation."""
    repo.lock_order_key(site.name, source, channel_key, order_no)
    order = repo.find_order(site.name, source, channel_key, order_no)
    if admit is not None:
        admit()
    if order is None:
        _hold(repo, site, source, channel_key, order_no, items, context, now, max_held)
        return Cancelled(order_no, State.CANCEL_PENDING, held=True)
    before = order.copy()
    if items is None:
        if not order.cancel_whole():
            return Cancelled(order_no, order.state)
        order.new_events.append(_event("cancelled", now, context))
    else:
        order.cancel_items(items)
        order.new_events.append(_event("line-cancelled", now, context, _describe(items)))
    repo.update_order(order, now, lines_replaced=False)
    repo.count(site.name, before, order)
    return Cancelled(order_no, order.state)


def start_history(new: Order, now: datetime) -> None:
    """The history a new order is stored with when no cancellation is held for it: placed
    at ``now``. (The import's parsing process prepares new orders' rows with it.)"""
    new.new_events.append(_event("placed", now, Context(new.channel, new.session, new.cuid)))


def _create(repo: Repository, site: Site, new: Order, now: datetime) -> Placed:
    start_history(new, now)
    held = repo.held_for(site.name, new.source, new.key_channel, new.order_no, now)
    warnings = []
    arrivals = []
    for cancel in held:
        skipped = new.apply_held(cancel.items)
        detail = "whole order" if cancel.items is None else _describe(cancel.items)
        held_context = Context(cancel.channel, cancel.session, cancel.cuid, cancel.reason)
        arrivals.append(_event("held", cancel.at, held_context, detail))
        if skipped:
            detail += f" (not applied: {skipped})"
        new.new_events.append(_event("applied", now, held_context, detail))
    new.new_events[:0] = arrivals  # the history keeps when each cancellation came: first
    if held:
        repo.delete_held(site.name, [cancel.id for cancel in held if cancel.id is not None])
    if any(line.cancelled for line in new.lines):  # a held cancellation took something
        warnings.append(
            Warning_(
                "CancelledOnArrival",
                f"a cancellation for order {new.order_no!r:.80} arrived first and was applied;"
                " the cancelled quantities are not counted",
            )
        )
    repo.insert_order(new, now)
    repo.count(site.name, None, new)
    return Placed(new, CREATED, warnings)


def _hold(
    repo: Repository,
    site: Site,
    source: str,
    channel_key: str,
    order_no: str,
    items: list[CancelItem] | None,
    context: Context,
    now: datetime,
    max_held: int,
) -> None:
    repo.purge_expired_held(site.name, now)  # expired ones are never applied: let them go
    pending = repo.held_for(site.name, source, channel_key, order_no, now)
    if items is None and any(cancel.items is None for cancel in pending):
        return  # a retried whole cancellation is held once
    if repo.count_held(site.name, max_held) >= max_held:  # each one is a row kept for days
        raise ApiError(
            "Overloaded",
            f"site {site.name!r} already holds {max_held} cancellations for orders not seen yet"
            " (RECOTRACK_MAX_HELD_PER_SITE); this one was not held: retry once orders arrive"
            " or held cancellations expire",
        )
    repo.insert_held(
        HeldCancel(
            site=site.name,
            source=source,
            channel=channel_key,
            order_no=order_no,
            items=items,
            at=now,
            expires_at=now + timedelta(days=site.settings.pending_cancel_days),
            session=context.session,
            cuid=context.cuid,
            reason=context.reason,
        )
    )


def _event(kind: str, now: datetime, context: Context, detail: str = "") -> Event:
    return Event(kind, now, context.channel, context.session, context.cuid, context.reason, detail)


def _describe(items: list[CancelItem]) -> str:
    return ", ".join(
        f"{item.ref_code} x{'all' if item.qty is None else item.qty}" for item in items
    )


def require_cancellations(site: Site) -> None:
    """403 unless the site has "order updates and cancellations" switched on."""
    if not site.settings.cancellations:
        raise ApiError(
            "CancellationsNotEnabled",
            f"order cancellations are not enabled for site {site.name!r}; an operator enables"
            " them with the site setting cancellations",
        )


def require(problem: ApiError | None) -> None:
    """Raise a parsing problem at the point its check belongs."""
    if problem is not None:
        raise problem
