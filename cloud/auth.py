"""Who is asking: devices (bearer token), users (session cookie or bearer API key), their roles
and wards.

- Device tokens are issued at enrollment; only their SHA-256 is stored (they are 256-bit random,
  so a fast hash is enough and allows lookup). A revoked device is refused.
- Passwords use scrypt from the standard library (a memory-hard KDF), salted, parameters stored.
- A console session is a signed cookie (cloud/session_cookie.py) carrying a CSRF token;
  cookie-authenticated unsafe requests must echo it in the X-CSRF-Token header (double submit:
  the csrf cookie is readable by the page's script, the session cookie is not).
- Ward scoping is enforced here for every query: a ward officer sees only their ward.
"""

import base64
import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol, TypeVar

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session, select

from cloud import audit
from cloud.errors import CloudError, Forbidden, NotFound
from cloud.models import ROLES, Device, User, Ward
from cloud.session_cookie import CSRF_COOKIE, SESSION_COOKIE, read_session_cookie
from cloud.settings import Settings
from cloud.throttle import LoginThrottle
from matthan.i18n import Msg
from matthan_wire.ids import is_id

log = logging.getLogger("matthan.cloud.auth")

CSRF_HEADER = "X-CSRF-Token"
DEVICE_TOKEN_PREFIX = "mdt_"
API_KEY_PREFIX = "mak_"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


# --- secrets -------------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise CloudError(Msg("password: at least 8 characters"))
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(_unb64(digest))
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(digest))


def issue_device_token(session: Session, device: Device) -> str:
    """A new upload token for the device (replacing any old one); the caller commits."""
    token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    device.api_token_hash = token_hash(token)
    session.add(device)
    return token


def issue_api_key(session: Session, user: User) -> str:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    user.api_key_hash = token_hash(key)
    session.add(user)
    return key


# --- users ---------------------------------------------------------------------------------------


def create_user(session: Session, name: str, role: str, password: str, ward: str | None = None) -> User:
    """Validate and add a user (the caller commits); every mistake is a one-line CloudError."""
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise CloudError(Msg("user name %(name)r: 1–64 letters, digits, '.', '_', '-' or '@'", name=name))
    if role not in ROLES:
        raise CloudError(Msg("role %(role)r: one of %(roles)s", role=role, roles=", ".join(ROLES)))
    if role == "ward_officer":
        if not ward or not is_id(ward):
            raise CloudError(Msg("a ward_officer needs --ward WARD (a ward id like ben-nghe)"))
        known = known_wards(session)
        if ward not in known:
            # A typo here would give an officer who silently sees nothing.
            listed = ", ".join(known[:10]) + (", …" if len(known) > 10 else "") if known else Msg("none yet")
            raise CloudError(
                Msg(
                    "unknown ward %(ward)r (known: %(known)s); add the ward first "
                    "(POST /api/v1/wards, or issue a claim token for it)",
                    ward=ward,
                    known=listed,
                )
            )
    elif ward is not None:
        raise CloudError(Msg("--ward applies to ward_officer only, not %(role)s", role=role))
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise CloudError(Msg("user %(name)r exists already", name=name))
    user = User(name=name, role=role, ward=ward, password_hash=hash_password(password))
    session.add(user)
    return user


def known_wards(session: Session) -> list[str]:
    """Wards added by an admin or by a claim token, and those a device belongs to."""
    added = set(session.exec(select(Ward.id)).all())
    with_devices = set(session.exec(select(Device.ward).distinct()).all())
    return sorted(added | with_devices)


def authenticate(session: Session, name: str, password: str) -> User | None:
    # No user name has control characters (PostgreSQL would refuse a NUL with an error, not a miss).
    valid_name = name.isprintable()
    user = session.exec(select(User).where(User.name == name)).first() if valid_name else None
    if user is None or user.disabled:
        # Spend the same time as a real check, so timing does not reveal which names exist.
        verify_password(password, _DUMMY_HASH)
        return None
    return user if verify_password(password, user.password_hash) else None


LOGIN_REFUSED = Msg("wrong name or password")


def sign_in(request: Request, session: Session, name: str, password: str, via: str) -> User:
    """authenticate() behind the login throttle: the user, or HTTPException 401 (the same for an
    unknown name and a wrong password) or 429 while the name or the client address is locked out.
    Failures and lockouts are audited (committed here: the request ends in an error) and logged
    as one line each."""
    throttle: LoginThrottle = request.app.state.login_throttle
    # Behind a reverse proxy this is the proxy unless uvicorn runs with --proxy-headers.
    address = request.client.host if request.client else "-"
    name = name.strip()[:64]
    wait = throttle.locked_for(name, address)
    if wait > 0:
        raise HTTPException(
            429,
            Msg("too many failed sign-ins; try again in %(s)d s", s=math.ceil(wait)),
            headers={"Retry-After": str(math.ceil(wait))},
        )
    user = authenticate(session, name, password)
    if user is not None:
        throttle.succeeded(name)
        return user
    tried = audit.login_failed(session, name, address, via=via)
    log.info("event=login_failed user=%s client=%s via=%s", tried, address, via)
    for lock in throttle.failed(name, address):
        audit.record(
            session, lock.key, "login_locked", target=via, failures=lock.failures, seconds=lock.seconds
        )
        log.warning(
            "event=login_locked key=%s failures=%d lock_s=%.0f via=%s",
            lock.key,
            lock.failures,
            lock.seconds,
            via,
        )
    session.commit()
    raise HTTPException(401, LOGIN_REFUSED)


