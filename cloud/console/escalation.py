"""The escalation editor (administrators): notification endpoints, escalation policies per ward and
category, and the notifications that failed for good (with 'send again'). Every change goes through
cloud/attention/admin.py, as the API's do."""

import json
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from cloud.attention import admin
from cloud.attention.escalation import CATEGORIES, PolicyIn
from cloud.auth import DbSession
from cloud.console.pages import Viewer, ViewerDep, check_csrf, page, page_router, ward_choices
from cloud.errors import Forbidden, Invalid
from matthan.i18n import N_, Msg
from matthan_wire.codec import describe
from matthan_wire.timeutil import utc_now

router = page_router()
LEVEL_ROWS = 4

EXAMPLES = {
    "webhook": {"url": "https://ops.example.vn/matthan-hook", "secret": "at least 16 characters"},
    "email": {"to": ["truc-ban@phuong1.example.vn"], "attach_snapshot": True},
    "gateway": {
        "method": "POST",
        "url": "https://business.openapi.zalo.me/message/template",
        "headers": {"access_token": "<Zalo OA access token>"},
        "body": '{"phone": "84901234567", "template_id": "<approved ZNS template id>", '
        '"template_data": {"site": "{{site}}", "time": "{{time}}", "rule": "{{rule}}", "url": "{{url}}"}}',
    },
}


def _admin(v: Viewer) -> None:
    if v.principal.role != "admin":
        raise Forbidden(N_("escalation policies and notification endpoints are for administrators"))


@router.get("/console/escalation")
def escalation_page(
    request: Request, v: ViewerDep, session: DbSession, error: str | None = None
) -> HTMLResponse:
    _admin(v)
    policies = admin.list_policies(session)
    return page(
        request,
        "console/escalation.html",
        v,
        title=N_("Escalation"),
        nav="escalation",
        endpoints=admin.list_endpoints(session),
        policies=policies,
        failed=admin.notifications(session, "failed", 50),
        categories=CATEGORIES,
        wards=["*", *ward_choices(session, v)],
        level_rows=LEVEL_ROWS,
        examples={k: json.dumps(x, ensure_ascii=False, indent=1) for k, x in EXAMPLES.items()},
        error=error,
    )


@router.post("/console/escalation/endpoint")
def save_endpoint(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    name: Annotated[str, Form()],
    kind: Annotated[str, Form()],
    config: Annotated[str, Form()],
    endpoint_id: Annotated[str, Form()] = "",
    enabled: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    check_csrf(v, csrf_token)
    _admin(v)
    try:
        body = admin.EndpointIn.model_validate(
            {"name": name.strip(), "kind": kind, "config": json.loads(config), "enabled": bool(enabled)}
        )
    except json.JSONDecodeError as exc:
        raise Invalid(Msg("the endpoint's settings are not JSON: %(error)s", error=str(exc))) from None
    except ValidationError as exc:
        raise Invalid(describe(exc)) from None
    admin.save_endpoint(
        session,
        v.principal.label(),
        body,
        utc_now(),
        int(endpoint_id) if endpoint_id else None,
        sealer=request.app.state.sealer,
    )
    session.commit()
    return RedirectResponse("/console/escalation#endpoints", 303)


@router.post("/console/escalation/policy")
async def save_policy(request: Request, v: ViewerDep, session: DbSession) -> RedirectResponse:
    form = await request.form()
    check_csrf(v, str(form.get("csrf_token", "")))
    _admin(v)
    levels = []
    for i in range(LEVEL_ROWS):
        after = str(form.get(f"after_{i}", "")).strip()
        if not after:
            continue
        levels.append(
            {
                "after_min": after,
                "name": str(form.get(f"name_{i}", "")).strip(),
                "endpoints": [int(str(x)) for x in form.getlist(f"endpoints_{i}")],
            }
        )
    try:
        body = PolicyIn.model_validate(
            {"ward": form.get("ward"), "category": form.get("category"), "levels": levels}
        )
    except ValidationError as exc:
        raise Invalid(describe(exc)) from None
    admin.set_policy(session, v.principal.label(), body, utc_now())
    session.commit()
    return RedirectResponse("/console/escalation#policies", 303)


@router.post("/console/escalation/policy/{policy_id}/delete")
def delete_policy(
    policy_id: int, v: ViewerDep, session: DbSession, csrf_token: Annotated[str, Form()] = ""
) -> RedirectResponse:
    check_csrf(v, csrf_token)
    _admin(v)
    admin.delete_policy(session, v.principal.label(), policy_id)
    session.commit()
    return RedirectResponse("/console/escalation#policies", 303)


@router.post("/console/escalation/notification/{notification_id}/retry")
def retry(
    notification_id: int, v: ViewerDep, session: DbSession, csrf_token: Annotated[str, Form()] = ""
) -> RedirectResponse:
    check_csrf(v, csrf_token)
    _admin(v)
    admin.retry(session, v.principal.label(), notification_id, utc_now())
    session.commit()
    return RedirectResponse("/console/escalation#failed", 303)
