"""`matthan provision check --config FILE`: the commissioning checklist a technician runs at the pole.

Each item ends pass, warn or fail with a one-line reason; progress goes to stderr while it runs,
the table to stdout (provisioning/check_report.py, in the technician's language), the exit code is
non-zero on any fail, and the report is sent to the cloud (with the device's own upload token) so
the console shows who commissioned the device and when.

Items: certificate, camera(s) (check_camera.py), model, broker (check_broker.py), cloud, clock,
disk, CPU temperature. The clock is compared with the Date header of the cloud's answer: evidence
timestamps depend on it, and a clock far off also breaks TLS (certificates look expired or not yet
valid).
"""

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import TextIO

import httpx
import numpy as np

from matthan.i18n import Joined, Msg, _
from matthan_wire.config import CameraConfig, DeviceConfig
from matthan_wire.timeutil import utc_now
from provisioning import pki
from provisioning.check_broker import check_broker
from provisioning.check_camera import check_stream
from provisioning.check_report import MARKS, NETWORK_TIMEOUT_S, Checked, Status, item_name

CLOCK_WARN_S = 2.0
# Past this the device's evidence timestamps are worthless and TLS validity checks misfire.
CLOCK_FAIL_S = 30.0
DATE_LAG_S = 1.0
CERT_WARN_DAYS = 14
TEMP_WARN_C, TEMP_FAIL_C = 70.0, 85.0

Clock = Callable[[], datetime]


@dataclass
class _State:
    """What one item learns that a later one uses: the camera's frame, the cloud's Date header."""

    frame: np.ndarray | None = None
    cloud_date: datetime | None = None
    local_at_answer: datetime | None = None  # our clock when the cloud's answer arrived
    cloud_rtt_s: float | None = None
    cloud_error: str | None = None