# --- principals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "device"]
    name: str  # user name, or device id
    role: str | None  # admin | operator | ward_officer for users; None for devices
    ward: str | None
    via: Literal["cookie", "bearer"]
    user_id: int | None = None
    language: str | None = None  # a user's own setting, for the messages they read

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @property
    def ward_scope(self) -> str | None:
        """The only ward this principal may see, or None for all wards."""
        return self.ward if (self.kind == "device" or self.role == "ward_officer") else None

    def may_see(self, ward: str) -> bool:
        return self.ward_scope is None or self.ward_scope == ward

    def label(self) -> str:
        return f"{self.kind}:{self.name}"


def scope_ward(principal: Principal, requested: str | None) -> str | None:
    """The ward a list query must be restricted to: the officer's own (403 for another)."""
    own = principal.ward_scope
    if own is None:
        return requested
    if requested is not None and requested != own:
        raise Forbidden(Msg("you may only see ward %(ward)s", ward=own))
    return own


def require_ward(principal: Principal, ward: str) -> None:
    """For one object: another ward's object is 'not found', so ids do not leak across wards."""
    if not principal.may_see(ward):
        raise NotFound(Msg("not found"))


class _InWard(Protocol):
    ward: str


InWard = TypeVar("InWard", bound=_InWard)


def get_in_ward(
    session: Session, principal: Principal, model: type[InWard], key: str, missing: str
) -> InWard:
    """The row of `model` with primary key `key`, if `principal` may see its ward; NotFound(missing)
    when there is none (another ward's row is 'not found' too, see require_ward)."""
    # Not an id is not a row; and PostgreSQL refuses a NUL in a key with an error, not a miss.
    row = session.get(model, key) if is_id(key) else None
    if row is None:
        raise NotFound(missing)
    require_ward(principal, row.ward)
    return row


# --- FastAPI dependencies ------------------------------------------------------------------------


def get_session(request: Request):  # type: ignore[no-untyped-def]
    """One database session per request (generator dependency; closed after the response)."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def optional_principal(request: Request, session: DbSession) -> Principal | None:
    """The caller, or None when no credentials came; wrong credentials are 401, a revoked device 403."""
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, Msg("use Authorization: Bearer <token>"), {"WWW-Authenticate": "Bearer"})
        token = token.strip()
        # The errors of this request speak the user's language, or English to a device, whose
        # answers end up in its logs — also when its token is refused (cloud/language.py).
        request.state.device = not token.startswith(API_KEY_PREFIX)
        principal = _bearer_principal(session, token)
        request.state.lang = principal.language
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    found = read_session_cookie(settings, cookie)
    if found is None:
        raise HTTPException(401, Msg("session expired or invalid; log in again"))
    user_id, csrf = found
    user = session.get(User, user_id)
    if user is None or user.disabled:
        raise HTTPException(401, Msg("session expired or invalid; log in again"))
    request.state.lang = user.language  # the errors of this request speak it (cloud/language.py)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, csrf):
            raise HTTPException(
                403,
                Msg(
                    "missing or wrong %(header)s header (copy the %(cookie)s cookie)",
                    header=CSRF_HEADER,
                    cookie=CSRF_COOKIE,
                ),
            )
    return Principal("user", user.name, user.role, user.ward, "cookie", user.id, user.language)


def current_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise HTTPException(
            401, Msg("log in, or send Authorization: Bearer <token>"), {"WWW-Authenticate": "Bearer"}
        )
    return principal


def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_user:
        raise HTTPException(403, Msg("this needs a user, not a device"))
    return principal


def current_device(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.kind != "device":
        raise HTTPException(403, Msg("this needs a device token"))
    return principal


def require_role(*roles: str):  # type: ignore[no-untyped-def]
    """A dependency that lets through users with one of the roles."""

    def check(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, Msg("needs role %(roles)s", roles=" / ".join(roles)))
        return principal

    return check


AnyCaller = Annotated[Principal, Depends(current_principal)]
AnyUser = Annotated[Principal, Depends(current_user)]
DeviceCaller = Annotated[Principal, Depends(current_device)]
Admin = Annotated[Principal, Depends(require_role("admin"))]
Staff = Annotated[Principal, Depends(require_role("admin", "operator"))]


def _bearer_principal(session: Session, token: str) -> Principal:
    digest = token_hash(token)
    if token.startswith(API_KEY_PREFIX):
        user = session.exec(select(User).where(User.api_key_hash == digest)).first()
        if user is not None and not user.disabled:
            return Principal("user", user.name, user.role, user.ward, "bearer", user.id, user.language)
    else:
        device = session.exec(select(Device).where(Device.api_token_hash == digest)).first()
        if device is not None:
            if device.revoked_at is not None:
                raise HTTPException(403, Msg("device %(device)s is revoked", device=device.id))
            return Principal("device", device.id, None, device.ward, "bearer")
    raise HTTPException(401, Msg("unknown or expired token"), {"WWW-Authenticate": "Bearer"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
