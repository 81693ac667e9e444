"""What the SQL code needs from a connection, whatever the driver.

SQL is written once with ``?`` placeholders; the PostgreSQL dialect rewrites them. Money goes
in as the dialect wants it (text on SQLite, Decimal on PostgreSQL) and always comes out as
``Decimal``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from ..domain.money import plain
from .schema import POSTGRES


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def cursor(self) -> Any: ...


class StoreError(Exception):
    """The database failed (not the request): the change was not made."""


@dataclass
class Dialect:
    name: str
    _cache: dict[str, str] = field(default_factory=dict)
    # Attributes, not properties or methods: read for every statement and every amount.
    postgres: bool = field(init=False)
    money: Callable[[Decimal], Any] = field(init=False)  # an amount as the driver takes it
    texts: Callable[[Any], list[str]] = field(init=False)  # what ``text_array`` gathered

    def __post_init__(self) -> None:
        self.postgres = self.name == POSTGRES
        self.money = _as_given if self.postgres else plain
        self.texts = _array if self.postgres else json.loads

    def sql(self, text: str) -> str:
        if not self.postgres:
            return text
        converted = self._cache.get(text)
        if converted is None:
            converted = self._cache[text] = text.replace("%", "%%").replace("?", "%s")
        return converted

    def money_sum(self, column: str) -> str:
        return f"SUM({column})" if self.postgres else f"dec_sum({column})"

    def text_array(self, column: str) -> str:
        """An aggregate of ``column``'s texts in one value, which ``texts`` reads back: the
        driver then fetches one row, however many the query finds. (Python's sqlite3 gives the
        GIL away for every row it fetches, and the event loop's thread waits to get it back.)"""
        return f"array_agg({column})" if self.postgres else f"json_group_array({column})"

    @property
    def for_update(self) -> str:
        return " FOR UPDATE" if self.postgres else ""


def _as_given(amount: Decimal) -> Decimal:
    return amount


def _array(texts: list[str] | None) -> list[str]:
    return texts or []  # PostgreSQL's array_agg of no rows is NULL


class Db:
    """A connection and its dialect: the one place SQL is executed.

    ``settle`` is given for a connection in pipeline mode (the PostgreSQL writers): a statement
    is then sent without waiting for its outcome, which arrives with the next read or with
    ``settle()``, which waits for the outcome of every statement sent so far.
    """

    def __init__(
        self, conn: Connection, dialect: Dialect, settle: Callable[[], None] | None = None
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self.settle = settle

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.dialect.sql(sql), params)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.cursor().executemany(self.dialect.sql(sql), rows)

    def changed(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an UPDATE or DELETE; how many rows it changed."""
        return self.changed_later(sql, params)()

    def changed_later(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], int]:
        """Run an UPDATE or DELETE; a function that tells how many rows it changed. In pipeline
        mode the count arrives with the next read, so asking after one costs no wait."""
        cursor = self.execute(sql, params)

        def count() -> int:
            if cursor.rowcount < 0 and self.settle is not None:
                self.settle()  # no read since: wait for the statement's outcome
            return max(int(cursor.rowcount), 0)

        return count

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())


_ISO: dict[datetime, str] = {}  # a request formats the same moments several times


def iso(moment: datetime) -> str:
    """UTC, fixed width, so text order is time order."""
    text = _ISO.get(moment)
    if text is None:
        if len(_ISO) >= 4096:
            _ISO.clear()
        if moment.tzinfo is UTC:  # every moment the services make: "+00:00" becomes "Z"
            text = moment.isoformat()[:-6]  # isoformat(timespec=...) takes twice as long
            text += "Z" if moment.microsecond else ".000000Z"
        else:
            text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
            text += "Z"
        _ISO[moment] = text
    return text


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)
