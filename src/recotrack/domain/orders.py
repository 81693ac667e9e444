"""Orders, their lines, live quantities and states; whole and partial cancellation.

The **live quantity** of a line is its quantity minus what was cancelled. Everything the
service counts is a function of live quantities (see ``recotrack.domain.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .errors import ApiError

ONLINE, OFFLINE = "online", "offline"
MAX_LINES = 1000


class State(StrEnum):
    PLACED = "placed"
    PARTIALLY_CANCELLED = "partially-cancelled"
    CANCELLED = "cancelled"
    CANCEL_PENDING = "cancel-pending"


@dataclass
class Line:
    ref_code: str
    qty: int
    price: Decimal  # unit price
    variant: str = ""  # "sku:..." or canonical JSON of the attributes
    attributes: str = ""  # offline items[].attributes as canonical JSON
    cancelled: int = 0

    @property
    def live(self) -> int:
        return self.qty - self.cancelled

    def content(self) -> tuple[Any, ...]:
        return (self.ref_code, self.variant, self.attributes, self.qty, self.price)


@dataclass(frozen=True)
class CancelItem:
    """Cancel ``qty`` units of ``ref_code`` (all its live units when ``qty`` is None)."""

    ref_code: str
    qty: int | None = None


@dataclass(frozen=True)
class Event:
    """One entry of an order's history."""

    kind: str  # placed, updated, cancelled, line-cancelled, held, applied, conflict
    at: datetime
    channel: str = ""
    session: str = ""
    cuid: str = ""
    reason: str = ""
    detail: str = ""


