"""Session and cuid identifiers (API.md section 4) and the session's own state."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

VERSIONS = ("v1_2", "v1_3", "v1_4")
NEW = "new"

_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes map to characters through translate(): byte b below 248 (4 x 62) becomes
# _BASE62[b % 62], below 250 (25 x 10) a digit; the rest are dropped, so every character is
# equally likely.
_TO_BASE62 = bytes(_BASE62[b % 62] for b in range(248)) + bytes(8)
_NOT_BASE62 = bytes(range(248, 256))
_TO_DIGIT = bytes(_BASE62[b % 10] for b in range(250)) + bytes(6)
_NOT_DIGIT = bytes(range(250, 256))
_ISSUED = re.compile(r"(\d{1,20})[|/]([0-9A-Za-z]{16,64})")


def _random_chars(count: int, table: bytes, dropped: bytes) -> str:
    out = b""
    while len(out) < count:
        out += secrets.token_bytes(count + 16).translate(table, dropped)
    return out[:count].decode("ascii")


def _random_id(digits: int, chars: int, separator: str) -> str:
    number = _random_chars(digits, _TO_DIGIT, _NOT_DIGIT)
    return f"{number}{separator}{_random_chars(chars, _TO_BASE62, _NOT_BASE62)}"


def separator(version: str) -> str:
    return "|" if version == "v1_4" else "/"


def issue_session() -> str:
    """A new session id in canonical form: 12 digits, ``|``, 43 base62 characters."""
    return _random_id(12, 43, "|")


def issue_cuid(version: str) -> str:
    """A new cuid: 11 digits, the version's separator, 43 base62 characters."""
    return _random_id(11, 43, separator(version))


def page_tracking_id() -> str:
    return _random_id(9, 22, "/")


def recommendation_id() -> int:
    """A positive 63-bit id, as the vendor's 64-bit recommendation ids."""
    return secrets.randbits(62) + 1


def recommendation_ids(count: int) -> list[int]:
    """``count`` ids as ``recommendation_id`` gives, from one draw of the system's randomness."""
    raw = secrets.token_bytes(8 * count)
    mask = (1 << 62) - 1
    return [(int.from_bytes(raw[n : n + 8], "big") & mask) + 1 for n in range(0, 8 * count, 8)]


def canonical_session(value: str) -> str:
    """Sessions are stored with ``|``; a v1_2/v1_3 client sends the same id with ``/``."""
    match = _ISSUED.fullmatch(value)
    return f"{match[1]}|{match[2]}" if match else value


def render_session(value: str, version: str) -> str:
    match = _ISSUED.fullmatch(value)
    return f"{match[1]}{separator(version)}{match[2]}" if match else value


def well_formed(value: str) -> bool:
    """1-128 printable characters: what a session or cuid from a client may be."""
    return 0 < len(value) <= 128 and value.isprintable()


@dataclass
class Session:
    site: str
    id: str  # canonical
    cuid: str
    created_at: datetime
    last_seen: datetime
    user_id: str = ""
    basket: str = ""  # the last basket page's contents, as JSON text
    checkout: str = ""  # the last checkout page's contents, as JSON text
    dirty: set[str] = field(default_factory=set)

    def expired(self, now: datetime, max_age_seconds: int) -> bool:
        return now - self.last_seen > timedelta(seconds=max_age_seconds)
