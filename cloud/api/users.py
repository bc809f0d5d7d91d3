"""Users over HTTP, for administrators: list, add, change (role, ward, language, disabled), reset
the password. The rules and the audit are in cloud/services/users.py; the console's users page
calls the same functions."""

from fastapi import APIRouter, Path

from cloud.auth import Admin, DbSession
from cloud.services import users
from cloud.services.users import PasswordReset, PasswordSet, UserChange, UserCreated, UserNew, UserOut

router = APIRouter(prefix="/api/v1/users", tags=["users"])
UserName = Path(min_length=1, max_length=64)


@router.get("", summary="Every user (never a password or an API key)")
def list_users(who: Admin, session: DbSession) -> list[UserOut]:
    return users.list_users(session)


@router.post("", status_code=201, summary="Add a user; a password made here is answered once")
def add_user(body: UserNew, who: Admin, session: DbSession) -> UserCreated:
    created = users.add_user(session, body, who.label())
    session.commit()
    return created


@router.patch("/{name}", summary="Change a user's role, ward, language, or disable / enable them")
def change_user(body: UserChange, who: Admin, session: DbSession, name: str = UserName) -> UserOut:
    changed = users.change_user(session, name, body, who.label())
    session.commit()
    return changed


@router.post("/{name}/password", summary="Set a new password; a password made here is answered once")
def reset_password(body: PasswordReset, who: Admin, session: DbSession, name: str = UserName) -> PasswordSet:
    done = users.reset_password(session, name, body, who.label())
    session.commit()
    return done
