"""A device's site (its cameras) in the registry: the desired-config version and a camera row each."""

from sqlmodel import Session, select

from cloud.models import Camera, DesiredConfigRow, Device
from cloud.services.config import redact
from matthan_wire.config import SiteConfig
from matthan_wire.timeutil import utc_now


def latest_desired(session: Session, device_id: str) -> DesiredConfigRow | None:
    query = (
        select(DesiredConfigRow)
        .where(DesiredConfigRow.device_id == device_id)
        .order_by(DesiredConfigRow.version.desc())  # type: ignore[attr-defined]
    )
    return session.exec(query).first()


def store_site(
    session: Session, device: Device, site: SiteConfig, by: str
) -> tuple[list[Camera], DesiredConfigRow | None]:
    """A new desired-config version when the site changed (returned, to publish after the commit),
    and a registry row per camera with its stream URL redacted and its place (name, address, lat,
    lon) when the config gives one."""
    latest = latest_desired(session, device.id)
    body = site.model_dump(mode="json")
    row = None
    if latest is None or latest.body != body:
        version = (latest.version if latest else 0) + 1
        row = DesiredConfigRow(
            device_id=device.id, version=version, body=body, created_by=by, created_at=utc_now()
        )
        session.add(row)
        device.desired_version = version
        device.health_interval_s = site.health.interval_s
    session.add(device)
    cameras = []
    for cam in site.cameras:
        cam_row = session.get(Camera, (device.id, cam.id)) or Camera(device_id=device.id, id=cam.id)
        cam_row.source_redacted = redact(cam.detect_source)
        if cam.site is not None:
            # The registry keeps the place too: it fills the site of an alert sent without one.
            cam_row.site_name, cam_row.address = cam.site.name, cam.site.address
            cam_row.lat, cam_row.lon = cam.site.lat, cam.site.lon
        session.add(cam_row)
        cameras.append(cam_row)
    return cameras, row
