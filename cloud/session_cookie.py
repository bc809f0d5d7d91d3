"""The console's session: a cookie signed with HMAC-SHA256 (Settings.secret_key) naming the user,
its expiry and a CSRF token; HttpOnly, SameSite=Lax, and Secure when the public URL is https. The
CSRF token also goes in a cookie the page's script can read, to echo in X-CSRF-Token (cloud/auth.py
checks it)."""

import hashlib
import hmac
import json
import secrets
import time

from fastapi import Response

from cloud.models import User
from cloud.settings import Settings
from matthan.jws import JwsError, b64url, unb64url

SESSION_COOKIE = "matthan_session"
CSRF_COOKIE = "matthan_csrf"


def make_session_cookie(settings: Settings, user: User) -> tuple[str, str]:
    csrf = secrets.token_urlsafe(24)
    body = {"u": user.id, "exp": int(time.time() + settings.session_hours * 3600), "c": csrf}
    raw = b64url(json.dumps(body, separators=(",", ":")).encode())
    return f"{raw}.{_sign(settings, raw)}", csrf


def read_session_cookie(settings: Settings, value: str) -> tuple[int, str] | None:
    raw, _, sig = value.partition(".")
    if not sig or not hmac.compare_digest(sig, _sign(settings, raw)):
        return None
    try:
        body = json.loads(unb64url(raw))
        if int(body["exp"]) < time.time():
            return None
        return int(body["u"]), str(body["c"])
    except (JwsError, ValueError, KeyError, TypeError):
        return None


def login(response: Response, settings: Settings, user: User) -> str:
    """Set the session and CSRF cookies on the response; returns the CSRF token."""
    value, csrf = make_session_cookie(settings, user)
    age = int(settings.session_hours * 3600)
    secure = settings.secure_cookies
    response.set_cookie(SESSION_COOKIE, value, max_age=age, httponly=True, samesite="lax", secure=secure)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=age, httponly=False, samesite="lax", secure=secure)
    return csrf


def logout(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)


def _sign(settings: Settings, raw: str) -> str:
    return b64url(hmac.new(settings.secret_key.encode(), raw.encode(), hashlib.sha256).digest())