@dataclass
class Checklist:
    config: DeviceConfig
    clock: Clock = utc_now
    progress: TextIO | None = None
    state: _State = field(default_factory=_State)

    def items(self) -> list[tuple[str, Callable[[], Checked]]]:
        cams: list[tuple[str, Callable[[], Checked]]] = []
        for c in self.config.cameras:
            if c.detect_source == c.record_source:
                cams.append((f"camera {c.id}", partial(self.camera, c.id, c.detect_source, "both", c)))
            else:
                for role, src in (("detect", c.detect_source), ("record", c.record_source)):
                    cams.append((f"camera {c.id} {role}", partial(self.camera, c.id, src, role, c)))
        return [
            ("certificate", self.certificate),
            *cams,
            ("model", self.model),
            ("broker", partial(check_broker, self.config)),
            ("cloud", self.cloud),
            ("clock", self.clock_offset),
            ("disk", self.disk),
            ("cpu temperature", self.temperature),
        ]

    def run(self) -> list[Checked]:
        todo = self.items()
        done: list[Checked] = []
        for i, (name, fn) in enumerate(todo, 1):
            self._say(f"[{i}/{len(todo)}] {item_name(name)} … ")
            started = time.perf_counter()
            try:
                item = fn()
            except Exception as exc:  # one broken check must not hide the others
                item = Checked(name, "fail", f"{exc.__class__.__name__}: {exc}")
            if item.ms is None:
                item = replace(item, ms=round((time.perf_counter() - started) * 1000, 1))
            self._say(f"{_(MARKS[item.status]).lower()}\n")
            done.append(item)
        return done

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.write(text)
            self.progress.flush()

    # -- items --------------------------------------------------------------------------------

    def certificate(self) -> Checked:
        b = self.config.broker
        if b.cert is None or b.ca is None:
            return Checked("certificate", "fail", Msg("no certificate configured (not enrolled?)"))
        cert, ca = pki.load_cert(Path(b.cert)), pki.load_cert(Path(b.ca))
        now = self.clock()
        problem = pki.verify_chain(cert, ca, at=now)
        name = pki.common_name(cert)
        if problem:
            return Checked("certificate", "fail", f"{name}: {problem}")
        if name != self.config.device.id:
            detail = Msg(
                "certificate is for %(cert)r, config says %(config)r", cert=name, config=self.config.device.id
            )
            return Checked("certificate", "fail", detail)
        left = cert.not_valid_after_utc - now
        valid = Msg(
            "%(name)s, valid until %(day)s (%(days)d days)",
            name=name,
            day=f"{cert.not_valid_after_utc:%Y-%m-%d}",
            days=left.days,
        )
        if left < timedelta(days=CERT_WARN_DAYS):
            return Checked("certificate", "warn", Joined("; ", [valid, Msg("renew soon")]))
        return Checked("certificate", "pass", valid)

    def camera(
        self, camera_id: str, source: str, role: str = "both", camera: CameraConfig | None = None
    ) -> Checked:
        name = f"camera {camera_id}" + ("" if role == "both" else f" {role}")
        camera = camera or next((c for c in self.config.cameras if c.id == camera_id), None)
        item, frame = check_stream(name, source, role, camera)
        if frame is not None:
            self.state.frame = frame  # the model item detects on it
        return item

    def model(self) -> Checked:
        from device.config_file import model_of
        from device.detector import load_detector

        model = model_of(self.config)
        detector = load_detector(model)
        image = self.state.frame
        blank = image is None
        if image is None:
            image = np.zeros((300, 300, 3), np.uint8)
        detector.detect(image)  # first run allocates; time the second, as in service
        started = time.perf_counter()
        found = detector.detect(image)
        ms = (time.perf_counter() - started) * 1000
        detail = Msg(
            "%(model)s on %(delegate)s: %(ms)s ms, %(count)d object(s)",
            model=detector.model_name,
            delegate=detector.delegate,
            ms=f"{ms:.1f}",
            count=len(found),
        )
        if blank:
            detail = Msg("%(detail)s (on a blank image: no camera frame)", detail=detail)
        return Checked("model", "warn" if blank else "pass", detail, ms=round(ms, 1))

    def cloud(self) -> Checked:
        if self.config.cloud is None:
            return Checked("cloud", "fail", Msg("no cloud configured"))
        url = self.config.cloud.url.rstrip("/") + "/healthz"
        verify: str | bool = self.config.cloud.ca or True
        try:
            sent = time.perf_counter()
            resp = httpx.get(url, timeout=NETWORK_TIMEOUT_S, verify=verify)
            rtt = time.perf_counter() - sent
            self.state.local_at_answer = self.clock()
        except httpx.HTTPError as exc:
            self.state.cloud_error = f"{exc.__class__.__name__}: {exc}"
            return Checked("cloud", "fail", f"{url}: {self.state.cloud_error}")
        self.state.cloud_rtt_s = rtt
        date = resp.headers.get("date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.state.cloud_date = parsedate_to_datetime(date).astimezone(UTC)
        status: Status = "pass" if resp.status_code == 200 else "fail"
        detail = Msg(
            "%(url)s: HTTP %(status)d in %(ms)s ms", url=url, status=resp.status_code, ms=f"{rtt * 1000:.0f}"
        )
        return Checked("cloud", status, detail)

    def clock_offset(self) -> Checked:
        if self.state.cloud_date is None or self.state.local_at_answer is None:
            why = self.state.cloud_error or Msg("the cloud sent no Date header")
            return Checked("clock", "fail", Msg("cannot compare with the cloud: %(why)s", why=why))
        # The Date header was stamped about half a round trip before the answer arrived. It has
        # one-second resolution, and uvicorn (our cloud) refreshes it once a second, so it lags the
        # server's clock by 0 to 2 s: take the middle, 1 s, and accept ±1 s of uncertainty.
        ours = self.state.local_at_answer - timedelta(seconds=(self.state.cloud_rtt_s or 0.0) / 2)
        offset = (ours - self.state.cloud_date).total_seconds() - DATE_LAG_S
        size = abs(offset)
        detail = Msg("%(offset)s s against the cloud", offset=f"{offset:+.1f}")
        if size > CLOCK_FAIL_S:
            return Checked("clock", "fail", Joined("; ", [detail, Msg("fix NTP before commissioning")]))
        if size > CLOCK_WARN_S:
            over = Msg("%(detail)s (more than %(s)s s)", detail=detail, s=f"{CLOCK_WARN_S:g}")
            return Checked("clock", "warn", over)
        return Checked("clock", "pass", detail)

    def disk(self) -> Checked:
        path = Path(self.config.storage.path)
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_mb = shutil.disk_usage(probe).free / 2**20
        need = self.config.storage.budget_mb + self.config.storage.min_free_mb
        detail = Msg(
            "%(free)s MB free at %(path)s (budget %(budget)s MB)",
            free=f"{free_mb:.0f}",
            path=str(probe),
            budget=self.config.storage.budget_mb,
        )
        if free_mb < self.config.storage.min_free_mb:
            return Checked("disk", "fail", detail)
        return Checked("disk", "warn" if free_mb < need else "pass", detail)

    def temperature(self) -> Checked:
        temp = cpu_temperature()
        if temp is None:
            return Checked("cpu temperature", "warn", Msg("no temperature sensor readable"))
        status: Status = "fail" if temp >= TEMP_FAIL_C else "warn" if temp >= TEMP_WARN_C else "pass"
        return Checked("cpu temperature", status, f"{temp:.1f} °C")


def cpu_temperature() -> float | None:
    zone = Path("/sys/class/thermal/thermal_zone0/temp")
    try:
        return int(zone.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        pass
    import psutil  # type: ignore[import-untyped]

    read = getattr(psutil, "sensors_temperatures", None)
    temps = read() if read else {}
    for entries in temps.values():
        for entry in entries:
            if entry.current:
                return float(entry.current)
    return None
