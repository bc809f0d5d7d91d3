"""The operations centre's web console: server-rendered pages over the cloud's services, one module
per page (auth, fleet, device, alerts, alert_page, handover, reports, escalation, audit, zones,
claims, users, account); `pages` holds what they share.

`router` is what cloud/app.py includes.
"""

from fastapi import APIRouter

from cloud.console import (
    account,
    alert_page,
    alerts,
    audit,
    auth,
    claims,
    device,
    escalation,
    fleet,
    handover,
    reports,
    users,
    zones,
)

router = APIRouter(include_in_schema=False)
# alerts before alert_page: its fixed paths (/console/alerts/card/…, /part/…) come first.
for _page in (
    auth,
    fleet,
    device,
    alerts,
    alert_page,
    handover,
    reports,
    escalation,
    audit,
    claims,
    users,
    zones,
    account,
):
    router.include_router(_page.router)

__all__ = ["router"]
