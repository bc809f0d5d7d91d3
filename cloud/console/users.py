"""Users (administrators): the list, adding one, changing a user's role, ward or language,
disabling and enabling, resetting a password. Every change goes through cloud/services/users.py,
as the API's do, and is audited there. A password the server makes is shown once, on the page
the form's answer renders."""

from typing import Annotated, TypeVar

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ValidationError

from cloud.auth import DbSession, known_wards
from cloud.console.account import LANGUAGE_NAMES
from cloud.console.claims import admin_only
from cloud.console.invalid import invalid_message
from cloud.console.pages import Viewer, ViewerDep, check_csrf, page, page_router
from cloud.errors import Invalid
from cloud.models import ROLES
from cloud.services import users
from cloud.services.users import PasswordReset, UserChange, UserNew
from matthan.i18n import N_

router = page_router()
NameField = Annotated[str, Form(min_length=1, max_length=64)]
Csrf = Annotated[str, Form()]
T = TypeVar("T", bound=BaseModel)


@router.get("/console/users")
def users_page(request: Request, v: ViewerDep, session: DbSession, saved: str = "") -> HTMLResponse:
    admin_only(v)
    return _render(request, v, session, saved=saved)


@router.post("/console/users")
def add(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    name: NameField,
    role: Annotated[str, Form(max_length=16)],
    ward: Annotated[str, Form(max_length=63)] = "",
    language: Annotated[str, Form(max_length=8)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Csrf = "",
) -> HTMLResponse:
    check_csrf(v, csrf_token)
    admin_only(v)
    body = _valid(
        UserNew,
        name=name,
        role=role,
        ward=ward.strip() or None,
        language=language or None,
        password=password or None,
    )
    created = users.add_user(session, body, v.principal.label())
    session.commit()
    return _render(request, v, session, saved=created.user.name, password=created.password)


@router.post("/console/users/{name}")
def change(
    v: ViewerDep,
    session: DbSession,
    name: str,
    role: Annotated[str, Form(max_length=16)],
    ward: Annotated[str, Form(max_length=63)] = "",
    language: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Csrf = "",
) -> RedirectResponse:
    check_csrf(v, csrf_token)
    admin_only(v)
    body = _valid(UserChange, role=role, ward=ward.strip() or None, language=language or None)
    users.change_user(session, name, body, v.principal.label())
    session.commit()
    return RedirectResponse(f"/console/users?saved={name}", 303)


@router.post("/console/users/{name}/disabled")
def set_disabled(
    v: ViewerDep, session: DbSession, name: str, disabled: Annotated[bool, Form()], csrf_token: Csrf = ""
) -> RedirectResponse:
    check_csrf(v, csrf_token)
    admin_only(v)
    users.change_user(session, name, UserChange(disabled=disabled), v.principal.label())
    session.commit()
    return RedirectResponse(f"/console/users?saved={name}", 303)


@router.post("/console/users/{name}/password")
def reset_password(
    request: Request, v: ViewerDep, session: DbSession, name: str, csrf_token: Csrf = ""
) -> HTMLResponse:
    check_csrf(v, csrf_token)
    admin_only(v)
    done = users.reset_password(session, name, PasswordReset(), v.principal.label())
    session.commit()
    return _render(request, v, session, saved=name, password=done.password)


def _valid(model: type[T], **fields: object) -> T:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise Invalid(invalid_message(exc.errors())) from None


def _render(
    request: Request, v: Viewer, session: DbSession, saved: str = "", password: str | None = None
) -> HTMLResponse:
    return page(
        request,
        "console/users.html",
        v,
        title=N_("Users"),
        nav="users",
        users=users.list_users(session),
        wards=known_wards(session),
        roles=ROLES,
        languages=LANGUAGE_NAMES,
        me=v.principal.name,
        saved=saved,
        password=password,
    )
