"""Signing in and out of the console, the entry redirects and the static files."""

import hmac
import logging
import secrets
from typing import Annotated

from fastapi import Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from cloud import audit, auth, session_cookie
from cloud.auth import DbSession
from cloud.console.pages import STATIC, ViewerDep, check_csrf, page, page_router, safe_next
from cloud.errors import NotFound
from cloud.settings import Settings
from matthan.i18n import N_, Msg

log = logging.getLogger("matthan.cloud.console")
router = page_router()
LOGIN_CSRF_COOKIE = "matthan_login_csrf"


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/console/fleet", 303)


@router.get("/console")
def console_home() -> RedirectResponse:
    return RedirectResponse("/console/fleet", 303)


@router.get("/console/static/{name:path}")
def static(name: str) -> FileResponse:
    """Our files and the vendored libraries under static/vendor (Leaflet with its images)."""
    parts = name.split("/")
    path = STATIC.joinpath(*parts)
    if len(parts) > 4 or any(not p or p.startswith(".") for p in parts) or not path.is_file():
        raise NotFound(N_("not found"))
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/console/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    resp = page(
        request,
        "console/login.html",
        None,
        title=N_("Sign in"),
        next=safe_next(next),
        error=None,
        username="",
        csrf=token,
    )
    _set_login_csrf(request, resp, token)
    return resp


def _set_login_csrf(request: Request, resp: Response, token: str) -> None:
    settings: Settings = request.app.state.settings
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/console/login",
    )


@router.post("/console/login")
def login_submit(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    target = safe_next(next)

    def again(error: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        resp = page(
            request,
            "console/login.html",
            None,
            status=status,
            title=N_("Sign in"),
            next=target,
            error=error,
            username=username,
            csrf=token,
        )
        _set_login_csrf(request, resp, token)
        return resp

    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return again(N_("The sign-in form expired; please try again."), 403)
    try:
        user = auth.sign_in(request, session, username, password, via="console")
    except HTTPException as exc:
        if exc.status_code == 429:
            return again(Msg("Too many failed sign-ins: %(detail)s.", detail=str(exc.detail)), 429)
        return again(N_("Wrong user name or password."), 401)
    resp = RedirectResponse(target, 303)
    session_cookie.login(resp, request.app.state.settings, user)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    audit.record(session, f"user:{user.name}", "login", target="console")
    session.commit()
    log.info("event=login user=%s role=%s", user.name, user.role)
    return resp


@router.post("/console/logout")
def logout(v: ViewerDep, session: DbSession, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(v, csrf_token)
    resp = RedirectResponse("/console/login", 303)
    session_cookie.logout(resp)
    audit.record(session, v.principal.label(), "logout", target="console")
    session.commit()
    return resp
