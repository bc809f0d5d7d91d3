"""User sessions for the console and API keys' owner: log in, log out, who am I."""

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from cloud import audit
from cloud.auth import AnyUser, DbSession, sign_in
from cloud.session_cookie import login, logout

router = APIRouter(prefix="/api/v1/auth", tags=["session"])


class LoginIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    name: str
    role: str | None
    ward: str | None
    csrf_token: str | None = None


@router.post("/login", summary="Log in: sets an HttpOnly session cookie and a CSRF cookie")
def do_login(body: LoginIn, request: Request, response: Response, session: DbSession) -> Me:
    user = sign_in(request, session, body.name, body.password, via="api")
    csrf = login(response, request.app.state.settings, user)
    audit.record(session, f"user:{user.name}", "login")
    session.commit()
    return Me(name=user.name, role=user.role, ward=user.ward, csrf_token=csrf)


@router.post("/logout", summary="Log out (clears the cookies)")
def do_logout(response: Response) -> dict[str, bool]:
    logout(response)
    return {"ok": True}


@router.get("/me", summary="The logged-in user")
def me(principal: AnyUser) -> Me:
    return Me(name=principal.name, role=principal.role, ward=principal.ward)
