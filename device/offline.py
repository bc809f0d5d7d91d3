"""`camera_offline` alerts: a camera whose stream is lost past its debounce is itself an alert.

Someone may be disabling cameras on purpose (docs/lessons.md #5: cameras that go dark silently), so a
lost stream is a security_order alert like any other, sent through the outbox, with an end when
frames come back. A short blip (a reconnect within `offline_debounce_s`) raises nothing.
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from device.camera_alert import camera_alert
from device.camera_worker import CameraStats
from device.events import DetectedEvent
from matthan_wire import Alert, utc_now
from matthan_wire.config import CameraConfig, DeviceIdentity

log = logging.getLogger("matthan.device.offline")

# A stream that says it is up but has delivered nothing for this long is down too (a frozen RTSP
# session keeps its socket open).
FROZEN_S = 10.0
RULE = "camera_offline"


@dataclass
class _State:
    down_since: float | None = None  # monotonic
    down_since_utc: datetime | None = None
    open_alert: Alert | None = None


class OfflineWatch:
    def __init__(
        self,
        device: DeviceIdentity,
        next_seq: Callable[[], int],
        on_event: Callable[[DetectedEvent], None],
    ) -> None:
        self.device = device
        self.next_seq = next_seq
        self.on_event = on_event
        self._cams: dict[str, _State] = {}

    def check(self, camera: CameraConfig, stats: CameraStats | None, now: float) -> None:
        """Called periodically per camera with its stats (None: not running) and monotonic now."""
        st = self._cams.setdefault(camera.id, _State())
        if _is_down(stats):
            if st.down_since is None:
                st.down_since = now
                st.down_since_utc = utc_now()
            if st.open_alert is None and now - st.down_since >= camera.offline_debounce_s:
                assert st.down_since_utc is not None
                st.open_alert = self._alert(camera.id, st.down_since_utc, None)
                log.warning(
                    "camera offline device=%s camera=%s event=%s down_for=%.0fs",
                    self.device.id,
                    camera.id,
                    st.open_alert.event_id,
                    now - st.down_since,
                )
                self.on_event(DetectedEvent(st.open_alert, None))
            return
        st.down_since = None
        st.down_since_utc = None
        if st.open_alert is not None:
            self._end(camera.id, st, "stream back")

    def forget(self, camera_id: str) -> None:
        """A camera removed from the config: close its open alert (nobody watches it any more)."""
        st = self._cams.pop(camera_id, None)
        if st is not None and st.open_alert is not None:
            self._end(camera_id, st, "camera removed from config")

    def open_alerts(self) -> dict[str, str]:
        return {cid: st.open_alert.event_id for cid, st in self._cams.items() if st.open_alert is not None}

    def _end(self, camera_id: str, st: _State, why: str) -> None:
        assert st.open_alert is not None
        start = st.open_alert
        end = self._alert(camera_id, start.started_at, utc_now(), event_id=start.event_id)
        st.open_alert = None
        log.info(
            "camera back device=%s camera=%s event=%s (%s)", self.device.id, camera_id, end.event_id, why
        )
        self.on_event(DetectedEvent(end, None))

    def _alert(
        self, camera_id: str, started: datetime, ended: datetime | None, event_id: str | None = None
    ) -> Alert:
        return camera_alert(
            self.device,
            camera_id,
            "camera_offline",
            RULE,
            event_id or str(uuid.uuid4()),
            started,
            ended,
            self.next_seq(),
        )


def _is_down(stats: CameraStats | None) -> bool:
    if stats is None or not stats.stream_up:
        return True
    return stats.last_frame_age_s is not None and stats.last_frame_age_s > FROZEN_S
