"""What every console page shares: the templates and their filters (times on the district's clock,
from Settings.console_tz), who is looking (the session cookie's user and its CSRF token), page and
error rendering, and the route class that turns a refusal on a page into a page.

Pages are rendered on the server (Jinja2) with a little vanilla JS from cloud/static. Reads are
scoped by the same rules as the JSON API (cloud.auth: a ward officer sees only their ward);
changes go through the same services the API calls (cloud/services), so a form can do nothing
the API would refuse.

CSRF: cookie sessions come from cloud.auth. Forms echo the session's CSRF token in a hidden
field (fetch calls send it in the X-CSRF-Token header, as the API wants); the login form, which
has no session yet, is protected by a double-submit cookie of its own (cloud/console/auth.py).
"""

import hashlib
import hmac
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlmodel import Session, select

from cloud import auth
from cloud.auth import SESSION_COOKIE, DbSession, Principal
from cloud.console import views
from cloud.errors import CloudError, Forbidden
from cloud.models import Device, User
from cloud.settings import Settings
from matthan.display import rule_words
from matthan_wire.timeutil import utc_now

log = logging.getLogger("matthan.cloud.console")

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "static"
TEMPLATES = HERE.parent / "templates"

templates = Jinja2Templates(directory=str(TEMPLATES))


class ConsoleRoute(APIRoute):
    """A refusal on a page is a page (with the way back), not a JSON body; fetch calls keep JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def render_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, CloudError) as exc:
                status = exc.status_code if isinstance(exc, HTTPException) else exc.status
                detail = str(exc.detail) if isinstance(exc, HTTPException) else str(exc)
                wants_page = "text/html" in request.headers.get("accept", "")
                if status < 400 or not wants_page or request.headers.get("x-requested-with"):
                    raise
                return error_page(request, status, detail)

        return render_errors


def page_router() -> APIRouter:
    """A router for one page's routes; cloud/console/__init__.py includes them all."""
    return APIRouter(include_in_schema=False, route_class=ConsoleRoute)


# --- time as the district reads it ---------------------------------------------------------------


def display_zone(settings: Settings) -> tzinfo:
    """The district's clock for pages and per-day counts (Settings.console_tz; Vietnam by default)."""
    return _zone(settings.console_tz)


def zone_of(request: Request) -> tzinfo:
    return display_zone(request.app.state.settings)


@lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("event=bad_timezone tz=%s fallback=UTC", name)  # once per name, thanks to the cache
        return ZoneInfo("UTC")


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    s = (utc_now() - moment).total_seconds()
    if s < 0:
        return "just now"
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 48 * 3600:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} d ago"


@pass_context
def _local(ctx: Context, moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(zone_of(ctx["request"])).strftime("%Y-%m-%d %H:%M:%S")


@pass_context
def _day(ctx: Context, moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(zone_of(ctx["request"])).strftime("%Y-%m-%d")


def _utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def _static_url(name: str) -> str:
    # The file's content hash in the URL: browsers cache hard and still see a new release at once.
    path = STATIC / name
    return f"/console/static/{name}?v={_digest(path, path.stat().st_mtime_ns)}"


@lru_cache(maxsize=32)
def _digest(path: Path, _mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


templates.env.filters.update(ago=_ago, local=_local, day=_day, utc=_utc)
templates.env.globals.update(
    static=_static_url,
    actions_for=views.actions_for,
    clip_note=views.clip_note,
    alert_duration=views.alert_duration,
    rule_label=lambda a: rule_words(a.type, a.rule_title),
)


# --- who is looking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    csrf: str

    @property
    def can_edit_config(self) -> bool:
        return self.principal.role in ("admin", "operator")

    @property
    def can_act(self) -> bool:
        # Officers handle their own ward's alerts; the operations centre handles all of them.
        return self.principal.role in ("admin", "operator", "ward_officer")


def _to_login(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "log in first", {"Location": f"/console/login?next={quote(target)}"})


def session_viewer(request: Request, session: Session) -> Viewer | None:
    """The user whose signed session cookie came with the request (cloud.auth's cookie), if any."""
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(SESSION_COOKIE)
    found = auth.read_session_cookie(settings, cookie) if cookie else None
    if found is None:
        return None
    user_id, csrf = found
    user = session.get(User, user_id)
    if user is None or user.disabled:
        return None
    return Viewer(auth.Principal("user", user.name, user.role, user.ward, "cookie", user.id), csrf)


def viewer(request: Request, session: DbSession) -> Viewer:
    """The logged-in user of a page; anyone else is sent to the login page."""
    v = session_viewer(request, session)
    if v is None:
        raise _to_login(request)
    return v


ViewerDep = Annotated[Viewer, Depends(viewer)]


def check_csrf(v: Viewer, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, v.csrf):
        raise Forbidden("the form has expired (CSRF check failed); reload the page and try again")


def safe_next(target: str | None) -> str:
    """Only a path on this site: a login link must not bounce the user to someone else's page."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/console/fleet"
    return target


def page(request: Request, name: str, v: Viewer | None, status: int = 200, **ctx: Any) -> HTMLResponse:
    context = {
        "user": None,
        "csrf": v.csrf if v else "",
        "tz_name": getattr(zone_of(request), "key", "UTC"),
        **ctx,
    }
    if v is not None:
        p = v.principal
        context["user"] = {"username": p.name, "role": p.role, "ward": p.ward}
    return templates.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    titles = {400: "Please check the request", 401: "Please sign in", 403: "Not allowed", 404: "Not found"}
    with Session(request.app.state.engine) as session:
        v = session_viewer(request, session)
    if message.strip().lower() == titles.get(status, "").lower():
        message = "There is no such page, or it is not yours to see."
    return page(
        request,
        "console/error.html",
        v,
        status=status,
        title=titles.get(status, "Something went wrong"),
        message=message,
    )


def ward_choices(session: Session, v: Viewer) -> list[str]:
    scope = v.principal.ward_scope
    if scope is not None:
        return [scope]
    return sorted(set(session.exec(select(Device.ward)).all()))


def scope(v: Viewer, requested: str | None) -> str | None:
    return auth.scope_ward(v.principal, requested or None)
