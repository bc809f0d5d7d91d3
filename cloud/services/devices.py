"""The fleet: devices (filter by ward and online), one device with its health history, cameras,
wards. Every query is scoped to the caller's ward. The device read models here are the ones the API
serves; the console extends `DeviceOut` with its judgement (cloud/console/views.py)."""

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Integer, func
from sqlmodel import Session, col, select

from cloud import audit
from cloud.auth import Principal, get_in_ward, scope_ward
from cloud.errors import Conflict
from cloud.models import Camera, Device, HealthLatest, HealthSample, Ward
from cloud.mqtt import MqttLink
from cloud.services.config import sync_fields
from matthan.i18n import Msg
from matthan_wire import Command, Kind, encode
from matthan_wire.ids import Id
from matthan_wire.payloads import CONFIRM_VIEW
from matthan_wire.timeutil import utc_now
from matthan_wire.topics import device_topic

log = logging.getLogger("matthan.cloud.devices")


class HealthSummary(BaseModel):
    at: datetime
    cpu_pct: float
    mem_mb: float
    disk_free_mb: float
    temp_c: float | None
    outbox_depth: int
    upload_backlog: int
    cameras_up: int
    cameras_total: int


class DeviceOut(BaseModel):
    """One device as the API lists it and the console's fleet table starts from."""

    id: str
    ward: str
    online: bool
    last_seen: datetime | None
    status_at: datetime | None
    enrolled: bool
    revoked_at: datetime | None
    commissioned_by: str | None
    commissioned_at: datetime | None
    desired_version: int | None
    reported_version: int | None
    reported_status: str | None
    reported_error: str | None
    in_sync: bool | None  # None while no desired config was ever set
    agent_version: str | None
    health: HealthSummary | None = None

    @property
    def state(self) -> str:
        """online | offline | never (reported) | revoked: `online` is the ingest's verdict."""
        if self.revoked_at is not None:
            return "revoked"
        return "online" if self.online else ("never" if self.last_seen is None else "offline")


class DeviceList(BaseModel):
    items: list[DeviceOut]
    total: int


class CameraOut(BaseModel):
    id: str
    site_name: str | None
    address: str | None = None
    lat: float | None
    lon: float | None
    source_redacted: str | None


class DeviceDetail(DeviceOut):
    health_latest: dict[str, Any] | None
    health_history: list[HealthSummary]
    cameras: list[CameraOut]
    check_report: dict[str, Any] | None


def device_fields(d: Device, latest: HealthLatest | None) -> dict[str, Any]:
    """The read model's fields, for DeviceOut and the models that extend it."""
    return dict(
        id=d.id,
        ward=d.ward,
        online=d.online,
        last_seen=d.last_seen,
        status_at=d.status_at,
        enrolled=d.api_token_hash is not None,
        revoked_at=d.revoked_at,
        commissioned_by=d.commissioned_by,
        commissioned_at=d.commissioned_at,
        **sync_fields(d),
        agent_version=d.agent_version,
        health=_summary(latest.body) if latest else None,
    )


def device_out(d: Device, latest: HealthLatest | None) -> DeviceOut:
    return DeviceOut(**device_fields(d, latest))


def _summary(body: dict[str, Any]) -> HealthSummary:
    cams = body.get("cameras") or []
    return HealthSummary(
        at=body["at"],
        cpu_pct=body["cpu_pct"],
        mem_mb=body["mem_mb"],
        disk_free_mb=body["disk_free_mb"],
        temp_c=body.get("temp_c"),
        outbox_depth=body["outbox_depth"],
        upload_backlog=body["upload_backlog"],
        cameras_up=sum(1 for c in cams if c.get("stream_up")),
        cameras_total=len(cams),
    )


def get_device(session: Session, principal: Principal, device_id: str) -> Device:
    """The device row, if `principal` may see it (another ward's device is 'not found')."""
    return get_in_ward(
        session, principal, Device, device_id, Msg("no device %(device)s", device=device_id[:64])
    )


def list_devices(
    session: Session, principal: Principal, ward: str | None, online: bool | None, limit: int, offset: int
) -> DeviceList:
    ward = scope_ward(principal, ward)
    q = select(Device)
    if ward is not None:
        q = q.where(Device.ward == ward)
    if online is not None:
        q = q.where(Device.online == online)
    total = session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = session.exec(q.order_by(Device.ward, Device.id).offset(offset).limit(limit)).all()
    latest = {
        h.device_id: h
        for h in session.exec(
            select(HealthLatest).where(col(HealthLatest.device_id).in_([d.id for d in rows]))
        )
    }
    return DeviceList(items=[device_out(d, latest.get(d.id)) for d in rows], total=int(total))


