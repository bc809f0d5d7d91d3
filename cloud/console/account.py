"""The signed-in user's own settings: for now, the console's language."""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud import audit
from cloud.auth import DbSession
from cloud.console.pages import ViewerDep, check_csrf, page, page_router
from cloud.errors import CloudError, NotFound
from cloud.models import User
from matthan import i18n
from matthan.i18n import N_

router = page_router()
# What the choice is called in each language's own words, so a user lost in the other one finds theirs.
LANGUAGE_NAMES = {"vi": "Tiếng Việt", "en": "English"}


@router.get("/console/account")
def account(request: Request, v: ViewerDep, session: DbSession, saved: bool = False) -> HTMLResponse:
    user = session.get(User, v.principal.user_id)
    if user is None:
        raise NotFound(N_("not found"))
    return page(
        request,
        "console/account.html",
        v,
        title=N_("Your account"),
        nav="account",
        chosen=user.language or "",
        deployment=request.app.state.settings.language,
        languages=LANGUAGE_NAMES,
        saved=saved,
    )


@router.post("/console/account/language")
def set_language(
    v: ViewerDep,
    session: DbSession,
    language: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(v, csrf_token)
    if language and language not in i18n.LANGUAGES:
        raise CloudError(N_("unknown language"))
    user = session.get(User, v.principal.user_id)
    if user is None:
        raise NotFound(N_("not found"))
    user.language = language or None
    audit.record(
        session, v.principal.label(), "set_language", target=f"user:{user.name}", language=language or None
    )
    session.commit()
    return RedirectResponse("/console/account?saved=1", 303)
