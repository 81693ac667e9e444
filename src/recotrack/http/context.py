"""What every handler needs, wired once by ``create_app`` and found on the app's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request

from ..settings import Settings
from ..store.port import Store
from .metrics import Metrics


@dataclass
class Context:
    settings: Settings
    store: Store
    metrics: Metrics
    now: Callable[[], datetime]
    admin_token_hash: str

    @staticmethod
    def of(request: Request) -> Context:
        ctx: Context = request.app.state.ctx
        return ctx