def device_detail(
    session: Session, principal: Principal, device_id: str, hours: float, max_points: int
) -> DeviceDetail:
    d = get_device(session, principal, device_id)
    latest = session.get(HealthLatest, d.id)
    since = utc_now() - timedelta(hours=hours)
    samples = session.exec(
        select(HealthSample)
        .where(HealthSample.device_id == d.id, col(HealthSample.at) >= since)
        .order_by(col(HealthSample.at).desc())
        .limit(max_points)
    ).all()
    cams = session.exec(select(Camera).where(Camera.device_id == d.id).order_by(Camera.id)).all()
    base = device_out(d, latest)
    return DeviceDetail(
        **base.model_dump(),
        health_latest=latest.body if latest else None,
        health_history=[
            HealthSummary(**s.model_dump(exclude={"id", "device_id"})) for s in reversed(samples)
        ],
        cameras=[CameraOut(**c.model_dump(exclude={"device_id"})) for c in cams],
        check_report=d.check_report,
    )


class CameraIn(BaseModel):
    site_name: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=500)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


def set_camera(
    session: Session, principal: Principal, device_id: str, camera_id: str, body: CameraIn
) -> CameraOut:
    """A camera's site name, address and map position (committed, audited); alerts sent without a
    site get this one."""
    get_device(session, principal, device_id)
    cam = session.get(Camera, (device_id, camera_id)) or Camera(device_id=device_id, id=camera_id)
    cam.site_name, cam.address, cam.lat, cam.lon = body.site_name, body.address, body.lat, body.lon
    session.add(cam)
    audit.record(session, principal.label(), "camera.set", f"{device_id}/{camera_id}", **body.model_dump())
    session.commit()
    return CameraOut(**cam.model_dump(exclude={"device_id"}))


class CommandSent(BaseModel):
    command_id: str
    # False: the cloud has no broker connection now; nothing was sent, try again.
    published: bool


def confirm_view(
    session: Session, principal: Principal, device_id: str, camera_id: str, link: MqttLink | None
) -> CommandSent:
    """Send the `confirm-view` command: the device makes the camera's current view its tamper
    reference (audited; committed before it is sent)."""
    d = get_device(session, principal, device_id)
    if d.revoked_at is not None:
        raise Conflict(Msg("device %(device)s is revoked", device=device_id))
    cmd = Command(id=str(uuid.uuid4()), name=CONFIRM_VIEW, camera_id=camera_id, at=utc_now())
    audit.record(session, principal.label(), "camera.confirm_view", f"{d.id}/{camera_id}", command=cmd.id)
    session.commit()
    published = link is not None and link.publish(device_topic(Kind.CMD, d.ward, d.id), encode(cmd), qos=1)
    log.info(
        "event=confirm_view device=%s camera=%s command=%s by=%s published=%s",
        d.id, camera_id, cmd.id, principal.name, published,
    )  # fmt: skip
    return CommandSent(command_id=cmd.id, published=published)


class WardOut(BaseModel):
    id: str
    name: str | None
    devices: int
    online: int


def wards(session: Session, principal: Principal) -> list[WardOut]:
    own = scope_ward(principal, None)
    q = select(Device.ward, func.count(), func.sum(func.cast(col(Device.online), Integer))).group_by(
        Device.ward
    )
    if own is not None:
        q = q.where(Device.ward == own)
    counts = {w: (int(n), int(on or 0)) for w, n, on in session.exec(q).all()}
    names = {w.id: w.name for w in session.exec(select(Ward)).all()}
    ids = sorted(set(counts) | ({own} & set(names) if own else set(names)))
    return [
        WardOut(id=w, name=names.get(w), devices=counts.get(w, (0, 0))[0], online=counts.get(w, (0, 0))[1])
        for w in ids
    ]


class WardIn(BaseModel):
    id: Id
    name: str | None = Field(default=None, max_length=200)


def set_ward(session: Session, principal: Principal, body: WardIn) -> WardOut:
    ward = session.get(Ward, body.id) or Ward(id=body.id)
    ward.name = body.name
    session.add(ward)
    audit.record(session, principal.label(), "ward.set", body.id, name=body.name)
    session.commit()
    return WardOut(id=ward.id, name=ward.name, devices=0, online=0)