@dataclass
class Order:
    site: str
    source: str  # ONLINE or OFFLINE
    channel: str
    order_no: str
    currency: str
    subtotal: Decimal
    shipping: Decimal
    total: Decimal
    lines: list[Line]
    ordered_at: datetime
    session: str = ""
    cuid: str = ""
    user_id: str = ""
    customer_id: str = ""
    crowd: bool = True  # counted in top sellers and bought together
    cancelled_whole: bool = False
    dated: bool = False  # ordered_at was given by the client (offline orderDate)
    id: int | None = None
    new_events: list[Event] = field(default_factory=list)

    @property
    def key_channel(self) -> str:
        """Online orders are keyed by (site, orderNo); offline ones by channel too."""
        return self.channel if self.source == OFFLINE else ""

    @property
    def day(self) -> str:
        return self.ordered_at.date().isoformat()

    @property
    def state(self) -> State:
        if self.cancelled_whole:
            return State.CANCELLED
        live = cancelled = False  # one pass: this runs for every order stored
        for line in self.lines:
            live = live or line.qty != line.cancelled
            cancelled = cancelled or line.cancelled != 0
        if not live:
            return State.CANCELLED
        return State.PARTIALLY_CANCELLED if cancelled else State.PLACED

    def copy(self) -> Order:
        """A snapshot whose lines can change without touching this order's."""
        # Field by field, as dataclasses.replace would, at a fifth of its cost (it runs for
        # every change of an order).
        snapshot = object.__new__(Order)
        snapshot.__dict__.update(self.__dict__)
        snapshot.lines = [_copy_line(line) for line in self.lines]
        snapshot.new_events = []
        return snapshot

    def buyers(self) -> list[tuple[str, str]]:
        """Who bought it (``buyers``)."""
        return buyers(self.cuid, self.user_id, self.session)

    def live_refs(self) -> list[str]:
        """The refCode of each line with a live unit, once per such line."""
        return [line.ref_code for line in self.lines if line.qty > line.cancelled]

    def content(self) -> tuple[Any, ...]:
        """What decides whether a re-send is the same order or an update."""
        return (
            self.currency,
            self.subtotal,
            self.shipping,
            self.total,
            # a multiset: a re-send that lists the same lines in another order is the same
            tuple(sorted(line.content() for line in self.lines)),
        )

    def cancel_whole(self) -> bool:
        """Cancel every live unit; False when it was already cancelled."""
        # Not ``self.state``: it trusts the flag, and an update of a cancelled order has just
        # put new, uncancelled lines under it.
        if self.cancelled_whole and all(line.live == 0 for line in self.lines):
            return False
        self.cancelled_whole = True
        for line in self.lines:
            line.cancelled = line.qty
        return True

    def cancel_items(self, items: list[CancelItem]) -> None:
        """Cancel lines or quantities, all or nothing.

        Raises ``LineNotFound`` for a refCode that is not in the order and
        ``QuantityExceedsRemaining`` when more is asked than is live.
        """
        wanted: dict[str, int] = {}
        for item in items:
            live = self.live_of(item.ref_code)
            if live is None:
                raise ApiError(
                    "LineNotFound",
                    f"refCode {item.ref_code!r:.80} is not a line of order {self.order_no!r:.80}",
                )
            already = wanted.get(item.ref_code, 0)
            qty = live - already if item.qty is None else item.qty
            if already + qty > live:
                raise ApiError(
                    "QuantityExceedsRemaining",
                    f"qty {item.qty} for refCode {item.ref_code!r:.80} is more than its live "
                    f"quantity {live - already}",
                )
            wanted[item.ref_code] = already + qty
        for ref_code, qty in wanted.items():
            self._take(ref_code, qty)

    def apply_held(self, items: list[CancelItem] | None) -> str:
        """Apply a held cancellation as far as it fits; returns what could not be applied."""
        if items is None:
            self.cancel_whole()
            return ""
        skipped = []
        for item in items:
            live = self.live_of(item.ref_code)
            if live is None:
                skipped.append(f"{item.ref_code}: no such line")
                continue
            qty = live if item.qty is None else item.qty
            if qty > live:
                skipped.append(f"{item.ref_code}: {qty - live} above the live quantity")
            self._take(item.ref_code, min(qty, live))
        return "; ".join(skipped)

    def replace_content(self, new: Order) -> None:
        """Take ``new``'s content; cancellations already made stay (per refCode, clamped)."""
        cancelled: dict[str, int] = {}
        for line in self.lines:
            cancelled[line.ref_code] = cancelled.get(line.ref_code, 0) + line.cancelled
        self.currency, self.subtotal = new.currency, new.subtotal
        self.shipping, self.total = new.shipping, new.total
        self.lines = [
            Line(line.ref_code, line.qty, line.price, line.variant, line.attributes)
            for line in new.lines
        ]
        if new.dated:  # an order keeps its first date unless the update names one
            self.ordered_at = new.ordered_at
        self.user_id = new.user_id or self.user_id
        self.customer_id = new.customer_id or self.customer_id
        self.crowd = new.crowd
        if self.cancelled_whole:
            self.cancel_whole()
            return
        for ref_code, qty in cancelled.items():
            live = self.live_of(ref_code)
            if live:
                self._take(ref_code, min(qty, live))

    def live_of(self, ref_code: str) -> int | None:
        lines = [line for line in self.lines if line.ref_code == ref_code]
        return sum(line.live for line in lines) if lines else None

    def _take(self, ref_code: str, qty: int) -> None:
        for line in self.lines:
            if qty == 0:
                return
            if line.ref_code == ref_code and line.live:
                taken = min(qty, line.live)
                line.cancelled += taken
                qty -= taken


def buyers(cuid: str, user_id: str, session: str) -> list[tuple[str, str]]:
    """A buyer's cuid, user id and session, those that are set, each as the order field it
    is kept in and its value: what any of them has live-bought leaves the recommendations
    (API.md 5.1)."""
    return [
        (name, value)
        for name, value in (("cuid", cuid), ("user_id", user_id), ("session", session))
        if value
    ]


def _copy_line(line: Line) -> Line:
    copied = object.__new__(Line)
    copied.__dict__.update(line.__dict__)
    return copied


@dataclass(frozen=True)
class HeldCancel:
    """A cancellation that arrived before its order (API.md 5.4)."""

    site: str
    source: str
    channel: str  # "" for online
    order_no: str
    items: list[CancelItem] | None  # None: the whole order
    at: datetime
    expires_at: datetime
    session: str = ""
    cuid: str = ""
    reason: str = ""
    id: int | None = None
