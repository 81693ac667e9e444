"""Every setting, declared once: name, type, default and help; read once, failing fast.

Each is read from the environment as ``RECOTRACK_<NAME>``; the CLI's options override them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

MIN_HEADER_BYTES = 8192


class SettingsError(ValueError):
    """A setting has a value its type does not accept; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/recotrack.db"
    admin_token: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    sqlite_synchronous: str = "FULL"
    max_body_bytes: int = 256 * 1024
    write_batch_max: int = 512
    write_queue_max: int = 10_000
    max_held_per_site: int = 100_000
    max_header_bytes: int = 64 * 1024
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f"RECOTRACK_{f.name.upper()}"
            if key in env:
                values[f.name] = _convert(key, env[key], type(getattr(cls(), f.name)))
        settings = cls(**values)
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.check()
        return settings

    def check(self) -> None:
        if self.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise SettingsError(
                "RECOTRACK_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA;"
                f" got {self.sqlite_synchronous!r}"
            )
        if not self.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(
                "RECOTRACK_DATABASE_URL must be sqlite:///PATH or postgresql://...;"
                f" got {self.database_url!r}"
            )
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise SettingsError(
                f"RECOTRACK_LOG_LEVEL must be debug, info, warning or error; got {self.log_level!r}"
            )
        for name in (
            "port",
            "workers",
            "max_body_bytes",
            "write_batch_max",
            "write_queue_max",
            "max_held_per_site",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"RECOTRACK_{name.upper()} must be at least 1")
        if self.max_header_bytes < MIN_HEADER_BYTES:  # the HTTP server refuses to start below
            raise SettingsError(f"RECOTRACK_MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES}")


HELP = {
    "database_url": "sqlite:///PATH (default, a file under ./var/) or postgresql://...",
    "admin_token": "bearer token of the management API; without it the first serve makes one",
    "host": "address serve listens on",
    "port": "port serve listens on",
    "workers": "server processes serve runs on the port",
    "sqlite_synchronous": "SQLite synchronous pragma: FULL (default, durable), EXTRA, NORMAL, OFF",
    "max_body_bytes": "largest request body accepted (413 above)",
    "write_batch_max": "most writes committed in one transaction (group commit)",
    "write_queue_max": "most writes waiting for the writer before 503 Overloaded",
    "max_held_per_site": "most cancellations a site may hold for unseen orders (503 above)",
    "max_header_bytes": "largest request line and headers the server reads (431 above)",
    "log_level": "debug, info, warning or error",
}
assert set(HELP) == {f.name for f in fields(Settings)}


def _convert(key: str, raw: str, kind: type) -> Any:
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{key} must be a whole number; got {raw!r}") from None
    return raw
