"""The tracker: page views with sessions and orders (rest.pagex), online cancels (cancel.pagex),
and the recommendations a page gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..domain.errors import ApiError, Warning_
from ..domain.orders import ONLINE
from ..domain.sessions import (
    NEW,
    Session,
    canonical_session,
    issue_cuid,
    issue_session,
)
from ..domain.sites import CLIENT, Site
from ..store.readmodel import ReadModel
from ..store.repository import Repository
from .commands import OnlineCancel, PageView
from .orders import (
    MAX_HELD_PER_SITE,
    Cancelled,
    Context,
    Placed,
    cancel_order,
    place_order,
    require,
    require_cancellations,
)
from .sites import load_site

RECS_PER_WIDGET = 10
TOP_SELLER_DAYS = 30


@dataclass
class PageResult:
    session: Session
    placed: Placed | None = None
    warnings: list[Warning_] = field(default_factory=list)


def track_page(repo: Repository, page: PageView, now: datetime) -> PageResult:
    """Check the site and token, keep the session, and place the order of an order page."""
    site = load_site(repo, page.site)
    if not site.token_matches(CLIENT, page.channel, page.client_token):
        raise ApiError(
            "InvalidClientToken",
            f"clientToken is not valid for site {site.name!r} and channel {page.channel!r}",
        )
    require(page.problem)
    session = _session_for(repo, site, page, now)
    if page.user_id:
        session.user_id = page.user_id
    if page.type == "basket":
        session.basket = page.basket
    elif page.type == "checkout":
        session.checkout = page.checkout
    repo.save_session(session)
    result = PageResult(session, warnings=[Warning_(c, m) for c, m in page.warnings])
    if page.order is not None:
        order = page.order.copy()
        order.site, order.session, order.cuid = site.name, session.id, session.cuid
        order.user_id = order.user_id or session.user_id
        order.ordered_at = now
        result.placed = place_order(repo, site, order, now)
        result.warnings.extend(result.placed.warnings)
    return result


def _session_for(repo: Repository, site: Site, page: PageView, now: datetime) -> Session:
    """The live session named, or a new one (for "new", an unknown or an expired session)."""
    known = None
    if page.session != NEW:
        known = repo.get_session(site.name, canonical_session(page.session))
        if known and known.expired(now, site.settings.session_max_age_seconds):
            known = None
    cuid = page.cuid
    if cuid == NEW:
        cuid = known.cuid if known else issue_cuid(page.version)
    if known is None:
        return Session(site.name, issue_session(), cuid, now, now)
    known.cuid, known.last_seen = cuid, now
    return known


def cancel_online(
    repo: Repository, cancel: OnlineCancel, now: datetime, max_held: int = MAX_HELD_PER_SITE
) -> Cancelled:
    """Checks in API.md 5.2's order: site, switch, parameters, cancelAuth; then cancel."""
    site = load_site(repo, cancel.site)
    require_cancellations(site)
    require(cancel.problem)
    session_id = canonical_session(cancel.session)
    mode = site.settings.cancel_auth
    seen = None
    if mode in ("session", "token"):
        oldest = now - timedelta(seconds=site.settings.session_max_age_seconds)
        seen = repo.touch_session(site.name, session_id, now, oldest)

    def admit() -> None:
        """cancelAuth, asked once the order is read: on PostgreSQL the session's answer comes
        with that read instead of a wait of its own. A refusal undoes the write, touch too."""
        if seen is not None and not seen():
            raise ApiError(
                "SessionNotRecognized",
                f"session is not an active session of site {site.name!r}; cancel in a session"
                " this server issued (cancelAuth is " + mode + ")",
            )
        if mode == "token" and not site.any_client_token_matches(cancel.client_token):
            raise ApiError(
                "InvalidClientToken",
                f"clientToken is missing or not valid for site {site.name!r} (cancelAuth is token)",
            )

    context = Context("", session_id, cancel.cuid, cancel.reason)
    return cancel_order(
        repo, site, ONLINE, "", cancel.order_no, cancel.items, context, now, max_held, admit
    )


@dataclass(frozen=True)
class Widget:
    kind: str  # top-sellers or bought-together
    ref_codes: list[str]


def recommend(
    reads: ReadModel,
    site: str,
    page_type: str,
    products: tuple[str, ...],
    session: Session,
    today: date,
    limit: int = RECS_PER_WIDGET,
) -> Widget:
    """The page's one widget (API.md 5.1): bought together for product and basket pages, top
    sellers elsewhere and as the fallback; never what this cuid, user or session has live-bought
    (a session's cuid may change, e.g. at login; its purchases stay left out, API.md 5.2)."""
    bought = reads.live_bought(site, session.cuid, session.user_id, session.id)
    refs: list[str] = []
    kind = "top-sellers"
    if page_type in ("product", "basket", "checkout", "order") and products:
        kind = "bought-together"
        refs = [ref for ref, _ in reads.bought_together(site, list(products), limit, bought)]
    if len(refs) < limit:
        first = (today - timedelta(days=TOP_SELLER_DAYS - 1)).isoformat()
        skip = bought | set(refs) | set(products)
        top = reads.top_sellers(site, "units", first, today.isoformat(), limit - len(refs), skip)
        refs.extend(ref for ref, _ in top)
    return Widget(kind, refs)
