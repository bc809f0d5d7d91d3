"""The district's report: alerts per day by category and ward, response times, false alarms."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from cloud.auth import DbSession
from cloud.console.alerts import stats
from cloud.console.pages import ViewerDep, page, page_router, ward_choices, zone_of
from matthan.i18n import N_
from matthan_wire.ids import QUERY_TEXT

router = page_router()


@router.get("/console/reports")
def reports(
    request: Request,
    v: ViewerDep,
    session: DbSession,
    ward: Annotated[str | None, Query(max_length=63, pattern=QUERY_TEXT)] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> HTMLResponse:
    figures = stats(session, v, ward or None, days, zone_of(request))
    return page(
        request,
        "console/reports.html",
        v,
        title=N_("Report"),
        nav="reports",
        stats=figures,
        filters={"ward": ward or ""},
        wards=ward_choices(session, v),
    )
