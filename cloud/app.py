"""The cloud service's composition root: `create_app(settings)` builds the FastAPI app; its
lifespan starts the parts in order (database + migrations, clip store, MQTT link, ingest, station
delivery, the attention worker) and stops them in reverse. Nothing connects before the lifespan starts.

Use the app inside its lifespan, e.g. `with TestClient(create_app(settings)) as client: …`.
"""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.exceptions import HTTPException

from cloud import console
from cloud.api import alerts, attention, config, devices, enrollment, evidence, health, media, session, users
from cloud.attention.sealing import Sealer
from cloud.attention.worker import AttentionWorker, attention_counts
from cloud.clipstore import open_store
from cloud.db import make_engine, migrate
from cloud.errors import CloudError
from cloud.ingest import IngestWorker
from cloud.language import request_language
from cloud.metrics import Metrics
from cloud.models import Device
from cloud.mqtt import MqttLink
from cloud.notify import Notifier
from cloud.retention import RetentionJob
from cloud.services.config import republish_on_connect
from cloud.settings import Settings
from cloud.station_delivery import StationDelivery
from cloud.throttle import LoginThrottle
from matthan import __version__
from matthan.i18n import Msg
from matthan_wire.timeutil import utc_now

log = logging.getLogger("matthan.cloud")

# Every router of the service, in the order they are included.
ROUTERS = [
    health.router,
    session.router,
    devices.router,
    config.router,
    alerts.router,
    media.router,
    attention.router,  # escalation policies, notification endpoints and queue
    evidence.router,  # evidence check and export, pins, the audit chain
    enrollment.router,  # claim tokens, enrollment, revocation, bulk import
    users.router,  # console and API users, for administrators
    console.router,  # the HTML console
]


def create_app(settings: Settings | None = None, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """`clock` drives the scheduled jobs (retention); tests pass one they control."""
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="matthan cloud",
        version=__version__,
        description="Fleet health, alerts and their lifecycle, clips, device configuration.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    # Built here so that a malformed endpoint key stops the start with its reason.
    app.state.sealer = Sealer.from_setting(settings.attention.endpoint_key)
    app.state.metrics = Metrics()
    app.state.notifier = Notifier()
    app.state.mqtt = None
    app.state.ingest = None
    app.state.attention = None
    app.state.clock = clock
    app.state.retention = None
    app.state.station_delivery = None
    app.state.login_throttle = LoginThrottle()
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(CloudError, _cloud_error)
    app.add_exception_handler(HTTPException, _http_error)
    return app


async def _cloud_error(request: Request, exc: Exception) -> JSONResponse:
    """The one place a cloud error becomes HTTP: its status, and its message as `detail` in the
    requester's language (cloud/language.py), which Content-Language names."""
    status = exc.status if isinstance(exc, CloudError) else 500
    lang = request_language(request)
    detail = exc.message(lang) if isinstance(exc, CloudError) else str(exc)
    return JSONResponse({"detail": detail}, status_code=status, headers={"Content-Language": lang})


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer to an HTTPException (headers kept: a redirect, WWW-Authenticate), its
    detail translated as a cloud error's is when it is a Msg (the sign-in and permission checks)."""
    assert isinstance(exc, HTTPException)
    if isinstance(exc.detail, Msg):
        exc = HTTPException(exc.status_code, exc.detail.translated(request_language(request)), exc.headers)
    return await http_exception_handler(request, exc)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = make_engine(settings.db_url)
    migrate(engine)
    app.state.engine = engine
    app.state.clip_store = open_store(settings.clips, settings.clips_dir, settings.s3_endpoint_url)
    app.state.metrics.watch_devices(lambda: _count_online(app))
    app.state.metrics.watch_attention(lambda: attention_counts(engine))
    link: MqttLink | None = None
    ingest: IngestWorker | None = None
    delivery: StationDelivery | None = None
    if settings.broker_url is not None:
        link = MqttLink(settings, "matthan-cloud")
        if settings.ingest:
            ingest = IngestWorker(
                settings, engine, link, app.state.clip_store, app.state.metrics, app.state.notifier
            )
            ingest.start()
        if settings.station_delivery:
            delivery = StationDelivery(settings, engine, link, app.state.metrics)
            delivery.start()
        republish_on_connect(link, engine)
        link.start()
    app.state.mqtt, app.state.ingest, app.state.station_delivery = link, ingest, delivery
    watcher: AttentionWorker | None = None
    if settings.attention.enabled:
        watcher = AttentionWorker(
            settings, engine, app.state.clip_store, app.state.notifier, sealer=app.state.sealer
        )
        watcher.start()
    app.state.attention = watcher
    retention = RetentionJob(engine, app.state.clip_store, settings, clock=app.state.clock)
    retention.start()
    app.state.retention = retention
    log.info(
        "cloud up db=%s broker=%s clips=%s ingest=%s",
        engine.url.render_as_string(hide_password=True),
        settings.broker_url,
        app.state.clip_store.describe(),
        ingest is not None,
    )
    try:
        yield
    finally:
        retention.stop()
        if watcher is not None:
            watcher.stop()
        if delivery is not None:
            delivery.stop()
        if ingest is not None:
            ingest.stop()
        if link is not None:
            link.stop()
        engine.dispose()
        log.info("cloud stopped")


def _count_online(app: FastAPI) -> int:
    with Session(app.state.engine) as s:
        return int(s.exec(select(func.count()).select_from(Device).where(Device.online)).one())
