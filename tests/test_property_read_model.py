"""Random sequences of orders, re-sends, updates and cancellations, in any order of arrival,
against an independent model of API.md section 7 (and 5, 6 for the replies).

After every request the read model must equal a recomputation from the stored orders, and
the management API must show the top sellers, bought-together counts, buyers' histories,
daily reports, held cancellations and the touched order exactly as the model predicts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .conftest import Clock
from .support import AUTH, Api

ORDER_NOS = ("A1", "A2", "A3")
PRODUCTS = ("P1", "P2", "P3", "P4")
PRICES = ("1.50", "2", "10.25")
CUIDS = ("cuid-1", "cuid-2")
USERS = ("u1", "u2")
OFFLINE_CHANNELS = ("store", "callcentre")
SESSION_MAX_AGE = timedelta(seconds=14400)  # the default of sessionMaxAgeSeconds
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

# What API.md allows each request to answer (sections 2, 5, 6, 8); never a 500.
ALLOWED = {
    "rest.pagex": {200},
    "cancel.pagex": {200, 202, 401, 403, 409},
    "offline POST": {200, 201, 409},
    "offline DELETE": {200, 202, 403, 409},
    "site PATCH": {200},
}

ONLINE, OFFLINE = "online", "offline"
Key = tuple[str, str, str]  # (source, channel or "" for online, order number)
Items = tuple[tuple[str, int | None], ...] | None  # None: the whole order

lines_strategy = st.lists(
    st.tuples(st.sampled_from(PRODUCTS), st.integers(1, 3), st.sampled_from(PRICES)),
    min_size=1,
    max_size=3,
)
item_strategy = st.tuples(st.sampled_from(PRODUCTS), st.one_of(st.none(), st.integers(1, 3)))


def stamp(moment: datetime) -> str:
    """How the management API writes times (UTC, microseconds, Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the model ------------------------------------------------------------------------------


@dataclass
class MLine:
    ref: str
    qty: int
    price: Decimal
    cancelled: int = 0

    @property
    def live(self) -> int:
        return self.qty - self.cancelled


@dataclass
class MOrder:
    key: Key
    lines: list[MLine]
    at: datetime
    cuid: str
    user: str
    crowd: bool
    whole: bool = False  # cancelled as a whole: stays cancelled whatever updates come

    @staticmethod
    def lines_of(raw: Iterable[tuple[str, int, str]]) -> list[MLine]:
        return [MLine(ref, qty, Decimal(price)) for ref, qty, price in raw]

    def content(self) -> list[tuple[str, int, Decimal]]:
        """A multiset: the same lines in another order are the same content."""
        return sorted((line.ref, line.qty, line.price) for line in self.lines)

    @property
    def state(self) -> str:
        if all(line.live == 0 for line in self.lines):
            return "cancelled"
        if any(line.cancelled for line in self.lines):
            return "partially-cancelled"
        return "placed"

    def live_of(self, ref: str) -> int | None:
        found = [line.live for line in self.lines if line.ref == ref]
        return sum(found) if found else None

    def take(self, ref: str, qty: int) -> None:
        """Cancel ``qty`` live units of ``ref``, from its first lines on."""
        for line in self.lines:
            if line.ref == ref:
                taken = min(qty, line.live)
                line.cancelled += taken
                qty -= taken
        assert qty == 0

    def cancel_whole(self) -> None:
        self.whole = True
        for line in self.lines:
            line.cancelled = line.qty

    def apply_held(self, items: Items) -> None:
        """A held cancellation applies as far as it fits the order that arrived."""
        if items is None:
            self.cancel_whole()
            return
        for ref, qty in items:
            live = self.live_of(ref)
            if live is not None:
                self.take(ref, live if qty is None else min(qty, live))

    def replace(self, lines: list[MLine], at: datetime | None, user: str, crowd: bool) -> None:
        """An update: the new content, keeping the cancellations already made, and the first
        date unless the update names one."""
        cancelled: dict[str, int] = {}
        for line in self.lines:
            cancelled[line.ref] = cancelled.get(line.ref, 0) + line.cancelled
        self.lines, self.at, self.crowd = lines, at or self.at, crowd
        self.user = user or self.user
        if self.whole:
            self.cancel_whole()
            return
        for ref, qty in cancelled.items():
            live = self.live_of(ref)
            if live:
                self.take(ref, min(qty, live))


@dataclass
class MHeld:
    key: Key
    items: Items
    expires: datetime


@dataclass
class Model:
    """What the service must show, kept without any of its code."""

    now: datetime
    cancellations: bool = True
    affect_crowd: bool = False
    pending_days: int = 30
    orders: dict[Key, MOrder] = field(default_factory=dict)
    held: list[MHeld] = field(default_factory=list)

    def active_held(self, key: Key | None = None) -> list[MHeld]:
        return [h for h in self.held if h.expires > self.now and key in (None, h.key)]

    def place(
        self, key: Key, raw: list[tuple[str, int, str]], at: datetime | None, cuid: str, user: str
    ) -> tuple[str, list[str]]:
        """(created | same | updated | conflict, warning codes); ``at`` None: no date given."""
        crowd = key[0] == ONLINE or self.affect_crowd
        lines = MOrder.lines_of(raw)
        existing = self.orders.get(key)
        if existing is None:
            order = self.orders[key] = MOrder(key, lines, at or self.now, cuid, user, crowd)
            held = self.active_held(key)
            for cancel in held:
                order.apply_held(cancel.items)
            self.held = [h for h in self.held if h not in held]
            took = any(line.cancelled for line in order.lines)  # the held cancels took something
            return "created", ["CancelledOnArrival"] if took else []
        if existing.content() == sorted((line.ref, line.qty, line.price) for line in lines):
            return "same", []
        if not self.cancellations:
            return "conflict", ["OrderConflict"]
        existing.replace(lines, at, user, crowd)
        return "updated", []

    def cancel(self, key: Key, items: Items) -> tuple[int, str, str]:
        """(HTTP status, order state, error code) of a cancellation the site accepts."""
        order = self.orders.get(key)
        if order is None:
            if items is not None or not any(h.items is None for h in self.active_held(key)):
                self.held.append(MHeld(key, items, self.now + timedelta(days=self.pending_days)))
            return 202, "cancel-pending", "OrderNotFound"
        if items is None:
            order.cancel_whole()
            return 200, order.state, ""
        wanted: dict[str, int] = {}
        for ref, qty in items:
            live = order.live_of(ref)
            if live is None:
                return 409, "", "LineNotFound"
            already = wanted.get(ref, 0)
            wanted[ref] = already + (live - already if qty is None else qty)
            if wanted[ref] > live:
                return 409, "", "QuantityExceedsRemaining"
        for ref, qty in wanted.items():
            order.take(ref, qty)
        return 200, order.state, ""

    # -- the figures of API.md section 7 ------------------------------------------------

    def live_bought(self, cuid: str = "", user: str = "") -> set[str]:
        return {ref for ref, _, _ in self.history(cuid, user)}

    def top_sellers(self, by: str, exclude: frozenset[str] = frozenset()) -> list[Any]:
        first = self.now.date() - timedelta(days=29)
        units: dict[str, int] = {}
        revenue: dict[str, Decimal] = {}
        for order in self.orders.values():
            if not order.crowd or not first <= order.at.date() <= self.now.date():
                continue
            for line in order.lines:
                units[line.ref] = units.get(line.ref, 0) + line.live
                revenue[line.ref] = revenue.get(line.ref, Decimal(0)) + line.price * line.live
        scores = units if by == "units" else revenue
        ranked = [(ref, scores[ref]) for ref in units if units[ref] > 0 and ref not in exclude]
        return sorted(ranked, key=lambda item: (-item[1], item[0]))

    def bought_together(self, ref: str) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for order in self.orders.values():
            live = {line.ref for line in order.lines if line.live} if order.crowd else set()
            if ref in live:
                for other in live - {ref}:
                    counts[other] = counts.get(other, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def history(self, cuid: str = "", user: str = "") -> list[tuple[str, int, str]]:
        qty: dict[str, int] = {}
        last: dict[str, str] = {}
        for order in self.orders.values():
            if not ((cuid and order.cuid == cuid) or (user and order.user == user)):
                continue
            for line in order.lines:
                if line.live:
                    qty[line.ref] = qty.get(line.ref, 0) + line.live
                    last[line.ref] = max(last.get(line.ref, ""), stamp(order.at))
        return sorted(
            ((ref, qty[ref], last[ref]) for ref in qty),
            key=lambda item: (-datetime.fromisoformat(item[2]).timestamp(), item[0]),
        )

    def report(self, first: date, last: date) -> list[dict[str, Any]]:
        zero = Decimal(0)
        days = {
            first + timedelta(days=n): [0, 0, zero, 0, zero] for n in range((last - first).days + 1)
        }
        for order in self.orders.values():
            row = days[order.at.date()]
            live = [line for line in order.lines if line.live]
            row[0] += 1 if live else 0
            row[1] += sum(line.live for line in live)
            row[2] += sum((line.price * line.live for line in live), zero)
            row[3] += 1 if order.state == "cancelled" else 0
            row[4] += sum((line.price * line.cancelled for line in order.lines), zero)
        return [
            {
                "date": day.isoformat(),
                "orders": row[0],
                "units": row[1],
                "revenue": row[2],
                "cancelledOrders": row[3],
                "cancelledRevenue": row[4],
            }
            for day, row in sorted(days.items())
        ]


# -- the machine ----------------------------------------------------------------------------


def money(value: Any) -> Decimal:
    """A management-API amount: exact text with at least two decimals."""
    assert isinstance(value, str) and "." in value and len(value.split(".")[1]) >= 2, value
    return Decimal(value)


def check_reply(kind: str, response: Any, status: int, codes: list[str]) -> dict[str, Any]:
    """The reply is allowed for the request, has the envelope of API.md 2, and is the one
    predicted: HTTP status and error codes."""
    assert response.status_code in ALLOWED[kind], (kind, response.status_code, response.text)
    assert response.status_code == status, (kind, status, codes, response.text)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body: dict[str, Any] = response.json()
    expected_status = "fail" if status >= 400 else "warning" if codes else "OK"
    assert body["status"] == expected_status, response.text
    assert [error["code"] for error in body.get("errors", [])] == codes, response.text
    assert ("errors" in body) == (expected_status != "OK")
    return body


def make_machine(api: Api, clock: Clock) -> type[RuleBasedStateMachine]:
    sites = itertools.count()

    class ReadModelMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            clock.moment = START
            self.model = Model(now=START)
            self.name = f"prop-{next(sites)}"
            self.site = api.create_site(self.name, cancellations=True)
            self.touched: Key | None = None
            self.last_cancel: tuple[str, Any] | None = None
            # The session cancels are sent in (cancelAuth is session): issued, and kept alive.
            self.session = ""
            self.session_seen = START
            self.visit()

        # -- requests -------------------------------------------------------------------

        def patch(self, **setting: Any) -> None:
            response = api.client.patch(f"/api/v1/sites/{self.name}", json=setting, headers=AUTH)
            check_reply("site PATCH", response, 200, [])

        def send_online(self, order_no: str, raw: list[Any], cuid: str, user: str) -> None:
            key: Key = (ONLINE, "", order_no)
            outcome, codes = self.model.place(key, raw, None, cuid, user)
            subtotal = sum((Decimal(price) * qty for _, qty, price in raw), Decimal(0))
            order = {
                "orderNo": order_no,
                "items": [{"refCode": r, "qty": q, "price": p} for r, q, p in raw],
                "currency": "GBP",
                "subtotal": str(subtotal),
                "shipping": "0",
                "total": str(subtotal),
            }
            fields: dict[str, Any] = {"cuid": cuid}
            if user:
                fields["user"] = {"id": user}
            body = check_reply("rest.pagex", api.place(self.site, order, **fields), 200, codes)
            assert body["order"] == {"orderNo": order_no, "state": self.model.orders[key].state}
            self.touched = key

        def send_offline(
            self, channel: str, order_no: str, raw: list[Any], user: str, at: datetime | None
        ) -> None:
            key: Key = (OFFLINE, channel, order_no)
            outcome, codes = self.model.place(key, raw, at, "", user)
            subtotal = sum((Decimal(price) * qty for _, qty, price in raw), Decimal(0))
            order: dict[str, Any] = {
                "refCode": order_no,
                "currency": "GBP",
                "subTotal": str(subtotal),
                "shipping": "0",
                "total": str(subtotal),
                "items": [{"refCode": r, "qty": q, "price": p} for r, q, p in raw],
            }
            if at is not None:
                order["orderDate"] = at.isoformat()
            body_out: dict[str, Any] = {"order": order}
            if user:
                body_out["user"] = {"id": user}
            status = {"created": 201, "same": 200, "updated": 200, "conflict": 409}[outcome]
            body = check_reply(
                "offline POST", api.offline(self.site, body_out, channel), status, codes
            )
            if status != 409:
                assert body["order"] == {"refCode": order_no, "state": self.model.orders[key].state}
            self.touched = key

        @staticmethod
        def resent(order: MOrder) -> list[tuple[str, int, str]]:
            return [(line.ref, line.qty, f"{line.price:.2f}") for line in order.lines]

        # -- rules ----------------------------------------------------------------------

        @rule(
            order_no=st.sampled_from(ORDER_NOS),
            raw=lines_strategy,
            cuid=st.sampled_from(CUIDS),
            user=st.sampled_from(("", *USERS)),
        )
        def online_order(self, order_no: str, raw: list[Any], cuid: str, user: str) -> None:
            self.send_online(order_no, raw, cuid, user)

        @precondition(lambda self: any(k[0] == ONLINE for k in self.model.orders))
        @rule(data=st.data())
        def online_resend(self, data: st.DataObject) -> None:
            key = data.draw(st.sampled_from(sorted(k for k in self.model.orders if k[0] == ONLINE)))
            order = self.model.orders[key]
            # the same lines in any order, prices written either way (2 or 2.00)
            raw = data.draw(st.permutations(self.resent(order)))
            self.send_online(key[2], raw, data.draw(st.sampled_from(CUIDS)), "")

        @rule(
            channel=st.sampled_from(OFFLINE_CHANNELS),
            order_no=st.sampled_from(ORDER_NOS),
            raw=lines_strategy,
            user=st.sampled_from(("", *USERS)),
            days=st.sampled_from((None, -2, -45, 1)),
        )
        def offline_order(
            self, channel: str, order_no: str, raw: list[Any], user: str, days: int | None
        ) -> None:
            at = None if days is None else self.model.now + timedelta(days=days)
            self.send_offline(channel, order_no, raw, user, at)

        @precondition(lambda self: any(k[0] == OFFLINE for k in self.model.orders))
        @rule(data=st.data())
        def offline_resend(self, data: st.DataObject) -> None:
            keys = sorted(k for k in self.model.orders if k[0] == OFFLINE)
            key = data.draw(st.sampled_from(keys))
            order = self.model.orders[key]
            raw = data.draw(st.permutations(self.resent(order)))
            self.send_offline(key[1], key[2], raw, "", order.at)

        @rule(
            order_no=st.sampled_from(ORDER_NOS),
            item=st.one_of(st.none(), item_strategy),
            version=st.sampled_from(("v1_2", "v1_3", "v1_4")),
        )
        def online_cancel(
            self, order_no: str, item: tuple[str, int | None] | None, version: str
        ) -> None:
            params = {"cuid": CUIDS[0], "orderNo": order_no}
            if item is not None:
                params["refCode"] = item[0]
                if item[1] is not None:
                    params["qty"] = str(item[1])
            self.last_cancel = ("online", (version, params))
            self.send_online_cancel(version, params)

        def send_online_cancel(self, version: str, params: dict[str, str]) -> None:
            key: Key = (ONLINE, "", params["orderNo"])
            items: Items = None
            if "refCode" in params:
                items = ((params["refCode"], int(params["qty"]) if "qty" in params else None),)
            if not self.model.cancellations:
                status, state, code = 403, "", "CancellationsNotEnabled"
            elif self.model.now - self.session_seen > SESSION_MAX_AGE:
                status, state, code = 401, "", "SessionNotRecognized"
            else:
                status, state, code = self.model.cancel(key, items)
            # A retry comes in the cancel session as it is now; v1_2 and v1_3 write it with /.
            session = self.session if version == "v1_4" else self.session.replace("|", "/")
            response = api.cancel(self.name, version, session=session, **params)
            body = check_reply("cancel.pagex", response, status, [code] * bool(code))
            if status < 300:
                self.session_seen = self.model.now
                assert body["order"] == {"orderNo": params["orderNo"], "state": state}
            self.touched = key

        @rule(
            channel=st.sampled_from(OFFLINE_CHANNELS),
            order_no=st.sampled_from(ORDER_NOS),
            items=st.one_of(st.none(), st.lists(item_strategy, min_size=1, max_size=2)),
            prefix=st.sampled_from(("", "/tracker")),
        )
        def offline_delete(
            self,
            channel: str,
            order_no: str,
            items: list[tuple[str, int | None]] | None,
            prefix: str,
        ) -> None:
            self.last_cancel = ("offline", (channel, order_no, items, prefix))
            self.send_offline_delete(channel, order_no, items, prefix)

        def send_offline_delete(
            self,
            channel: str,
            order_no: str,
            items: list[tuple[str, int | None]] | None,
            prefix: str,
        ) -> None:
            key: Key = (OFFLINE, channel, order_no)
            others = [
                k for k in self.model.orders if k[0] == OFFLINE and k[2] == order_no and k != key
            ]
            if not self.model.cancellations:
                status, state, code = 403, "", "CancellationsNotEnabled"
            elif key not in self.model.orders and others:
                status, state, code = 409, "", "ChannelMismatch"
            else:
                status, state, code = self.model.cancel(
                    key, None if items is None else tuple(items)
                )
            headers = api.smart_headers(self.site, channel)
            content = None
            if items is not None:
                wire = [{"refCode": r} if q is None else {"refCode": r, "qty": q} for r, q in items]
                content = json.dumps({"items": wire})
            else:
                del headers["Content-Type"]
            response = api.client.request(
                "DELETE",
                f"{prefix}/smart-api/orders/offline/{order_no}",
                content=content,
                headers=headers,
            )
            body = check_reply("offline DELETE", response, status, [code] * bool(code))
            if status < 300:
                assert body["order"] == {"refCode": order_no, "state": state}
            self.touched = key

        @precondition(lambda self: self.last_cancel is not None)
        @rule()
        def repeat_last_cancel(self) -> None:
            assert self.last_cancel is not None
            kind, request = self.last_cancel
            if kind == "online":
                self.send_online_cancel(*request)
            else:
                self.send_offline_delete(*request)

        @rule(on=st.booleans())
        def toggle_cancellations(self, on: bool) -> None:
            self.patch(cancellations=on)
            self.model.cancellations = on

        @rule(on=st.booleans())
        def toggle_offline_crowd(self, on: bool) -> None:
            self.patch(offlineOrdersAffectCrowd=on)
            self.model.affect_crowd = on

        @rule(days=st.sampled_from((1, 30)))
        def set_pending_cancel_days(self, days: int) -> None:
            self.patch(pendingCancelDays=days)
            self.model.pending_days = days

        @rule(hours=st.sampled_from((1, 5, 30)))
        def advance_clock(self, hours: int) -> None:
            clock.advance(hours=hours)
            self.model.now = clock.moment

        @rule()
        def visit(self) -> None:
            """A home page in the cancel session: it keeps the session alive (or gets a new
            one once it expired), and its recs are top sellers without what cuid-1 bought."""
            response = api.page(
                self.site, type="home", session=self.session or "new", cuid=CUIDS[0]
            )
            body = check_reply("rest.pagex", response, 200, [])
            expired = self.model.now - self.session_seen > SESSION_MAX_AGE
            if self.session and not expired:
                assert body["session"]["session"] == self.session
            self.session = body["session"]["session"]
            self.session_seen = self.model.now
            want = self.model.top_sellers("units", frozenset(self.model.live_bought(CUIDS[0])))
            recs = [rec["refCode"] for rec in body["smartRecs"][0]["recs"]]
            assert recs == [ref for ref, _ in want][:10]

        # -- what must hold after every request -----------------------------------------

        @invariant()
        def read_model_is_a_recomputation(self) -> None:
            api.assert_consistent(self.name)

        @invariant()
        def figures_are_the_models(self) -> None:
            model, base = self.model, f"/api/v1/sites/{self.name}"
            assert api.top_sellers(self.name, limit=1000) == model.top_sellers("units")
            revenue = api.top_sellers(self.name, by="revenue", limit=1000)
            assert [(ref, money(score)) for ref, score in revenue] == model.top_sellers("revenue")
            for ref in PRODUCTS:
                assert api.bought_together(self.name, ref) == model.bought_together(ref)
            for who in [{"cuid": cuid} for cuid in CUIDS] + [{"userId": user} for user in USERS]:
                got = api.admin_get(f"{base}/history", **who)["history"]
                want = model.history(who.get("cuid", ""), who.get("userId", ""))
                assert [(h["refCode"], h["quantity"], h["lastBought"]) for h in got] == want
            days = [o.at.date() for o in model.orders.values()] + [model.now.date()]
            first, last = min(days), max(days)
            got_days = api.admin_get(
                f"{base}/reports/daily", **{"from": first.isoformat(), "to": last.isoformat()}
            )["days"]
            for row in got_days:
                row["revenue"] = money(row["revenue"])
                row["cancelledRevenue"] = money(row["cancelledRevenue"])
            assert got_days == model.report(first, last)
            held = api.admin_get(f"{base}/held")["held"]
            assert [
                (
                    h["source"],
                    h["channel"],
                    h["orderNo"],
                    None
                    if h["items"] is None
                    else tuple((i["refCode"], i["qty"]) for i in h["items"]),
                )
                for h in held
            ] == [(*h.key, h.items) for h in model.active_held()]

        @invariant()
        def touched_order_is_the_models(self) -> None:
            key = self.touched
            if key is None:
                return
            response = api.client.get(
                f"/api/v1/sites/{self.name}/orders/{key[2]}",
                params={"source": key[0], "channel": key[1]},
                headers=AUTH,
            )
            order = self.model.orders.get(key)
            if order is None:
                assert response.status_code == 404, response.text
                return
            assert response.status_code == 200, response.text
            got = response.json()["order"]
            assert got["state"] == order.state
            assert got["countsInCrowd"] == order.crowd
            assert got["orderDate"] == stamp(order.at)
            assert [(x["refCode"], x["quantity"], x["liveQuantity"]) for x in got["lines"]] == [
                (line.ref, line.qty, line.live) for line in order.lines
            ]

    return ReadModelMachine


def test_read_model_follows_any_sequence_of_orders_and_cancellations(
    api: Api, clock: Clock, database_url: str
) -> None:
    postgres = database_url.startswith("postgres")
    run_state_machine_as_test(
        make_machine(api, clock),
        settings=settings(
            max_examples=6 if postgres else 16,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
