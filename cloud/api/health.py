"""Liveness and metrics."""

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from cloud.db import check_connection

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Service health: database reachable, workers alive, broker connected")
def healthz(request: Request, response: Response) -> dict[str, object]:
    try:
        ping = check_connection(request.app.state.engine)
        request.app.state.metrics.db_ping_seconds.set(ping)
        db_ok = True
    except SQLAlchemyError:
        db_ok, ping = False, None
    link = request.app.state.mqtt
    broker = None if link is None else link.connected
    ingest = request.app.state.ingest
    # A dead writer means nothing is stored any more while the broker keeps delivering: red.
    dead = [] if ingest is None else ingest.dead_workers()
    # Without it a station that missed an alert in a broker crash never gets it: red as well.
    delivery = request.app.state.station_delivery
    if delivery is not None and not delivery.alive:
        dead.append("station-delivery")
    # The escalation worker dead would silence every notification and outage alert: red too.
    attention = request.app.state.attention
    if attention is not None and not attention.alive:
        dead.append("attention")
    # A dead retention job deletes nothing any more: personal data kept past its purpose. Red.
    retention = request.app.state.retention
    if retention is not None and not retention.alive:
        dead.append("retention")
    ok = db_ok and not dead
    if not ok:
        response.status_code = 503
    return {"ok": ok, "db": db_ok, "db_ping_s": ping, "broker_connected": broker, "dead_workers": dead}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    link = request.app.state.mqtt
    m.broker_connected.set(1 if link is not None and link.connected else 0)
    if request.app.state.ingest is not None:
        m.queue_depth.set(request.app.state.ingest.queue.qsize())
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
