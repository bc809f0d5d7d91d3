"""A ward police station's subscriber: its ward's alerts, one line each, and their snapshots on disk.

Persistent MQTT 5 session (client id `ward-{ward}-{host}` unless told otherwise) so alerts published
while the station was offline wait for it at the broker. Delivery is at least once, so alerts and
snapshots are deduplicated by event id in a bounded memory (the oldest ids are forgotten first).
The network thread only enqueues; printing and saving happen on the caller's thread.

Each alert shown is confirmed to the cloud with a `deliver` action on the ward's alert-action
topic, so the console shows it reached the station. The station cannot see whether the cloud has
committed the alert yet (its receipt goes to the device), so the action is sent a moment after
the alert and again until the cloud's alert-state says it moved on from `new`.
"""

import heapq
import logging
import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from matthan.backoff import Backoff
from matthan.display import zone_of
from matthan.mqtt import MqttError, MqttLink
from matthan_wire import (
    Alert,
    AlertAction,
    AlertState,
    Kind,
    WireError,
    decode,
    encode,
    parse_topic,
    utc_now,
)
from matthan_wire.config import BrokerConfig
from matthan_wire.ids import is_id
from matthan_wire.topics import device_filter, ward_filter, ward_topic
from ward.errors import WardError
from ward.lines import DEFAULT_TZ, LineWriter

log = logging.getLogger("matthan.ward")

DELIVER_AFTER_S = 1.0  # the cloud commits within a batch (~0.1 s); give it that and some
DELIVER_EVERY_S = 10.0
DELIVER_TRIES = 6


class _Seen:
    """Event ids already handled, bounded: a duplicate older than `limit` ids is shown again."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        """True when new."""
        if key in self._ids:
            self._ids.move_to_end(key)
            return False
        self._ids[key] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True


def default_client_id(ward: str) -> str:
    host = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in socket.gethostname().lower())
    return f"ward-{ward}-{host or 'station'}"


class WardListener:
    def __init__(
        self,
        ward: str,
        broker: BrokerConfig,
        *,
        out: TextIO,
        client_id: str | None = None,
        snapshots: Path | None = None,
        as_json: bool = False,
        dedupe_limit: int = 100_000,
        on_alert: Callable[[Alert], None] | None = None,
        confirm_delivery: bool = True,
        lines: LineWriter | None = None,
    ) -> None:
        if not is_id(ward):
            raise WardError(f"ward {ward!r} is not an id ([a-z0-9-], at most 63 characters)")
        if snapshots is not None:
            try:
                snapshots.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WardError(f"snapshots folder {snapshots}: {exc.strerror}") from None
            if not os.access(snapshots, os.W_OK):
                raise WardError(f"snapshots folder {snapshots}: not writable")
        self.ward = ward
        self.out = out
        self.snapshots = snapshots
        self.as_json = as_json
        self.lines = lines or LineWriter(tz=zone_of(DEFAULT_TZ))
        self.on_alert = on_alert
        self.alerts = 0
        self.duplicates = 0
        self.malformed = 0
        self._seen = _Seen(dedupe_limit)
        self._seen_snaps = _Seen(dedupe_limit)
        self.confirm_delivery = confirm_delivery
        # Confirmations by due time (monotonic s, event id, sends so far): a burst of alerts after an
        # outage puts tens of thousands here, and each poll must touch only those due.
        self._to_confirm: list[tuple[float, str, int]] = []
        self._waiting: set[str] = set()  # ids in the heap the cloud has not confirmed yet
        self.station = client_id or default_client_id(ward)
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        try:
            self.link = MqttLink(
                broker,
                client_id or default_client_id(ward),
                subscriptions=[
                    (device_filter(Kind.ALERT, ward=ward), 1),
                    (device_filter(Kind.SNAPSHOT, ward=ward), 1),
                    (ward_filter(Kind.ALERT_STATE, ward=ward), 1),
                ],
                on_message=lambda topic, payload: self._inbox.put((topic, payload)),
                # One station per ward, no thundering herd: come back quickly after a broker restart.
                backoff=Backoff(initial=0.5, maximum=10.0),
            )
        except MqttError as exc:
            raise WardError(str(exc)) from None

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def run(self, stop: threading.Event) -> None:
        """Handle messages until `stop` is set."""
        while not stop.is_set():
            self.poll(0.2)

    def poll(self, timeout: float) -> int:
        """Handle what has arrived (waiting up to `timeout` for the first); returns how many."""
        handled = 0
        self._confirm_due()
        try:
            topic, payload = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return 0
        while True:
            self.handle(topic, payload)
            handled += 1
            try:
                topic, payload = self._inbox.get_nowait()
            except queue.Empty:
                return handled

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            t = parse_topic(topic)
            if t.kind is Kind.ALERT:
                self._alert(decode(Alert, payload))
            elif t.kind is Kind.SNAPSHOT and t.event_id is not None:
                self._snapshot(t.device or "-", t.event_id, payload)
            elif t.kind is Kind.ALERT_STATE:
                self._state(decode(AlertState, payload))
        except WireError as exc:
            self.malformed += 1
            log.warning("ignored malformed message topic=%s: %s", topic, exc)

    def _alert(self, alert: Alert) -> None:
        if alert.phase != "start" or alert.ward != self.ward:
            return
        if not self._seen.add(alert.event_id):
            self.duplicates += 1
            return
        self.alerts += 1
        if self.confirm_delivery:
            heapq.heappush(self._to_confirm, (time.monotonic() + DELIVER_AFTER_S, alert.event_id, 0))
            self._waiting.add(alert.event_id)
        if self.on_alert is not None:
            self.on_alert(alert)
        self._print(self.lines.alert_json(alert) if self.as_json else self.lines.alert_line(alert))

    def _snapshot(self, device: str, event_id: str, jpeg: bytes) -> None:
        if self.snapshots is None or not self._seen_snaps.add(event_id):
            return
        path = self.snapshots / f"{event_id}.jpg"
        tmp = path.with_suffix(".jpg.part")
        try:
            tmp.write_bytes(jpeg)
            tmp.replace(path)
        except OSError as exc:
            log.error("snapshot not saved event=%s path=%s: %s", event_id, path, exc.strerror)
            return
        log.info("snapshot saved device=%s event=%s path=%s bytes=%d", device, event_id, path, len(jpeg))

    def _confirm_due(self) -> None:
        now = time.monotonic()
        topic = ward_topic(Kind.ALERT_ACTION, self.ward)
        while self._to_confirm and self._to_confirm[0][0] <= now:
            _, event_id, sent = heapq.heappop(self._to_confirm)
            if event_id not in self._waiting:
                continue  # confirmed meanwhile
            if sent >= DELIVER_TRIES:
                self._waiting.discard(event_id)
                log.warning("delivery not confirmed by the cloud event=%s after %d sends", event_id, sent)
                continue
            action = AlertAction(event_id=event_id, action="deliver", by=self.station, at=utc_now())
            if self.link.publish(topic, encode(action), qos=1) is not None:
                heapq.heappush(self._to_confirm, (now + DELIVER_EVERY_S, event_id, sent + 1))
            else:
                # No connection: not a send; try again shortly, and stop for this round.
                heapq.heappush(self._to_confirm, (now + DELIVER_AFTER_S, event_id, sent))
                break

    def _state(self, state: AlertState) -> None:
        if state.state != "new":
            # Its heap entry is skipped when its turn comes (a heap cannot drop one by key cheaply).
            self._waiting.discard(state.event_id)
        self._print(self.lines.state_json(state) if self.as_json else self.lines.state_line(state))

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
