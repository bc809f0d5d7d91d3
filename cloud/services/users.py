"""Console and API users, as an administrator manages them: list, add, change role, ward or
language, disable and enable, reset the password. Every change is written to the audit log in the
same transaction (the caller commits).

Two guards keep the operations centre from locking itself out: the last enabled administrator
cannot be disabled or lose the role, and nobody disables their own account.
"""

import secrets
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from cloud import audit
from cloud.auth import create_user, hash_password, known_wards
from cloud.errors import Conflict, Invalid, NotFound
from cloud.models import User
from matthan import i18n
from matthan.i18n import N_, Msg
from matthan_wire.ids import Id

Role = Literal["admin", "operator", "ward_officer"]
LIST_LIMIT = 1000


class UserOut(BaseModel):
    name: str
    role: str
    ward: str | None
    language: str | None
    disabled: bool
    api_key: bool  # whether one is issued; the key itself is never shown again
    created_at: datetime


class UserNew(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role
    ward: Id | None = None
    language: str | None = Field(default=None, max_length=8)
    # Empty: the server makes one and answers it once (UserCreated.password).
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class UserChange(BaseModel):
    """What changes; a field left out stays as it is (`ward` is cleared for roles without one)."""

    role: Role | None = None
    ward: Id | None = None
    language: str | None = Field(default=None, max_length=8)
    disabled: bool | None = None


class PasswordReset(BaseModel):
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class UserCreated(BaseModel):
    user: UserOut
    password: str | None  # only when the server made it: shown once


class PasswordSet(BaseModel):
    password: str | None  # only when the server made it: shown once


def list_users(session: Session) -> list[UserOut]:
    rows = session.exec(select(User).order_by(col(User.name)).limit(LIST_LIMIT)).all()
    return [_out(u) for u in rows]


def add_user(session: Session, body: UserNew, by: str) -> UserCreated:
    name = body.name.strip()
    # cloud.auth.create_user checks these too, in the CLI's words; here they are the reader's.
    if not all(c.isalnum() or c in "._-@" for c in name) or not name:
        raise Invalid(Msg(N_("user name %(name)s: letters, digits, '.', '_', '-' or '@' only"), name=name))
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise Conflict(Msg(N_("user %(name)s exists already"), name=name))
    ward = _ward_for(session, body.role, body.ward)
    language = _language(body.language)
    made = None if body.password else new_password()
    user = create_user(session, name, body.role, body.password or str(made), ward)
    user.language = language
    audit.record(session, by, "user.add", user.name, role=user.role, ward=ward, language=language)
    return UserCreated(user=_out(user), password=made)


def change_user(session: Session, name: str, body: UserChange, by: str) -> UserOut:
    user = _get(session, name)
    changes: dict[str, object] = {}
    role = body.role or user.role
    if body.role is not None or body.ward is not None:
        ward = _ward_for(session, role, body.ward if body.ward is not None else user.ward)
        if role != "admin" and user.role == "admin":
            _keep_an_admin(session, user)
        if (role, ward) != (user.role, user.ward):
            changes.update(role=role, ward=ward)
            user.role, user.ward = role, ward
    if "language" in body.model_fields_set:
        language = _language(body.language)
        if language != user.language:
            changes["language"] = language
            user.language = language
    if body.disabled is not None and body.disabled != user.disabled:
        if body.disabled:
            if by == f"user:{user.name}":
                raise Conflict(N_("you cannot disable your own account"))
            if user.role == "admin":
                _keep_an_admin(session, user)
        changes["disabled"] = body.disabled
        user.disabled = body.disabled
    if changes:
        session.add(user)
        audit.record(session, by, "user.change", user.name, **changes)
    return _out(user)


def reset_password(session: Session, name: str, body: PasswordReset, by: str) -> PasswordSet:
    """A new password (the given one, or one made here and answered once); the user's API key stays."""
    user = _get(session, name)
    made = None if body.password else new_password()
    user.password_hash = hash_password(body.password or str(made))
    session.add(user)
    audit.record(session, by, "user.password_reset", user.name, generated=made is not None)
    return PasswordSet(password=made)


def new_password() -> str:
    # 12 characters from an alphabet without look-alikes (0/O, 1/l/I): read aloud or copied by hand.
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _get(session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(Msg(N_("no user %(name)s"), name=name))
    return user


def _ward_for(session: Session, role: str, ward: str | None) -> str | None:
    """The ward a user of this role keeps: a known one for a ward officer, none for the others."""
    if role != "ward_officer":
        return None
    if not ward:
        raise Invalid(N_("a ward officer needs a ward"))
    if ward not in known_wards(session):
        # A typo here would give an officer who silently sees nothing.
        raise Invalid(
            Msg(N_("unknown ward %(ward)s: add the ward first, or issue a claim token for it"), ward=ward)
        )
    return ward


def _language(language: str | None) -> str | None:
    if language and language not in i18n.LANGUAGES:
        raise Invalid(Msg(N_("unknown language %(language)s"), language=language))
    return language or None


def _keep_an_admin(session: Session, user: User) -> None:
    others = session.exec(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", col(User.disabled).is_(False), User.id != user.id)
    ).one()
    if others == 0:
        raise Conflict(N_("this is the last enabled administrator; make another one first"))


def _out(user: User) -> UserOut:
    return UserOut(
        name=user.name,
        role=user.role,
        ward=user.ward,
        language=user.language,
        disabled=user.disabled,
        api_key=user.api_key_hash is not None,
        created_at=user.created_at,
    )
