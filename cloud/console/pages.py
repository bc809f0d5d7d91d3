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
from datetime import date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_timedelta
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlmodel import Session, select

from cloud import auth
from cloud.auth import DbSession, Principal
from cloud.console import views
from cloud.console.invalid import invalid_message
from cloud.errors import CloudError, Forbidden
from cloud.language import accepted_language
from cloud.models import Device, User
from cloud.session_cookie import SESSION_COOKIE, read_session_cookie
from cloud.settings import Settings
from matthan import i18n, vocabulary
from matthan.i18n import N_, Msg
from matthan_wire.timeutil import utc_now

log = logging.getLogger("matthan.cloud.console")

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "static"
TEMPLATES = HERE.parent / "templates"


def lang_of(request: Request) -> str:
    """The reader's language: their own setting (read with their session), else the deployment's
    (Settings.language), else — when the deployment says "auto" — the browser's Accept-Language."""
    chosen = getattr(request.state, "lang", None)
    if chosen in i18n.LANGUAGES:
        return str(chosen)
    setting: str = request.app.state.settings.language
    if setting != "auto":
        return setting
    return accepted_language(request.headers.get("accept-language", "")) or i18n.DEFAULT_LANGUAGE


def _lang_context(request: Request) -> dict[str, Any]:
    return {"lang": lang_of(request)}


templates = Jinja2Templates(directory=str(TEMPLATES), context_processors=[_lang_context])
templates.env.add_extension("jinja2.ext.i18n")


def _ctx_lang(ctx: Context) -> str:
    lang = ctx.get("lang")
    return lang if isinstance(lang, str) else i18n.DEFAULT_LANGUAGE


@pass_context
def _gettext(ctx: Context, message: str) -> str:
    return i18n.translate(_ctx_lang(ctx), message) if message else ""


@pass_context
def _ngettext(ctx: Context, singular: str, plural: str, n: int) -> str:
    return i18n.translations(_ctx_lang(ctx)).ngettext(singular, plural, n)


templates.env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]


