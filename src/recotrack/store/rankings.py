"""Top sellers, bought-together counts and what each buyer has live-bought, kept in memory
and moved by every commit.

Without them a reader would sum the ranking tables again after every commit, and under a
steady stream of orders every commit changes them. Instead the SQLite store keeps what its
readers loaded, and its writer adds each committed batch's summed statistics (the same
``Delta`` it writes to the tables), so the figures stay those of the tables.

What a buyer (a cuid, user id or session) has live-bought is read for every page and
recommendation; from the tables it costs a read of each of the buyer's order lines, more with
every order. The readers keep it per buyer, as the number of live lines of each refCode, and
the writer moves it by the orders each commit changed (``Change``: before and after).

Exactness rests on one stamp. Every transaction that changes statistics, or what a buyer has
live-bought, writes a new unique value to ``meta.stats_stamp`` (``STAMP_KEY``), whichever
process or store commits it (an import's too: its sums name no buyer, so the writer then
drops every buyer held). The
rankings hold the stamp of the database state they reflect; a read first reads the stamp in
the database, and uses the rankings only when the two are equal. An entry is loaded in a read
transaction together with the stamp it was read under, and kept only under that stamp. The
writer moves the rankings to its new stamp only if they were at the stamp its transaction
replaced; otherwise (another process committed in between) it drops them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from decimal import Decimal
from typing import Any, NamedTuple

from ..domain.stats import Change, Delta

STAMP_KEY = "stats_stamp"
MAX_ENTRIES = 4096  # loaded pair lists and seller windows; all are dropped beyond it
MAX_BOUGHT = 262_144  # buyers and refCodes held for them (about 20 MB); all dropped beyond it

Scores = dict[str, list[int | Decimal]]  # refCode -> [units, revenue] (revenue if ranked by it)
Buyer = tuple[str, str]  # a field of an order and its value: ("cuid", ...), ("user_id", ...), ...
Bought = dict[str, int]  # refCode -> the buyer's order lines with a live unit of it


class Ranked(NamedTuple):
    """A ranking: keys best first (ties by key) and each one's score. A tuple of strings and a
    dict of strings to numbers, which the cyclic collector stops tracking: thousands of kept
    lists of pairs were walked by every full collection instead (20-30 ms with the event loop
    stopped, measured at 1,000,000 orders)."""

    order: tuple[str, ...]
    scores: dict[str, Any]

    def best(self, limit: int, skip: Collection[str]) -> list[tuple[str, Any]]:
        """The first ``limit`` (key, score) not in ``skip``: the ranking is not copied."""
        scores = self.scores
        found: list[tuple[str, Any]] = []
        for key in self.order:
            if len(found) >= limit:
                break
            if key not in skip:
                found.append((key, scores[key]))
        return found


class Rankings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: str | None = None
        self._committing = False  # this store's writer is committing a new stamp
        self._pairs: dict[tuple[str, str], dict[str, int]] = {}  # (site, ref) -> other -> n
        self._sellers: dict[tuple[str, str, str, str], Scores] = {}  # (site, by, first, last)
        self._ranked: dict[tuple[str, str, str, str], Ranked] = {}
        self._together: dict[tuple[str, tuple[str, ...]], Ranked] = {}
        self._bought: dict[tuple[str, str, str], Bought] = {}  # (site, *buyer)
        self._bought_held = 0  # buyers and refCodes in ``_bought``, about

    # -- readers -------------------------------------------------------------------------

    def sellers(self, stamp: str, key: tuple[str, str, str, str]) -> Ranked | None:
        """The ranking of ``key`` as of ``stamp``, or None if not held for that state."""
        with self._lock:
            if stamp != self._stamp:
                return None
            ranked = self._ranked.get(key)
            if ranked is None:
                scores = self._sellers.get(key)
                if scores is None:
                    return None
                ranked = self._ranked[key] = rank_sellers(scores, key[1])
            return ranked

    def keep_sellers(self, stamp: str, key: tuple[str, str, str, str], scores: Scores) -> None:
        with self._lock:
            if self._may_keep(stamp):
                self._sellers[key] = scores

    def together(self, stamp: str, site: str, refs: list[str]) -> Ranked | None:
        """The products bought in live orders with any of ``refs`` (distinct), most often
        first, as of ``stamp``; None if any of them is not held for that state."""
        with self._lock:
            if stamp != self._stamp:
                return None
            key = (site, tuple(refs))
            ranked = self._together.get(key)
            if ranked is not None:
                return ranked
            counts: list[dict[str, int]] = []
            for ref in refs:
                found = self._pairs.get((site, ref))
                if found is None:
                    return None
                counts.append(found)
            if len(self._together) >= MAX_ENTRIES:
                self._together.clear()
            ranked = self._together[key] = rank_together(counts)
            return ranked

    def keep_pairs(self, stamp: str, site: str, loaded: dict[str, dict[str, int]]) -> None:
        with self._lock:
            if self._may_keep(stamp):
                for ref, counts in loaded.items():
                    self._pairs[(site, ref)] = counts

    def bought(self, stamp: str, site: str, buyers: list[Buyer]) -> set[str] | None:
        """The refCodes any of ``buyers`` has live-bought as of ``stamp``; None if any of
        them is not held for that state."""
        with self._lock:
            if stamp != self._stamp:
                return None
            found: set[str] = set()
            for buyer in buyers:
                counts = self._bought.get((site, *buyer))
                if counts is None:
                    return None
                found.update(counts)
            return found

    def keep_bought(self, stamp: str, site: str, loaded: dict[Buyer, Bought]) -> None:
        with self._lock:
            if not self._may_keep(stamp):
                return
            if self._bought_held >= MAX_BOUGHT:
                self._bought.clear()
                self._bought_held = 0
            for buyer, counts in loaded.items():
                self._bought[(site, *buyer)] = counts
                self._bought_held += 1 + len(counts)

    def _may_keep(self, stamp: str) -> bool:
        """Whether entries read under ``stamp`` may be kept (the lock is held). A reader that
        saw a state these rankings do not hold starts them afresh at it, unless this store's
        writer is committing (it is about to move them to its own state)."""
        if stamp != self._stamp:
            if self._committing:
                return False
            self._clear(stamp)
        elif len(self._pairs) + len(self._sellers) >= MAX_ENTRIES:
            self._clear(stamp)
        return True

    # -- the writer ----------------------------------------------------------------------

    def committing(self) -> None:
        """The writer is about to commit a transaction that changes statistics."""
        with self._lock:
            self._committing = True

    def failed(self) -> None:
        """That commit failed: the database keeps the stamp it had."""
        with self._lock:
            self._committing = False

    def committed(
        self, replaced: str | None, stamp: str, totals: dict[str, Delta], changes: list[Change]
    ) -> None:
        """A transaction replaced stamp ``replaced`` by ``stamp``, adding ``totals`` per site
        and making ``changes`` to orders."""
        with self._lock:
            self._committing = False
            if self._stamp != replaced or self._stamp is None:
                self._clear(stamp)
                return
            self._stamp = stamp
            for site, change in totals.items():
                for (ref, other), n in change.pairs.items():
                    counts = self._pairs.get((site, ref))
                    if counts is not None:
                        counts[other] = counts.get(other, 0) + n
                if change.pairs:
                    for key in [key for key in self._together if key[0] == site]:
                        del self._together[key]
                if change.products:
                    self._move_sellers(site, change)
            if self._bought:
                self._move_bought(changes)

    def _move_sellers(self, site: str, change: Delta) -> None:
        for key, scores in self._sellers.items():
            if key[0] != site:
                continue
            _, by, first, last = key
            moved = False
            for (day, ref), (units, revenue) in change.products.items():
                if first <= day <= last:
                    score = scores.setdefault(ref, [0, Decimal(0)])
                    score[0] += units
                    if by == "revenue":
                        score[1] += revenue
                    moved = True
            if moved:
                self._ranked.pop(key, None)

    def _move_bought(self, changes: list[Change]) -> None:
        """Each held buyer of a changed order loses the order's live lines as they were and
        gains them as they are."""
        bought = self._bought
        for site, before, after in changes:
            if isinstance(after, Delta):  # orders counted elsewhere: their buyers are unknown
                bought.clear()
                self._bought_held = 0
                return
            for order, sign in ((before, -1), (after, 1)):
                if order is None:
                    continue
                refs = None
                for name, value in order.buyers():
                    counts = bought.get((site, name, value))
                    if counts is None:
                        continue
                    if refs is None:
                        refs = order.live_refs()
                    for ref in refs:
                        n = counts.get(ref, 0) + sign
                        if n == 0:
                            del counts[ref]
                            continue
                        if n == 1 and sign == 1:
                            self._bought_held += 1  # a refCode new to this buyer
                        counts[ref] = n

    def _clear(self, stamp: str | None) -> None:
        self._stamp = stamp
        self._pairs.clear()
        self._sellers.clear()
        self._ranked.clear()
        self._together.clear()
        self._bought.clear()
        self._bought_held = 0


def rank_sellers(scores: Scores, by: str) -> Ranked:
    """Products with live units, best first, ties by refCode."""
    index = 1 if by == "revenue" else 0
    return _ranked({ref: score[index] for ref, score in scores.items() if score[0] > 0})


def rank_together(counts: list[dict[str, int]]) -> Ranked:
    """Summed counts of other products, those still bought together, most first."""
    merged = dict(counts[0]) if counts else {}
    for others in counts[1:]:
        get = merged.get
        for other, n in others.items():
            merged[other] = get(other, 0) + n
    return _ranked({other: n for other, n in merged.items() if n > 0})


def _ranked(scores: dict[str, Any]) -> Ranked:
    """Highest score first, ties by key: sorted by key, then (stably) by score, both in C
    (a key function in Python per item cost three times as much)."""
    order = sorted(scores)
    order.sort(key=scores.__getitem__, reverse=True)
    return Ranked(tuple(order), scores)
