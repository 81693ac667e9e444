"""The command line: one click group, thin commands over the same services as HTTP."""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from .domain.errors import ApiError
from .domain.sites import hash_token
from .settings import Settings, SettingsError
from .store import Store, open_store
from .store.db import StoreError

database_option = click.option(
    "--database",
    envvar="RECOTRACK_DATABASE_URL",
    default=None,
    help="sqlite:///PATH (default sqlite:///var/recotrack.db) or postgresql://...",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _open(settings: Settings) -> Store:
    """The store, or a clean exit naming why the database cannot be used."""
    try:
        return open_store(settings)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _shown(url: str) -> str:
    """The database URL without its password (after the user name, or ``password=`` in the
    query, which libpq takes too), for logs."""
    parts = urlsplit(url)
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    if parts.password is None and query == parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


@contextmanager
def _store(database: str | None) -> Iterator[Store]:
    store = _open(_settings(database_url=database))
    try:
        yield store
    finally:
        store.close()


def _fail(error: ApiError) -> None:
    click.echo(f"error: {error.code}: {error.message}", err=True)
    sys.exit(1)


@click.group()
@click.version_option(package_name="recotrack")
def main() -> None:
    """recotrack: self-hosted order tracking and cancellation for personalisation."""


@main.command()
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port to listen on (default 8080)")
@click.option("--workers", type=int, default=None, help="server processes on the port")
@database_option
def serve(host: str | None, port: int | None, workers: int | None, database: str | None) -> None:
    """Run the server (migrating the database first)."""
    settings = _settings(host=host, port=port, workers=workers, database_url=database)
    store = _open(settings)  # creates and migrates the database
    try:
        if not settings.admin_token:
            token = store.write_sync(_ensure_admin_token)
            if token:
                click.echo(f"admin token (shown once, keep it): {token}")
    finally:
        store.close()
    os.environ["RECOTRACK_DATABASE_URL"] = settings.database_url
    from granian.constants import Interfaces, RuntimeModes
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels
    from granian.server import Server

    shown = _shown(settings.database_url)
    click.echo(f"recotrack listening on http://{settings.host}:{settings.port} ({shown})")
    Server(
        "recotrack.http.app:app_from_env",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        factory=True,
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,
        # granian's single-threaded runtime per worker (its default for ASGI is the multi-
        # threaded one): rest.pagex at half load, p99 7.95 -> 5.0 ms on 10,000 orders and
        # 10.9 -> 8.0 ms on 1,000,000, for about 3 % less at full speed (bench/profiling.md).
        runtime_mode=RuntimeModes.st,
        # The request line and headers must fit in this (HTTP/1: 431, or 414 for a request
        # line over 64 KiB; HTTP/2 answers 431): granian's own defaults are 408 KiB and 16 MiB.
        http1_settings=HTTP1Settings(max_buffer_size=settings.max_header_bytes),
        http2_settings=HTTP2Settings(max_headers_size=settings.max_header_bytes),
    ).serve()


def _ensure_admin_token(repo: Any) -> str | None:
    from .http.app import ADMIN_TOKEN_KEY

    if repo.get_meta(ADMIN_TOKEN_KEY):
        return None
    token = secrets.token_urlsafe(32)
    repo.set_meta(ADMIN_TOKEN_KEY, hash_token(token))
    return token


@main.command()
@database_option
def migrate(database: str | None) -> None:
    """Create or upgrade the database schema."""
    with _store(database) as store:
        click.echo(f"schema is up to date (version {store.schema_version})")


@main.group()
def site() -> None:
    """Create, change and inspect sites."""


@site.command("create")
@click.argument("name")
@click.option("--enable-cancellations", is_flag=True, help="switch cancellations on")
@click.option("--json", "as_json", is_flag=True, help="print the tokens as JSON")
@database_option
def site_create(name: str, enable_cancellations: bool, as_json: bool, database: str | None) -> None:
    """Create a site and print its tokens (shown only this once)."""
    from .domain.sites import SiteSettings
    from .services.sites import create_site

    settings = SiteSettings(cancellations=enable_cancellations)
    with _store(database) as store:
        try:
            made = store.write_sync(lambda repo: create_site(repo, name, _now(), settings))
        except ApiError as error:
            _fail(error)
    shape = {"name": name, "clientTokens": made.client_tokens, "siteTokens": made.site_tokens}
    if as_json:
        click.echo(json.dumps(shape))
        return
    click.echo(f"site {name} created (cancellations {'on' if enable_cancellations else 'off'})")
    click.echo("tokens (shown once, keep them):")
    for kind, tokens in (("clientToken", made.client_tokens), ("siteToken", made.site_tokens)):
        for channel, token in tokens.items():
            click.echo(f"  {kind} {channel:<11} {token}")


ON_OFF = click.Choice(["on", "off"])


@site.command("update")
@click.argument("name")
@click.option("--cancellations", type=ON_OFF, help="order updates and cancellations")
@click.option("--cancel-auth", type=click.Choice(["open", "session", "token"]))
@click.option("--offline-orders-affect-crowd", type=ON_OFF)
@click.option("--session-max-age", type=int, help="seconds of inactivity that end a session")
@click.option(
    "--pending-cancel-days", type=int, help="days a cancellation for an unseen order is held"
)
@database_option
def site_update(
    name: str,
    cancellations: str | None,
    cancel_auth: str | None,
    offline_orders_affect_crowd: str | None,
    session_max_age: int | None,
    pending_cancel_days: int | None,
    database: str | None,
) -> None:
    """Change a site's settings at run time."""
    from .services.sites import update_site

    patch: dict[str, Any] = {
        "cancellations": None if cancellations is None else cancellations == "on",
        "cancelAuth": cancel_auth,
        "offlineOrdersAffectCrowd": (
            None if offline_orders_affect_crowd is None else offline_orders_affect_crowd == "on"
        ),
        "sessionMaxAgeSeconds": session_max_age,
        "pendingCancelDays": pending_cancel_days,
    }
    patch = {key: value for key, value in patch.items() if value is not None}
    if not patch:
        raise click.UsageError(
            "give one or more settings to change: --cancellations, --cancel-auth,"
            " --offline-orders-affect-crowd, --session-max-age, --pending-cancel-days"
        )
    with _store(database) as store:
        try:
            updated = store.write_sync(lambda repo: update_site(repo, name, patch))
        except ApiError as error:
            _fail(error)
    click.echo(json.dumps({"name": name, **updated.settings.to_wire()}))


@site.command("show")
@click.argument("name")
@database_option
def site_show(name: str, database: str | None) -> None:
    """Print a site's settings and channels."""
    from .services.reads import load_site, site_view

    with _store(database) as store:
        try:
            found = store.read_sync(lambda repo: load_site(repo, name))
        except ApiError as error:
            _fail(error)
    click.echo(json.dumps(site_view(found), indent=2))


@site.command("rotate-token")
@click.argument("name")
@click.argument("channel")
@database_option
def site_rotate_token(name: str, channel: str, database: str | None) -> None:
    """Issue a new token for CHANNEL (adding the channel if new); the old one stops working."""
    from .services.sites import rotate_token

    with _store(database) as store:
        try:
            kind, token = store.write_sync(lambda repo: rotate_token(repo, name, channel, _now()))
        except ApiError as error:
            _fail(error)
    click.echo(f"{'clientToken' if kind == 'client' else 'siteToken'} {channel} {token}")


def check_site_of(name: str, repo: Any) -> list[str]:
    from .services.check import check_site

    return check_site(repo, name)


@main.command()
@click.option("--site", "only", default=None, help="check one site (default: all)")
@database_option
def check(only: str | None, database: str | None) -> None:
    """Recompute every statistic from the stored orders; exit 1 on any difference."""
    with _store(database) as store:
        known = store.read_sync(lambda repo: repo.site_names())
        if only is not None and only not in known:
            _fail(ApiError("SiteNotRecognized", f"site {only!r:.80} is not known to this server"))
        names = [only] if only else known
        differences = 0
        for name in names:
            found = store.read_sync(partial(check_site_of, name), snapshot=True)
            differences += len(found)
            for line in found[:50]:
                click.echo(f"{name}: {line}")
            click.echo(f"site {name}: {'consistent' if not found else f'{len(found)} differences'}")
    if differences:
        sys.exit(1)


@main.command()
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="baskets as transaction_number,date,items (default: the shipped groceries)",
)
@click.option("--site", "site_name", default="demo", show_default=True)
@click.option("--cancel-percent", type=click.FloatRange(0, 100), default=2.0, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@database_option
def demo(
    csv_path: Path | None, site_name: str, cancel_percent: float, seed: int, database: str | None
) -> None:
    """Load real baskets as online orders, cancel a few, show what changes."""
    from .demo import read_baskets, run_demo

    baskets = read_baskets(csv_path)
    click.echo(f"placing {len(baskets)} orders in site {site_name!r} ...")
    with _store(database) as store:
        try:
            run_demo(store, site_name, baskets, cancel_percent / 100, seed, _now, click.echo)
        except ApiError as error:
            _fail(error)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=None,
    help="lines per transaction (default 20000 on SQLite, 500 on PostgreSQL)",
)
@click.option("--quiet", is_flag=True, help="no progress bar")
@database_option
def import_(file: Path, batch: int | None, quiet: bool, database: str | None) -> None:
    """Load orders, offline orders and cancellations from a JSON Lines FILE.

    Each line is one record with a "type": order (rest.pagex's order), offline (the smart
    API's body), cancel or offline-cancel. Records go through the same rules as HTTP; a line
    that fails is reported with its number and the rest are still loaded (exit 1 if any
    failed). A re-run of the same file changes nothing.
    """
    from .importer import parsing_process, run_import

    max_held = _settings(database_url=database).max_held_per_site
    with parsing_process() as parser, _store(database) as store, file.open("rb") as source:
        bar = click.progressbar(
            length=file.stat().st_size, label="importing", file=sys.stderr, hidden=quiet
        )
        with bar:
            summary = run_import(store, parser, source, _now, batch, bar.update, max_held)
    for line, code, message in summary.errors[:100]:
        click.echo(f"line {line}: {code}: {message}", err=True)
    if len(summary.errors) > 100:
        click.echo(f"... and {len(summary.errors) - 100} more errors", err=True)
    rate = summary.order_lines / summary.seconds if summary.seconds else 0.0
    counts = ", ".join(f"{name} {n}" for name, n in sorted(summary.outcomes.items()))
    click.echo(
        f"{summary.lines} records in {summary.seconds:.1f} s ({counts});"
        f" {summary.order_lines} order lines stored, {rate:,.0f} order lines/s"
    )
    if summary.errors:
        sys.exit(1)
