"""Config distribution: a device's desired config (validated with the same SiteConfig model the
device uses) → version + 1 stored → published retained on config/desired. The reported version
arrives over MQTT (cloud.ingest); `in_sync` compares the two.

After every (re)connect the cloud publishes each device's newest desired config again: the broker
is not the system of record, and a broker that lost its retained store must not leave a device
without its configuration.
"""

import logging
import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from cloud import audit
from cloud.auth import Principal
from cloud.errors import Conflict
from cloud.models import Camera, DesiredConfigRow, Device
from cloud.mqtt import MqttLink
from matthan.i18n import Msg
from matthan_wire import DesiredConfig, Kind, encode
from matthan_wire.config import SiteConfig
from matthan_wire.timeutil import utc_now
from matthan_wire.topics import device_topic

log = logging.getLogger("matthan.cloud.config")


class ConfigState(BaseModel):
    device_id: str
    desired_version: int | None
    reported_version: int | None
    reported_status: str | None
    reported_error: str | None
    reported_at: datetime | None
    in_sync: bool | None
    published: bool | None = None
    config: SiteConfig | None = None
    created_by: str | None = None
    created_at: datetime | None = None


def sync_fields(d: Device) -> dict[str, Any]:
    """The device's desired and reported config versions and whether they agree (None while no
    desired config was ever set): the part of every device read model that speaks of its config."""
    return dict(
        desired_version=d.desired_version,
        reported_version=d.reported_version,
        reported_status=d.reported_status,
        reported_error=d.reported_error,
        in_sync=None if d.desired_version is None else d.desired_version == d.reported_version,
    )


def config_state(d: Device, row: DesiredConfigRow | None, published: bool | None = None) -> ConfigState:
    return ConfigState(
        device_id=d.id,
        **sync_fields(d),
        reported_at=d.reported_at,
        published=published,
        config=SiteConfig.model_validate(row.body) if row else None,
        created_by=row.created_by if row else None,
        created_at=row.created_at if row else None,
    )


def get_config(session: Session, principal: Principal, d: Device) -> ConfigState:
    """The device's config as `principal` may see it: camera credentials only for admins and operators."""
    row = session.get(DesiredConfigRow, (d.id, d.desired_version)) if d.desired_version else None
    state = config_state(d, row)
    # Camera URLs carry the camera's password; a ward officer sees where, not how to log in.
    if state.config is not None and principal.role not in ("admin", "operator"):
        cameras = [c.with_sources(redact) for c in state.config.cameras]
        state = state.model_copy(update={"config": state.config.model_copy(update={"cameras": cameras})})
    return state


def current_site_config(session: Session, device: Device) -> dict[str, Any] | None:
    """The device's newest desired config (what an editor starts from), or None if it has none."""
    if device.desired_version is None:
        return None
    row = session.get(DesiredConfigRow, (device.id, device.desired_version))
    return dict(row.body) if row is not None else None


def set_config(
    session: Session, principal: Principal, d: Device, body: SiteConfig, link: MqttLink | None
) -> ConfigState:
    """Store `body` as the device's next desired version (committed), then publish it retained."""
    if d.revoked_at is not None:
        raise Conflict(Msg("device %(device)s is revoked", device=d.id))
    latest = session.exec(
        select(func.max(DesiredConfigRow.version)).where(DesiredConfigRow.device_id == d.id)
    ).one()
    version = int(latest or 0) + 1
    now = utc_now()
    row = DesiredConfigRow(
        device_id=d.id,
        version=version,
        body=body.model_dump(mode="json"),
        created_by=principal.label(),
        created_at=now,
    )
    d.desired_version = version
    d.health_interval_s = body.health.interval_s
    session.add(row)
    session.add(d)
    _sync_cameras(session, d.id, body)
    audit.record(session, principal.label(), "config.set", d.id, version=version)
    # Committed before publishing: a device must never run a version the database does not have.
    session.commit()
    published = publish_desired(link, d, row)
    return config_state(d, row, published)


def publish_desired(link: MqttLink | None, d: Device, row: DesiredConfigRow) -> bool:
    if link is None:
        return False
    msg = DesiredConfig(
        version=row.version, issued_at=row.created_at, config=SiteConfig.model_validate(row.body)
    )
    return link.publish(device_topic(Kind.CONFIG_DESIRED, d.ward, d.id), encode(msg), qos=1, retain=True)


def _sync_cameras(session: Session, device_id: str, config: SiteConfig) -> None:
    for cam in config.cameras:
        row = session.get(Camera, (device_id, cam.id)) or Camera(device_id=device_id, id=cam.id)
        row.site_name = row.site_name or cam.name
        row.source_redacted = redact(cam.detect_source)
        if cam.site is not None:
            # Set in the console's config editor: the registry fills alerts sent without a site.
            row.site_name, row.address, row.lat, row.lon = (
                cam.site.name,
                cam.site.address,
                cam.site.lat,
                cam.site.lon,
            )
        session.add(row)


def redact(source: str) -> str:
    """A stream URL without its user and password."""
    parts = urlsplit(source)
    if parts.password is None and parts.username is None:
        return source[:500]
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))[:500]


def republish_on_connect(link: MqttLink, engine: Engine) -> None:
    def hook() -> None:
        # Off the network thread: a database query must not stall MQTT.
        threading.Thread(
            target=_republish_all, args=(link, engine), name="config-republish", daemon=True
        ).start()

    link.on_connect(hook)


def _republish_all(link: MqttLink, engine: Engine) -> None:
    try:
        with Session(engine) as s:
            rows: list[Any] = list(
                s.exec(
                    select(Device, DesiredConfigRow).join(
                        DesiredConfigRow,
                        (DesiredConfigRow.device_id == Device.id)  # type: ignore[arg-type]
                        & (DesiredConfigRow.version == Device.desired_version),
                    )
                ).all()
            )
        for device, row in rows:
            if device.revoked_at is None:
                publish_desired(link, device, row)
        if rows:
            log.info("republished desired config of %d devices", len(rows))
    except Exception as exc:  # a broken database at connect time must not kill the link
        log.warning("could not republish desired configs: %s", str(exc).splitlines()[0][:200])
