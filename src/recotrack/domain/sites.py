"""Sites (tenants), their per-channel tokens and their run-time settings (API.md section 3)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeGuard

from .errors import ApiError

ONLINE_CHANNELS = ("web", "mobileweb")
OFFLINE_CHANNELS = ("store", "mobileapp", "tv", "callcentre")
CLIENT, SITE = "client", "site"  # clientToken (online) and siteToken (offline)
CANCEL_AUTH_MODES = ("open", "session", "token")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHANNEL = re.compile(r"[a-z0-9_-]{1,32}")


def _shown(value: object) -> str:
    """A bad value as the client sent it (JSON numbers arrive as Decimal), at most 80 chars."""
    return f"{str(value) if isinstance(value, Decimal) else repr(value):.80}"


def is_site_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` can name a site; nothing else needs looking up (the database may
    refuse such text outright: PostgreSQL takes no NUL, neither takes a lone surrogate)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_site_name(name: object) -> str:
    if not is_site_name(name):
        raise ApiError(
            "SiteNotRecognized",
            f"site name must be 1-64 of A-Z a-z 0-9 _ -; got {_shown(name)}",
            status=400,
        )
    return name


def check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
        raise ApiError(
            "MissingOrMalformedChannel",
            f"channel must be 1-32 of a-z 0-9 _ -; got {_shown(channel)}",
        )
    return channel


def token_kind(channel: str) -> str:
    """Online channels carry a clientToken, every other channel a siteToken."""
    return CLIENT if channel in ONLINE_CHANNELS else SITE


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class SiteSettings:
    """The per-site switches; the wire names are the camelCase ones in ``WIRE``."""

    cancellations: bool = False
    cancel_auth: str = "session"
    offline_orders_affect_crowd: bool = False
    session_max_age_seconds: int = 14400
    pending_cancel_days: int = 30

    def to_wire(self) -> dict[str, Any]:
        return {wire: getattr(self, attr) for wire, attr in WIRE.items()}

    def patched(self, patch: dict[str, Any]) -> SiteSettings:
        """A copy with the wire-named settings in ``patch`` applied; every value is checked."""
        if not isinstance(patch, dict) or not patch:
            raise ApiError(
                "MalformedJson", f"give an object with one or more of: {', '.join(WIRE)}"
            )
        changes: dict[str, Any] = {}
        for key, value in patch.items():
            if key not in WIRE:
                raise ApiError(
                    "MalformedJson", f"unknown setting {key!r:.80}; settings are: {', '.join(WIRE)}"
                )
            changes[WIRE[key]] = _check_setting(key, value)
        return replace(self, **changes)


WIRE = {
    "cancellations": "cancellations",
    "cancelAuth": "cancel_auth",
    "offlineOrdersAffectCrowd": "offline_orders_affect_crowd",
    "sessionMaxAgeSeconds": "session_max_age_seconds",
    "pendingCancelDays": "pending_cancel_days",
}
assert set(WIRE.values()) == {f.name for f in fields(SiteSettings)}


def _check_setting(key: str, value: Any) -> Any:
    if key in ("cancellations", "offlineOrdersAffectCrowd"):
        if not isinstance(value, bool):
            raise ApiError("MalformedJson", f"{key} must be true or false; got {_shown(value)}")
        return value
    if key == "cancelAuth":
        if value not in CANCEL_AUTH_MODES:
            raise ApiError(
                "MalformedJson",
                f"cancelAuth must be one of {', '.join(CANCEL_AUTH_MODES)}; got {_shown(value)}",
            )
        return value
    low, high = (60, 31_536_000) if key == "sessionMaxAgeSeconds" else (1, 3650)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(
            "MalformedJson",
            f"{key} must be a whole number from {low} to {high}; got {_shown(value)}",
        )
    return value


@dataclass
class Site:
    name: str
    settings: SiteSettings
    created_at: datetime
    # (kind, channel) -> sha256 hex of the token
    token_hashes: dict[tuple[str, str], str] = field(default_factory=dict)

    def token_matches(self, kind: str, channel: str, token: str) -> bool:
        """Constant-time check of ``token`` against the channel's stored hash."""
        stored = self.token_hashes.get((kind, channel))
        candidate = hash_token(token)
        if stored is None:
            hmac.compare_digest(candidate, candidate)  # same work whether or not it exists
            return False
        return hmac.compare_digest(stored, candidate)

    def any_client_token_matches(self, token: str) -> bool:
        results = [
            self.token_matches(CLIENT, channel, token)
            for kind, channel in sorted(self.token_hashes)
            if kind == CLIENT
        ]
        return any(results)

    def channels(self, kind: str) -> list[str]:
        return sorted(channel for k, channel in self.token_hashes if k == kind)
