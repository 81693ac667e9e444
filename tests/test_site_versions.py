"""A writer reads the sites version once per transaction (``WriterRepository``), yet a change
of a site is seen by the next write, in the same batch or through another server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from recotrack.domain.errors import ApiError
from recotrack.domain.sites import SiteSettings
from recotrack.services.sites import create_site, load_site, update_site
from recotrack.store import Store
from recotrack.store.repository import Repository
from recotrack.store.sqlite import SqliteStore

from .support import AUTH, Api, order_body

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def cancellations(repo: Repository) -> bool:
    return load_site(repo, "shop").settings.cancellations


def switch_on_then_refuse(repo: Repository) -> None:
    update_site(repo, "shop", {"cancellations": True})
    assert cancellations(repo) is True
    raise ApiError("OrderConflict", "refused")


def test_in_one_batch_a_site_change_is_seen_by_the_writes_after_it_unless_rolled_back(
    store: Store,
) -> None:
    store.write_sync(lambda repo: create_site(repo, "shop", NOW, SiteSettings(cancellations=True)))
    works: list[Any] = [
        cancellations,
        lambda repo: update_site(repo, "shop", {"cancellations": False}),
        cancellations,
        switch_on_then_refuse,
        cancellations,
    ]

    async def together() -> list[Any]:  # queued in one turn of the loop: one batch
        return await asyncio.gather(*(store.write(w) for w in works), return_exceptions=True)

    outcomes = asyncio.run(together())
    assert [outcomes[n] for n in (0, 2, 4)] == [True, False, False]
    assert isinstance(outcomes[3], ApiError) and outcomes[3].message == "refused"
    if isinstance(store, SqliteStore):  # PostgreSQL's writer threads may split the five
        assert store.stats["last_batch"] == len(works)


def test_a_site_change_through_one_server_is_seen_by_the_next_cancel_through_another(
    api: Api, other: Api
) -> None:
    site = other.create_site("shop", cancellations=True, cancelAuth="open")
    for order_no in ("O1", "O2"):
        assert api.place(site, order_body(order_no, ("P1", 1, "2.00"))).status_code == 200
    cancel = {"session": "s", "cuid": "c"}
    assert api.cancel("shop", orderNo="O1", **cancel).status_code == 200  # site cached now

    response = other.client.patch(  # this server's writer has never changed a site
        "/api/v1/sites/shop", json={"cancellations": False}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    refused = api.cancel("shop", orderNo="O2", **cancel)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "CancellationsNotEnabled"
    assert api.order("shop", "O2")["state"] == "placed"
