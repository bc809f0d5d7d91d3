"""A ward police station's subscriber: its ward's alerts, one line each, and their snapshots on disk.

Persistent MQTT 5 session (client id = the certificate's name, `station:{ward}`, or
`ward-{ward}-{host}` without one) so alerts published while the station was offline wait for it
at the broker. The broker keeps that session only in memory between autosaves, so the cloud is
the station's real safety net: it sends every alert no station has confirmed yet again on the
ward's `station-alert` topic, and all of them at once when the station says, after each SUBACK,
that it has (re)subscribed (`station-sync`). Copies are normal, so alerts are deduplicated by event
id on disk (ward/state.py): a restarted station shows nothing twice.

Each alert shown is confirmed to the cloud with a `deliver` action on the ward's alert-action
topic, so the console shows it reached the station. The station cannot see whether the cloud has
committed the alert yet (its receipt goes to the device), so the action is sent a moment after
the alert and again until the cloud's alert-state says it moved on from `new`; a copy from the
cloud means it still waits, so it is confirmed again.

The network thread only enqueues; printing, saving and publishing happen on the caller's thread.
One message that cannot be handled, for whatever reason, is logged, counted once, quarantined in
the state file and skipped: the station goes on.
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
from matthan.i18n import SOURCE_LANGUAGE, translate
from matthan.identity import certificate_name
from matthan.mqtt import MqttError, MqttLink
from matthan_wire import (
    Alert,
    AlertAction,
    AlertState,
    Kind,
    StationSync,
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
from ward.state import StationState

log = logging.getLogger("matthan.ward")

DELIVER_AFTER_S = 1.0  # the cloud commits within a batch (~0.1 s); give it that and some
DELIVER_EVERY_S = 10.0
DELIVER_TRIES = 6
_SUBSCRIBED = ""  # inbox marker: every subscription of a new connection is acknowledged


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


def default_client_id(ward: str, broker: BrokerConfig | None = None) -> str:
    """The certificate's name when there is one: the broker binds the client id to it."""
    if broker is not None and broker.cert:
        named = certificate_name(broker.cert)
        if named:
            return named
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
        state: Path | None = None,
        lang: str = SOURCE_LANGUAGE,
    ) -> None:
        if not is_id(ward):
            raise WardError(
                translate(lang, "ward %(ward)r is not an id ([a-z0-9-], at most 63 characters)", ward=ward)
            )
        if snapshots is not None:
            try:
                snapshots.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WardError(
                    translate(
                        lang, "snapshots folder %(path)s: %(error)s", path=snapshots, error=exc.strerror
                    )
                ) from None
            if not os.access(snapshots, os.W_OK):
                raise WardError(translate(lang, "snapshots folder %(path)s: not writable", path=snapshots))
        self.lang = lang
        self.ward = ward
        self.out = out
        self.snapshots = snapshots
        self.as_json = as_json
        self.lines = lines or LineWriter(tz=zone_of(DEFAULT_TZ))
        self.on_alert = on_alert
        self.alerts = 0
        self.duplicates = 0
        self.malformed = 0  # refused by the wire contract
        self.failed = 0  # anything else that went wrong with one message
        self.syncs = 0
        self.state = StationState(state, keep=dedupe_limit)
        self._seen_snaps = _Seen(dedupe_limit)
        self.confirm_delivery = confirm_delivery
        # Confirmations by due time (monotonic s, event id, sends so far): a burst of alerts after an
        # outage puts tens of thousands here, and each poll must touch only those due.
        self._to_confirm: list[tuple[float, str, int]] = []
        self._waiting: set[str] = set()  # ids in the heap the cloud has not confirmed yet
        named = default_client_id(ward, broker)
        if client_id and broker.cert and client_id != named:
            log.warning("client id %s ignored: the broker uses the certificate's name %s", client_id, named)
            client_id = named
        self.station = client_id or named
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        try:
            self.link = MqttLink(
                broker,
                self.station,
                subscriptions=[
                    (device_filter(Kind.ALERT, ward=ward), 1),
                    (device_filter(Kind.SNAPSHOT, ward=ward), 1),
                    (ward_filter(Kind.ALERT_STATE, ward=ward), 1),
                    (ward_topic(Kind.STATION_ALERT, ward), 1),
                ],
                on_message=lambda topic, payload: self._inbox.put((topic, payload)),
                on_subscribed=lambda: self._inbox.put((_SUBSCRIBED, b"")),
                # One station per ward, no thundering herd: come back quickly after a broker restart.
                backoff=Backoff(initial=0.5, maximum=10.0),
            )
        except MqttError as exc:
            raise WardError(str(exc)) from None

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()
        self.state.close()

    def run(self, stop: threading.Event) -> None:
        """Handle messages until `stop` is set."""
        while not stop.is_set():
            try:
                self.poll(0.2)
            except Exception as exc:  # handle() never raises; this is for the confirmations' path
                self.failed += 1
                log.error("station loop error=%s: %s", type(exc).__name__, str(exc)[:500])
                stop.wait(1.0)

    def poll(self, timeout: float) -> int:
        """Handle what has arrived (waiting up to `timeout` for the first); returns how many."""
        handled = 0
        self._confirm_due()
        try:
            topic, payload = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return 0
        try:
            while True:
                if topic == _SUBSCRIBED:
                    self._subscribed()
                else:
                    self.handle(topic, payload)
                handled += 1
                try:
                    topic, payload = self._inbox.get_nowait()
                except queue.Empty:
                    return handled
        finally:
            self._commit()

    def handle(self, topic: str, payload: bytes) -> None:
        """One message; never raises: what fails is logged, counted once, quarantined, skipped."""
        try:
            t = parse_topic(topic)
            if t.kind in (Kind.ALERT, Kind.STATION_ALERT):
                self._alert(decode(Alert, payload), from_cloud=t.kind is Kind.STATION_ALERT)
            elif t.kind is Kind.SNAPSHOT and t.event_id is not None:
                self._snapshot(t.device or "-", t.event_id, payload)
            elif t.kind is Kind.ALERT_STATE:
                self._state(decode(AlertState, payload))
        except WireError as exc:
            self.malformed += 1
            log.warning("ignored malformed message topic=%s: %s", topic[:200], str(exc)[:500])
            self._quarantine(topic, payload, f"malformed: {exc}")
        except Exception as exc:  # one message must never stop the station
            self.failed += 1
            log.error(
                "message skipped topic=%s error=%s: %s", topic[:200], type(exc).__name__, str(exc)[:500]
            )
            self._quarantine(topic, payload, f"{type(exc).__name__}: {exc}")

    def _quarantine(self, topic: str, payload: bytes, error: str) -> None:
        try:
            self.state.quarantine(topic, payload, error)
        except Exception as exc:  # the disk is full or gone: the message is still skipped
            log.error("quarantine failed topic=%s: %s", topic[:200], exc)

    def _commit(self) -> None:
        try:
            self.state.commit()
        except Exception as exc:
            # The ids stay in memory's transaction; a restart may show these alerts once more.
            log.error("station state not saved path=%s: %s", self.state.path, exc)

    def _subscribed(self) -> None:
        """After every SUBACK of a connection: ask the cloud for what this ward has not confirmed."""
        self.syncs += 1
        topic = ward_topic(Kind.STATION_SYNC, self.ward)
        sent = self.link.publish(topic, encode(StationSync(station=self.station[:128], at=utc_now())), qos=1)
        log.info("station ready ward=%s station=%s sync=%s", self.ward, self.station, sent is not None)

    def _alert(self, alert: Alert, from_cloud: bool = False) -> None:
        if alert.phase != "start" or alert.ward != self.ward:
            return
        if self.state.shown(alert.event_id):
            self.duplicates += 1
            if from_cloud:
                # The cloud sends a copy only while no station has confirmed it: confirm again.
                self._expect_confirmation(alert.event_id)
            return
        # Rendered before anything is recorded: an alert that cannot be shown is not marked shown.
        line = self.lines.alert_json(alert) if self.as_json else self.lines.alert_line(alert)
        self._print(line)
        self.state.add(alert.event_id)
        self.alerts += 1
        self._expect_confirmation(alert.event_id)
        if self.on_alert is not None:
            self.on_alert(alert)

    def _expect_confirmation(self, event_id: str) -> None:
        if self.confirm_delivery and event_id not in self._waiting:
            heapq.heappush(self._to_confirm, (time.monotonic() + DELIVER_AFTER_S, event_id, 0))
            self._waiting.add(event_id)

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
            action = AlertAction(event_id=event_id, action="deliver", by=self.station[:128], at=utc_now())
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
