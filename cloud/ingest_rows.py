"""What each kind of device message becomes as a database row: an alert (a dict per row, or one
array per column for PostgreSQL's unnest), a snapshot's media row, a health sample; and the
registry's site of a camera whose alert came without one. Used by the batch writer
(cloud/ingest_write.py) and the parse of health messages (cloud/ingest_parse.py).
"""

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from cloud.models import Camera
from matthan_wire import Alert, Health

# (column, PostgreSQL array type) of a new alert, in alert_columns' order; JSON travels as text.
_ALERT_START_COLUMNS = (
    ("event_id", "text[]"),
    ("device_id", "text[]"),
    ("camera_id", "text[]"),
    ("ward", "text[]"),
    ("zone", "text[]"),
    ("rule", "text[]"),
    ("type", "text[]"),
    ("category", "text[]"),
    ("labels", "text[]::json[]"),
    ("object_count", "int[]"),
    ("score", "float8[]"),
    ("bbox", "text[]::json[]"),
    ("started_at", "timestamptz[]"),
    ("ended_at", "timestamptz[]"),
    ("seq", "int[]"),
    ("snapshot_topic", "text[]"),
    ("clip", "text[]::json[]"),
    ("site", "text[]::json[]"),
    ("site_name", "text[]"),
    ("zone_title", "text[]"),
    ("rule_title", "text[]"),
)
_ALERT_START_NAMES = ", ".join(f'"{c}"' for c, _ in _ALERT_START_COLUMNS)
_ALERT_START_ARRAYS = ", ".join(f"%b::{t}" for _, t in _ALERT_START_COLUMNS)
PG_ALERT_STARTS = (
    f"INSERT INTO alert ({_ALERT_START_NAMES}, state, received_at, updated_at)"
    f" SELECT *, 'new', %b, %b FROM unnest({_ALERT_START_ARRAYS})"
    " ON CONFLICT (event_id) DO NOTHING"
)


SiteKey = tuple[str, str]  # (device, camera)


def registry_sites(s: Session, alerts: list[Alert]) -> dict[SiteKey, dict[str, Any]]:
    """The registry's site of each camera whose alert came without one (an older device, or a
    camera whose site was set in the console or by import after the device's config was made)."""
    wanted = {(a.device_id, a.camera_id) for a in alerts if a.site is None}
    if not wanted:
        return {}
    devices = {d for d, _ in wanted}
    rows = s.exec(select(Camera).where(col(Camera.device_id).in_(devices))).all()
    return {
        (c.device_id, c.id): camera_site(c) for c in rows if (c.device_id, c.id) in wanted and c.site_name
    }


def camera_site(c: Camera) -> dict[str, Any]:
    return {"name": c.site_name, "address": c.address, "lat": c.lat, "lon": c.lon}


def _site_of(a: Alert, sites: dict[SiteKey, dict[str, Any]]) -> dict[str, Any] | None:
    if a.site is not None:
        return a.site.model_dump(mode="json")
    return sites.get((a.device_id, a.camera_id))


def alert_columns(alerts: Iterable[Alert], now: datetime, sites: dict[SiteKey, dict[str, Any]]) -> list[Any]:
    """The parameters of PG_ALERT_STARTS: the time, then one list per column (as alert_row)."""
    cols: list[list[Any]] = [[] for _ in _ALERT_START_COLUMNS]
    (
        event_id,
        device_id,
        camera_id,
        ward,
        zone,
        rule,
        type_,
        category,
        labels,
        object_count,
        score,
        bbox,
        started_at,
        ended_at,
        seq,
        snapshot_topic,
        clip,
        site,
        site_name,
        zone_title,
        rule_title,
    ) = cols
    dumps = json.dumps
    for a in alerts:
        event_id.append(a.event_id)
        device_id.append(a.device_id)
        camera_id.append(a.camera_id)
        ward.append(a.ward)
        zone.append(a.zone)
        rule.append(a.rule)
        type_.append(a.type)
        category.append(a.category)
        labels.append(dumps(list(a.labels)))
        object_count.append(a.object_count)
        score.append(a.score)
        bbox.append(dumps(list(a.bbox)) if a.bbox is not None else None)
        started_at.append(a.started_at)
        ended_at.append(a.ended_at)
        seq.append(a.seq)
        snapshot_topic.append(a.snapshot[:300] if a.snapshot else None)
        clip.append(dumps(a.clip.model_dump(mode="json")) if a.clip else None)
        where = _site_of(a, sites)
        site.append(dumps(where, ensure_ascii=False) if where else None)
        site_name.append(where["name"] if where else None)
        zone_title.append(a.zone_title)
        rule_title.append(a.rule_title)
    return [now, now, *cols]


def alert_row(a: Alert, now: datetime, sites: dict[SiteKey, dict[str, Any]]) -> dict[str, Any]:
    return {
        "event_id": a.event_id,
        "device_id": a.device_id,
        "camera_id": a.camera_id,
        "ward": a.ward,
        "zone": a.zone,
        "rule": a.rule,
        "type": a.type,
        "category": a.category,
        "labels": list(a.labels),
        "object_count": a.object_count,
        "score": a.score,
        "bbox": list(a.bbox) if a.bbox is not None else None,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "seq": a.seq,
        "snapshot_topic": a.snapshot[:300] if a.snapshot else None,
        "clip": a.clip.model_dump(mode="json") if a.clip else None,
        "site": (where := _site_of(a, sites)),
        "site_name": where["name"] if where else None,
        "zone_title": a.zone_title,
        "rule_title": a.rule_title,
        "state": "new",
        "received_at": now,
        "updated_at": now,
    }


def snapshot_row(device: str, event_id: str, key: str, jpeg: bytes, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "snapshot",
        "device_id": device,
        "size": len(jpeg),
        "sha256": hashlib.sha256(jpeg).hexdigest(),
        "offset": len(jpeg),
        "complete": True,
        "key": key,
        "created_at": now,
        "completed_at": now,
    }


SAMPLE_COLUMNS = (
    "device_id",
    "at",
    "cpu_pct",
    "mem_mb",
    "disk_free_mb",
    "temp_c",
    "outbox_depth",
    "upload_backlog",
    "cameras_up",
    "cameras_total",
)


def sample_row(h: Health) -> tuple[Any, ...]:
    """A health_sample row, in SAMPLE_COLUMNS order."""
    cameras = h.cameras
    return (
        h.device_id,
        h.at,
        h.cpu_pct,
        h.mem_mb,
        h.disk_free_mb,
        h.temp_c,
        h.outbox_depth,
        h.upload_backlog,
        sum(1 for c in cameras if c.stream_up),
        len(cameras),
    )