class ConsoleRoute(APIRoute):
    """A refusal on a page is a page (with the way back), not a JSON body; fetch calls keep JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def render_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                # A page's query or form with a value it cannot use (`?days=abc`): the API's 422 JSON
                # for scripts, a page in the reader's language for a browser.
                if not _wants_page(request):
                    raise
                return error_page(request, 422, invalid_message(exc.errors()))
            except (HTTPException, CloudError) as exc:
                status = exc.status_code if isinstance(exc, HTTPException) else exc.status
                detail = str(exc.detail) if isinstance(exc, HTTPException) else str(exc)
                if isinstance(exc, CloudError) and exc.args and isinstance(exc.args[0], Msg):
                    detail = exc.args[0]  # kept with its parameters: the page translates it
                if status < 400 or not _wants_page(request):
                    raise
                return error_page(request, status, detail)

        return render_errors


def _wants_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.headers.get("x-requested-with")


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


@pass_context
def _ago(ctx: Context, moment: datetime | None) -> str:
    lang = _ctx_lang(ctx)
    if moment is None:
        return i18n.translate(lang, "never")
    span = utc_now() - moment
    if span.total_seconds() < 1:
        return i18n.translate(lang, "just now")
    return str(format_timedelta(-span, threshold=1.5, add_direction=True, format="short", locale=lang))


@pass_context
def _local(ctx: Context, moment: datetime | None) -> str:
    """A moment on the district's clock, written the reader's way (the zone is in each page's header)."""
    if moment is None:
        return ""
    return i18n.format_moment(moment, _ctx_lang(ctx), zone_of(ctx["request"]), with_zone=False)


@pass_context
def _day(ctx: Context, moment: datetime | None) -> str:
    return "" if moment is None else i18n.format_day(moment, _ctx_lang(ctx), zone_of(ctx["request"]))


@pass_context
def _number(ctx: Context, value: float | None, decimals: int = 0) -> str:
    return "" if value is None else i18n.format_number(value, _ctx_lang(ctx), decimals)


@pass_context
def _tr(ctx: Context, text: str | None) -> str:
    """A text built in Python (a Msg with its parameters, or an N_-marked text) in the reader's language."""
    if not text:
        return ""  # gettext("") would be the catalogue's header
    lang = _ctx_lang(ctx)
    return text.translated(lang) if isinstance(text, Msg) else i18n.translate(lang, text)


@pass_context
def _name(ctx: Context, code: str | None) -> str:
    """A code's name (rule type, category, state, role) in the reader's language."""
    return vocabulary.name(_ctx_lang(ctx), code)


def _utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def _static_url(name: str) -> str:
    # The file's content hash in the URL: browsers cache hard and still see a new release at once.
    path = STATIC / name
    return f"/console/static/{name}?v={_digest(path, path.stat().st_mtime_ns)}"


@lru_cache(maxsize=32)
def _digest(path: Path, _mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


@pass_context
def _dayname(ctx: Context, iso_day: str) -> str:
    """A calendar day given as YYYY-MM-DD (the figures' keys), written the reader's way."""
    try:
        day = date.fromisoformat(iso_day)
    except ValueError:
        return iso_day
    return day.strftime("%d/%m/%Y") if _ctx_lang(ctx) == "vi" else iso_day


@lru_cache(maxsize=1)
def js_msgids() -> tuple[str, ...]:
    """The texts the console's scripts show: every `_("…")` in cloud/static/*.js, found with the
    same Babel extractor the catalogue is built with, so a script's text cannot miss the page."""
    from babel.messages.extract import extract_from_file

    found: set[str] = set()
    for path in sorted(STATIC.glob("*.js")):
        for _lineno, message, _comments, _context in extract_from_file("javascript", str(path)):
            if isinstance(message, str):
                found.add(message)
    return tuple(sorted(found))


@lru_cache(maxsize=len(i18n.LANGUAGES))
def js_messages(lang: str) -> dict[str, str]:
    """The scripts' texts in one language, rendered into each page (no extra request)."""
    return {m: i18n.translate(lang, m) for m in js_msgids()}


@pass_context
def _rule_label(ctx: Context, a: Any) -> str:
    """An alert's rule as people read it: its own title, else its type's name in the reader's language."""
    if a.rule_title:
        return str(a.rule_title)
    return vocabulary.name(_ctx_lang(ctx), a.type, vocabulary.RULE_TYPES)


templates.env.filters.update(
    ago=_ago, local=_local, day=_day, utc=_utc, number=_number, tr=_tr, name=_name, dayname=_dayname
)
templates.env.globals.update(
    js_messages=js_messages,
    static=_static_url,
    actions_for=views.actions_for,
    clip_note=views.clip_note,
    alert_duration=views.alert_duration,
    rule_label=_rule_label,
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
    found = read_session_cookie(settings, cookie) if cookie else None
    if found is None:
        return None
    user_id, csrf = found
    user = session.get(User, user_id)
    if user is None or user.disabled:
        return None
    request.state.lang = user.language  # read by lang_of for every page and part of this request
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
        raise Forbidden(N_("the form has expired (CSRF check failed); reload the page and try again"))


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


ERROR_TITLES = {
    400: N_("Please check the request"),
    401: N_("Please sign in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    422: N_("Please check the request"),
}


def error_page(request: Request, status: int, message: str | Msg) -> HTMLResponse:
    with Session(request.app.state.engine) as session:
        v = session_viewer(request, session)
    if message.strip().lower() in (ERROR_TITLES.get(status, "").lower(), "not found"):
        message = N_("There is no such page, or it is not yours to see.")
    return page(
        request,
        "console/error.html",
        v,
        status=status,
        title=ERROR_TITLES.get(status, N_("Something went wrong")),
        message=message,
    )


def ward_choices(session: Session, v: Viewer) -> list[str]:
    scope = v.principal.ward_scope
    if scope is not None:
        return [scope]
    return sorted(set(session.exec(select(Device.ward)).all()))


def scope(v: Viewer, requested: str | None) -> str | None:
    return auth.scope_ward(v.principal, requested or None)
