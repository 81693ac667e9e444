"""The schema of both backends, from one place, with numbered migrations.

``recotrack.store.migrate`` applies them, the same way on both, and records each version in
``schema_version``. Every table of a site's data is keyed by site first, so a distributed
PostgreSQL (Citus) can shard by site; only ``meta`` and ``schema_version`` are not per site.
Money columns are exact: ``NUMERIC`` on PostgreSQL, decimal text on SQLite (summed with the
``dec_add`` / ``dec_sum`` functions the SQLite adapter registers).
"""

from __future__ import annotations

from dataclasses import dataclass

SQLITE, POSTGRES = "sqlite", "postgres"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _ddl(dialect: str) -> tuple[str, ...]:
    money = "TEXT" if dialect == SQLITE else "NUMERIC"
    order_id = "INTEGER PRIMARY KEY" if dialect == SQLITE else "BIGSERIAL"
    order_key = "" if dialect == SQLITE else ", PRIMARY KEY (site, id)"
    held_id = "INTEGER PRIMARY KEY" if dialect == SQLITE else "BIGSERIAL"
    held_key = "" if dialect == SQLITE else ", PRIMARY KEY (site, id)"
    big = "INTEGER" if dialect == SQLITE else "BIGINT"
    return (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE sites (
            site TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            created_at TEXT NOT NULL)""",
        """CREATE TABLE tokens (
            site TEXT NOT NULL, kind TEXT NOT NULL, channel TEXT NOT NULL,
            token_hash TEXT NOT NULL, created_at TEXT NOT NULL,
            PRIMARY KEY (site, kind, channel))""",
        """CREATE TABLE sessions (
            site TEXT NOT NULL, id TEXT NOT NULL, cuid TEXT NOT NULL,
            user_id TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL, last_seen TEXT NOT NULL,
            basket TEXT NOT NULL DEFAULT '', checkout TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (site, id))""",
        f"""CREATE TABLE orders (
            id {order_id},
            site TEXT NOT NULL, source TEXT NOT NULL, channel_key TEXT NOT NULL,
            order_no TEXT NOT NULL, channel TEXT NOT NULL, state TEXT NOT NULL,
            currency TEXT NOT NULL, subtotal {money} NOT NULL, shipping {money} NOT NULL,
            total {money} NOT NULL, ordered_at TEXT NOT NULL, day TEXT NOT NULL,
            session TEXT NOT NULL, cuid TEXT NOT NULL, user_id TEXT NOT NULL,
            customer_id TEXT NOT NULL, crowd {big} NOT NULL, cancelled_whole {big} NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            UNIQUE (site, source, channel_key, order_no){order_key})""",
        "CREATE INDEX orders_by_cuid ON orders (site, cuid)",
        "CREATE INDEX orders_by_user ON orders (site, user_id)",
        "CREATE INDEX orders_by_session ON orders (site, session)",
        "CREATE INDEX orders_by_day ON orders (site, day, id)",
        f"""CREATE TABLE order_lines (
            site TEXT NOT NULL, order_id {big} NOT NULL, line_no {big} NOT NULL,
            ref_code TEXT NOT NULL, qty {big} NOT NULL, cancelled {big} NOT NULL,
            price {money} NOT NULL, variant TEXT NOT NULL, attributes TEXT NOT NULL,
            PRIMARY KEY (site, order_id, line_no))""",
        f"""CREATE TABLE order_events (
            site TEXT NOT NULL, order_id {big} NOT NULL, seq {big} NOT NULL,
            kind TEXT NOT NULL, at TEXT NOT NULL, channel TEXT NOT NULL,
            session TEXT NOT NULL, cuid TEXT NOT NULL, reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            PRIMARY KEY (site, order_id, seq))""",
        f"""CREATE TABLE held_cancels (
            id {held_id},
            site TEXT NOT NULL, source TEXT NOT NULL, channel_key TEXT NOT NULL,
            order_no TEXT NOT NULL, items TEXT, at TEXT NOT NULL, expires_at TEXT NOT NULL,
            session TEXT NOT NULL, cuid TEXT NOT NULL, reason TEXT NOT NULL{held_key})""",
        "CREATE INDEX held_by_order ON held_cancels (site, source, channel_key, order_no)",
        f"""CREATE TABLE stat_products (
            site TEXT NOT NULL, day TEXT NOT NULL, ref_code TEXT NOT NULL,
            units {big} NOT NULL, revenue {money} NOT NULL,
            PRIMARY KEY (site, day, ref_code))""",
        f"""CREATE TABLE stat_pairs (
            site TEXT NOT NULL, ref_code TEXT NOT NULL, other TEXT NOT NULL,
            orders {big} NOT NULL,
            PRIMARY KEY (site, ref_code, other))""",
        f"""CREATE TABLE stat_days (
            site TEXT NOT NULL, day TEXT NOT NULL,
            orders {big} NOT NULL, units {big} NOT NULL, revenue {money} NOT NULL,
            cancelled_orders {big} NOT NULL, cancelled_revenue {money} NOT NULL,
            PRIMARY KEY (site, day))""",
    )


# Version 2: listing a site's orders by state (``GET .../orders?state=``) and finding its held
# cancellations by expiry (the management listing, purging) no longer scan every row of the site.
_INDEXES_2 = (
    "CREATE INDEX orders_by_state ON orders (site, state, id)",
    "CREATE INDEX held_by_expiry ON held_cancels (site, expires_at)",
)


# Version 3: a smart API DELETE of an offline order not found under its channel asks which
# channels hold that order number (``ChannelMismatch``); the unique key puts the channel
# before the number, so the question scanned every offline order of the site.
_INDEXES_3 = ("CREATE INDEX orders_by_number ON orders (site, order_no)",)


# Version 4, SQLite only: order lines and events stored in their primary key's order (``WITHOUT
# ROWID``). A rowid table keeps its key in a second B-tree, so every line written was two
# inserts, and every line read (a cancellation, a buyer's history on each page) a key lookup
# then a row lookup. PostgreSQL's tables are heaps beside their key index either way: its
# version 4 changes nothing. The tables are copied whole, columns in the same order.
def _clustered_4(dialect: str) -> tuple[str, ...]:
    if dialect != SQLITE:
        return ()
    statements: list[str] = []
    for table, key in (("order_lines", "line_no"), ("order_events", "seq")):
        made = next(ddl for ddl in _ddl(SQLITE) if ddl.startswith(f"CREATE TABLE {table} "))
        statements += [
            made.replace(f"CREATE TABLE {table} ", f"CREATE TABLE {table}_4 ") + " WITHOUT ROWID",
            f"INSERT INTO {table}_4 SELECT * FROM {table} ORDER BY site, order_id, {key}",
            f"DROP TABLE {table}",
            f"ALTER TABLE {table}_4 RENAME TO {table}",
        ]
    return tuple(statements)


def migrations(dialect: str) -> list[Migration]:
    """Every migration in order; version N brings a database from N-1 to N.

    Released migrations never change: a database made by an earlier release is brought
    forward by the ones after its version, and keeps its data.
    """
    return [
        Migration(1, "orders, cancellations and the read model", _ddl(dialect)),
        Migration(2, "indexes for orders by state and held cancellations by expiry", _INDEXES_2),
        Migration(3, "index for orders by number, whatever their channel", _INDEXES_3),
        Migration(4, "order lines and events kept in key order (SQLite)", _clustered_4(dialect)),
    ]


LATEST = 4
