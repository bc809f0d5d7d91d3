"""Delivery of every alert to its ward's police station, end to end, whatever the broker loses.

The device forgets an alert once the cloud has committed it, and the broker keeps what waits for
an absent station only in memory between autosaves: after a broker crash nothing but the cloud's
database still knows which alerts a station has not shown. So the database is the record, and
a station's `deliver` action (state `new` → `delivered`) is the acknowledgement:

- resend: an alert still `new` station_resend_first_s after it was committed is published again on
  the ward's `station-alert` topic, then again with doubling gaps (at most station_resend_max_s),
  for as long as it is younger than station_resend_window_h (bounded work for a ward without a
  station);
- catch-up: a station that has subscribed (started, or reconnected with or without its session)
  sends `station-sync`; the cloud answers with every unconfirmed alert of that ward at once. The
  cloud does the same for every ward after its own (re)connect, for a station that synced while
  the cloud was away.

Stations deduplicate by event id (durably), so a copy too many costs nothing but a message.
The schedule lives in memory: after a cloud restart every unconfirmed alert is simply due.

    paho thread ── station-sync (enqueue only) ──▶ SimpleQueue ──▶ delivery thread
                                                                  ├ query `new` alerts (one SELECT)
                                                                  └ publish station-alert copies
"""

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from cloud.metrics import Metrics
from cloud.models import AlertRow
from cloud.mqtt import MqttLink
from cloud.settings import Settings
from matthan.worker_thread import WorkerThread
from matthan_wire import Alert, Kind, StationSync, WireError, decode, encode, parse_topic
from matthan_wire.timeutil import utc_now
from matthan_wire.topics import ward_filter, ward_topic

log = logging.getLogger("matthan.cloud.stations")

TICK_S = 1.0
# One pass publishes at most this many copies: a ward back after a long outage is served over a
# few passes instead of one burst that would fill the station's broker queue.
PASS_MAX = 2000
_ALL = "*"


@dataclass
class _Due:
    at: float  # monotonic seconds
    sends: int


class StationDelivery(WorkerThread):
    def __init__(self, settings: Settings, engine: Engine, link: MqttLink, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.link = link
        self.metrics = metrics
        self._due: dict[str, _Due] = {}  # event id → next resend
        self._syncs: queue.SimpleQueue[str] = queue.SimpleQueue()  # wards (or _ALL) to replay now
        self._wake = threading.Event()
        super().__init__("station-delivery", self._step, wake=self._wake.set)
        self.resent = 0
        self._last_scan = float("-inf")
        sync = ward_filter(Kind.STATION_SYNC)
        group = settings.share_group
        link.subscribe(f"$share/{group}/{sync}" if group else sync, 1)
        link.route(lambda topic: topic.endswith(f"/{Kind.STATION_SYNC.value}"), self.on_message)
        link.on_connect(self._on_connect)

    # --- paho thread: enqueue only ---

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            ward = parse_topic(topic).ward
            sync = decode(StationSync, payload)
        except WireError as exc:
            self.metrics.rejected.labels(Kind.STATION_SYNC.value).inc()
            log.warning("rejected kind=station-sync topic=%s reason=%s", topic[:120], str(exc)[:300])
            return
        log.info("station sync ward=%s station=%s", ward, sync.station[:128])
        self.metrics.station_syncs.inc()
        self._syncs.put(ward)
        self._wake.set()

    def _on_connect(self) -> None:
        # A station may have synced while we were away; our clean session lost its request.
        self._syncs.put(_ALL)
        self._wake.set()

    # --- life ---

    def _step(self) -> None:
        try:
            self.run_once()
        except SQLAlchemyError as exc:
            log.warning("station delivery pass failed (database): %s", str(exc).splitlines()[0][:200])
        except Exception:  # one bad row or bug must not end delivery for every ward
            log.exception("station delivery pass failed")
        self._wake.wait(TICK_S)
        self._wake.clear()

    def run_once(self) -> int:
        """One pass: replay what stations asked for, resend what is due; returns copies published."""
        replay: set[str] = set()
        while True:
            try:
                replay.add(self._syncs.get_nowait())
            except queue.Empty:
                break
        if not self.link.connected:
            for ward in replay:  # keep the requests for the pass after the reconnect
                self._syncs.put(ward)
            return 0
        now = time.monotonic()
        first = self.settings.station_resend_first_s
        # Nothing can fall due sooner than `first` after the last look, unless a station asked.
        if not replay and now - self._last_scan < min(first, 5.0):
            return 0
        self._last_scan = now
        now_wall = utc_now()
        window = now_wall - timedelta(hours=self.settings.station_resend_window_h)
        with Session(self.engine) as s:
            # The schedule needs only ids; whole rows are loaded for the copies actually sent.
            waiting = s.exec(
                select(AlertRow.event_id, AlertRow.ward, AlertRow.received_at)
                .where(AlertRow.state == "new", col(AlertRow.received_at) >= window)
                .order_by(col(AlertRow.received_at))
            ).all()
            pending = {event_id for event_id, _, _ in waiting}
            for event_id in [e for e in self._due if e not in pending]:
                del self._due[event_id]  # confirmed (or out of the window): nothing more to do
            chosen: list[str] = []
            for event_id, ward, received_at in waiting:
                if len(chosen) >= PASS_MAX:
                    break
                due = self._due.get(event_id)
                if not (_ALL in replay or ward in replay):
                    if due is None and (now_wall - received_at).total_seconds() < first:
                        continue  # the station normally has it from the device by now
                    if due is not None and due.at > now:
                        continue
                chosen.append(event_id)
            rows = {r.event_id: r for r in s.exec(select(AlertRow).where(col(AlertRow.event_id).in_(chosen)))}
        sent = 0
        for event_id in chosen:
            row = rows.get(event_id)
            if row is None:
                continue
            if not self._publish(row):
                break  # no connection: the next pass tries again
            due = self._due.get(event_id)
            sends = (due.sends if due else 0) + 1
            gap = min(self.settings.station_resend_max_s, first * 2 ** min(sends - 1, 20))
            self._due[event_id] = _Due(now + gap, sends)
            sent += 1
        if sent:
            log.info("station alerts sent again count=%d pending=%d", sent, len(pending))
        return sent

    def _publish(self, row: AlertRow) -> bool:
        try:
            alert = alert_of(row)
        except (WireError, ValueError) as exc:
            # Stored before the contract was tightened, or by hand: not sendable, never retried.
            log.error("alert not sendable to stations event=%s: %s", row.event_id, str(exc)[:200])
            self._due[row.event_id] = _Due(float("inf"), 0)
            return True
        if not self.link.publish(ward_topic(Kind.STATION_ALERT, row.ward), encode(alert), qos=1):
            return False
        self.resent += 1
        self.metrics.station_resends.inc()
        return True


def alert_of(row: AlertRow) -> Alert:
    """The alert start as the device sent it, rebuilt from its stored row."""
    return Alert.model_validate(
        {
            "event_id": row.event_id,
            "phase": "start",
            "device_id": row.device_id,
            "camera_id": row.camera_id,
            "ward": row.ward,
            "zone": row.zone,
            "rule": row.rule,
            "type": row.type,
            "category": row.category,
            "labels": list(row.labels or []),
            "object_count": row.object_count,
            "score": row.score,
            "bbox": list(row.bbox) if row.bbox is not None else None,
            "started_at": row.started_at,
            "ended_at": None,
            "seq": row.seq,
            "snapshot": row.snapshot_topic,
            "clip": None,
        }
    )
