"""Storage: one port (``Store``), an adapter per database, chosen by URL."""

from __future__ import annotations

from ..settings import Settings
from .port import Store


def open_store(settings: Settings) -> Store:
    """The store for ``settings.database_url``: ``sqlite:///PATH`` or ``postgresql://...``."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        return SqliteStore(
            url.removeprefix("sqlite:///"),
            synchronous=settings.sqlite_synchronous.upper(),
            max_batch=settings.write_batch_max,
            max_queue=settings.write_queue_max,
        )
    from .postgres import PostgresStore

    return PostgresStore(
        url, max_batch=settings.write_batch_max, max_queue=settings.write_queue_max
    )
