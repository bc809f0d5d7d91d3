"""Bulk import of cameras from CSV: registry entries and one claim token per device.

Columns: site, ward, lat, lon, source, device, and optionally address (header row required, any
order; UTF-8, so a site may be named "Ngã tư Bến Thành"). Several rows
with the same device are that device's cameras, named cam-1, cam-2, … in file order. Every row
is checked before anything is written; one bad row means nothing is imported, and the error
names each bad line.
"""

import csv
import io
import math
from dataclasses import dataclass, field

from sqlmodel import Session

from cloud.errors import Invalid
from cloud.models import Device
from cloud.registry.claims import issue_claim
from cloud.registry.sites import store_site
from matthan_wire.config import CameraConfig, Site, SiteConfig
from matthan_wire.enrollment import ImportResult
from matthan_wire.ids import is_id

COLUMNS = ("site", "ward", "lat", "lon", "source", "device")
OPTIONAL = ("address",)
MAX_TEXT = {"site": 200, "address": 500}
MAX_ROWS = 20_000


@dataclass
class _Row:
    line: int
    site: str
    address: str | None
    ward: str
    lat: float
    lon: float
    source: str
    device: str


@dataclass
class _Plan:
    ward: str
    rows: list[_Row] = field(default_factory=list)


def parse_csv(text: str) -> dict[str, _Plan]:
    """Rows grouped by device, or Invalid listing every bad line."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise Invalid(f"line 1: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    reader.fieldnames = header
    errors: list[str] = []
    plans: dict[str, _Plan] = {}
    count = 0
    for raw in reader:
        line = reader.line_num
        count += 1
        if count > MAX_ROWS:
            raise Invalid(f"more than {MAX_ROWS} rows; split the file")
        cells = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(cells.values()):
            continue
        problems = []
        device, ward = cells.get("device", ""), cells.get("ward", "")
        if not is_id(device):
            problems.append(f"device {device!r} is not an id ([a-z0-9-])")
        if not is_id(ward):
            problems.append(f"ward {ward!r} is not an id ([a-z0-9-])")
        lat = _number(cells.get("lat", ""), -90, 90, "lat", problems)
        lon = _number(cells.get("lon", ""), -180, 180, "lon", problems)
        if not cells.get("source"):
            problems.append("source is empty")
        if not cells.get("site"):
            problems.append("site is empty")
        for name, limit in MAX_TEXT.items():
            if len(cells.get(name, "")) > limit:
                problems.append(f"{name} is longer than {limit} characters")
        if None in raw:
            problems.append("more cells than columns (a comma inside an unquoted value?)")
        plan = plans.get(device)
        if plan is not None and plan.ward != ward and not problems:
            problems.append(f"device {device} is in ward {plan.ward} on line {plan.rows[0].line}")
        if problems:
            errors.append(f"line {line}: {'; '.join(problems)}")
            continue
        row = _Row(line, cells["site"], cells.get("address") or None, ward, lat, lon, cells["source"], device)
        plans.setdefault(device, _Plan(ward)).rows.append(row)
    if errors:
        raise Invalid("nothing imported: " + " | ".join(errors))
    if not plans:
        raise Invalid("no rows to import")
    return plans


def _number(text: str, low: float, high: float, name: str, problems: list[str]) -> float:
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{name} {text!r} is not a number")
        return 0.0
    if not math.isfinite(value) or not low <= value <= high:
        problems.append(f"{name} {value} is outside [{low:g}, {high:g}]")
    return value


def import_csv(session: Session, text: str, by: str, ttl_hours: float = 72.0) -> ImportResult:
    """Add the devices, cameras and desired configs, and issue claim tokens (the caller commits)."""
    plans = parse_csv(text)
    errors = []
    for device_id, plan in plans.items():
        existing = session.get(Device, device_id)
        if existing is None:
            continue
        where = f"line {plan.rows[0].line}"
        if existing.ward != plan.ward:
            errors.append(f"{where}: device {device_id} is registered in ward {existing.ward}")
        elif existing.cert_serial is not None or existing.revoked_at is not None:
            errors.append(f"{where}: device {device_id} is already enrolled; change it in the console")
    if errors:
        raise Invalid("nothing imported: " + " | ".join(errors))
    tokens = []
    cameras = 0
    for device_id, plan in plans.items():
        device = session.get(Device, device_id) or Device(id=device_id, ward=plan.ward)
        # The place goes into the desired config too: the device then sends it with every alert.
        site = SiteConfig(
            cameras=[
                CameraConfig(
                    id=f"cam-{i}",
                    source=row.source,
                    site=Site(name=row.site, address=row.address, lat=row.lat, lon=row.lon),
                )
                for i, row in enumerate(plan.rows, 1)
            ]
        )
        session.add(device)
        cameras += len(store_site(session, device, site, by=by)[0])
        tokens.append(issue_claim(session, plan.ward, device_id, ttl_hours, by))
    return ImportResult(devices=len(plans), cameras=cameras, tokens=tokens)
