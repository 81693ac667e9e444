"""The one migration runner, for both backends: numbered migrations and a version table.

``migrate`` runs in one transaction that holds the database's write lock (SQLite's
``BEGIN IMMEDIATE``, a PostgreSQL advisory lock on the schema), so servers starting together
migrate once and the others wait, then find nothing to do. DDL is transactional on both
databases: a migration that fails leaves the database at the version it had.
"""

from __future__ import annotations

from .db import Db, StoreError
from .schema import LATEST, migrations

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)
_PG_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('recotrack migrate ' || current_schema(), 0))"
)


def migrate(db: Db, target: int = LATEST) -> int:
    """Bring the database to ``target`` (the latest by default) and return its version.

    Refuses (``StoreError``) a database whose schema is newer than this code knows: an older
    release must not write to tables it does not understand. ``db`` must be in autocommit
    mode; the runner begins and ends its own transaction.
    """
    if not 0 <= target <= LATEST:
        raise ValueError(f"schema version {target} is not one this recotrack knows (0-{LATEST})")
    postgres = db.dialect.postgres
    db.execute("BEGIN" if postgres else "BEGIN IMMEDIATE")
    try:
        if postgres:
            db.execute(_PG_LOCK)
        db.execute(VERSION_TABLE)
        current = schema_version(db)
        if current > LATEST:
            raise StoreError(
                f"the database is at schema version {current}, newer than this recotrack"
                f" knows ({LATEST}): upgrade recotrack before serving from it"
            )
        for migration in migrations(db.dialect.name):
            if current < migration.version <= target:
                for statement in migration.statements:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )
                current = migration.version
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return current


def schema_version(db: Db) -> int:
    """The highest migration applied (0 for an empty database with a version table)."""
    return int(db.one("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0])
