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
from matthan.i18n import Joined, Msg
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
        raise Invalid(
            Msg(
                "line 1: missing column(s) %(missing)s; expected %(columns)s",
                missing=", ".join(missing),
                columns=", ".join(COLUMNS),
            )
        )
    reader.fieldnames = header
    errors: list[Msg] = []
    plans: dict[str, _Plan] = {}
    count = 0
    for raw in reader:
        line = reader.line_num
        count += 1
        if count > MAX_ROWS:
            raise Invalid(Msg("more than %(rows)d rows; split the file", rows=MAX_ROWS))
        cells = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(cells.values()):
            continue
        problems: list[Msg] = []
        device, ward = cells.get("device", ""), cells.get("ward", "")
        if not is_id(device):
            problems.append(Msg("device %(device)r is not an id ([a-z0-9-])", device=device))
        if not is_id(ward):
            problems.append(Msg("ward %(ward)r is not an id ([a-z0-9-])", ward=ward))
        lat = _number(cells.get("lat", ""), -90, 90, "lat", problems)
        lon = _number(cells.get("lon", ""), -180, 180, "lon", problems)
        if not cells.get("source"):
            problems.append(Msg("source is empty"))
        if not cells.get("site"):
            problems.append(Msg("site is empty"))
        for name, limit in MAX_TEXT.items():
            if len(cells.get(name, "")) > limit:
                problems.append(Msg("%(name)s is longer than %(limit)d characters", name=name, limit=limit))
        if None in raw:
            problems.append(Msg("more cells than columns (a comma inside an unquoted value?)"))
        plan = plans.get(device)
        if plan is not None and plan.ward != ward and not problems:
            problems.append(
                Msg(
                    "device %(device)s is in ward %(ward)s on line %(line)d",
                    device=device,
                    ward=plan.ward,
                    line=plan.rows[0].line,
                )
            )
        if problems:
            errors.append(Msg("line %(line)d: %(problems)s", line=line, problems=Joined("; ", problems)))
            continue
        row = _Row(line, cells["site"], cells.get("address") or None, ward, lat, lon, cells["source"], device)
        plans.setdefault(device, _Plan(ward)).rows.append(row)
    if errors:
        raise Invalid(Msg("nothing imported: %(errors)s", errors=Joined(" | ", errors)))
    if not plans:
        raise Invalid(Msg("no rows to import"))
    return plans


def _number(text: str, low: float, high: float, name: str, problems: list[Msg]) -> float:
    try:
        value = float(text)
    except ValueError:
        problems.append(Msg("%(name)s %(text)r is not a number", name=name, text=text))
        return 0.0
    if not math.isfinite(value) or not low <= value <= high:
        problems.append(
            Msg(
                "%(name)s %(value)s is outside [%(low)s, %(high)s]",
                name=name,
                value=value,
                low=f"{low:g}",
                high=f"{high:g}",
            )
        )
    return value


def import_csv(session: Session, text: str, by: str, ttl_hours: float = 72.0) -> ImportResult:
    """Add the devices, cameras and desired configs, and issue claim tokens (the caller commits)."""
    plans = parse_csv(text)
    errors: list[Msg] = []
    for device_id, plan in plans.items():
        existing = session.get(Device, device_id)
        if existing is None:
            continue
        line = plan.rows[0].line
        if existing.ward != plan.ward:
            errors.append(
                Msg(
                    "line %(line)d: device %(device)s is registered in ward %(ward)s",
                    line=line,
                    device=device_id,
                    ward=existing.ward,
                )
            )
        elif existing.cert_serial is not None or existing.revoked_at is not None:
            errors.append(
                Msg(
                    "line %(line)d: device %(device)s is already enrolled; change it in the console",
                    line=line,
                    device=device_id,
                )
            )
    if errors:
        raise Invalid(Msg("nothing imported: %(errors)s", errors=Joined(" | ", errors)))
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
