"""Creating sites, changing their settings, issuing and rotating their tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.errors import ApiError
from ..domain.sites import (
    CLIENT,
    OFFLINE_CHANNELS,
    ONLINE_CHANNELS,
    SITE,
    Site,
    SiteSettings,
    check_channel,
    check_site_name,
    hash_token,
    is_site_name,
    new_token,
    token_kind,
)
from ..store.repository import Repository


@dataclass(frozen=True)
class NewSite:
    site: Site
    client_tokens: dict[str, str]  # shown once
    site_tokens: dict[str, str]  # shown once


def load_site(repo: Repository, name: str) -> Site:
    """The site, or 404 ``SiteNotRecognized``."""
    site = repo.get_site(name) if is_site_name(name) else None
    if site is None:
        raise ApiError("SiteNotRecognized", f"site {name!r:.80} is not known to this server")
    return site


def create_site(
    repo: Repository, name: object, now: datetime, settings: SiteSettings | None = None
) -> NewSite:
    """A new site with a token for every default channel; the tokens are only returned here."""
    name = check_site_name(name)
    if repo.get_site(name) is not None:
        raise ApiError("OrderConflict", f"site {name!r} already exists", status=409)
    site = Site(name, settings or SiteSettings(), now)
    repo.insert_site(site)
    tokens: dict[str, dict[str, str]] = {CLIENT: {}, SITE: {}}
    for channel in (*ONLINE_CHANNELS, *OFFLINE_CHANNELS):
        kind = token_kind(channel)
        token = new_token()
        repo.set_token(name, kind, channel, hash_token(token), now)
        site.token_hashes[(kind, channel)] = hash_token(token)
        tokens[kind][channel] = token
    return NewSite(site, tokens[CLIENT], tokens[SITE])


def update_site(repo: Repository, name: str, patch: dict[str, Any]) -> Site:
    site = load_site(repo, name)
    site.settings = site.settings.patched(patch)
    repo.save_settings(name, site.settings)
    return site


def rotate_token(repo: Repository, name: str, channel: object, now: datetime) -> tuple[str, str]:
    """A new token for ``channel`` (added if new); the old one stops working. (kind, token)"""
    load_site(repo, name)
    channel = check_channel(channel)
    kind = token_kind(channel)
    token = new_token()
    repo.set_token(name, kind, channel, hash_token(token), now)
    return kind, token
