"""Where an event enters the agent, from a camera's detect thread or the offline watch: committed
to the outbox first, then announced (the publisher woken, one log line, the clip maker told).
Nothing here waits on the network, and nothing after the commit can lose the alert: it is in the
outbox before it is logged, published or handed to the clip maker, and replayed after a crash.
"""

import logging
import sqlite3
from typing import Protocol

from device.events import DetectedEvent
from device.outbox import MessageKind, NewMessage, Outbox
from device.outbox_publisher import Link, OutboxPublisher
from matthan_wire import Alert, Kind, encode
from matthan_wire.topics import device_topic

log = logging.getLogger("matthan.device.agent")


class EventSink(Protocol):
    """The clip maker's side of an event (device.clips.ClipMaker has this shape)."""

    def event_started(self, alert: Alert, snapshot_jpeg: bytes | None) -> None: ...

    def event_ended(self, alert: Alert) -> None: ...


class AlertIntake:
    def __init__(
        self,
        outbox: Outbox,
        publisher: OutboxPublisher,
        link: Link,
        topics: dict[Kind, str],
        clip_sink: EventSink | None,
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.link = link
        self.topics = topics
        self.clip_sink = clip_sink
        self.unstored_total = 0

    def take(self, ev: DetectedEvent) -> None:
        a = ev.alert
        msgs: list[NewMessage] = []
        if a.phase == "start":
            msgs.append(NewMessage(a.event_id, MessageKind.ALERT, self.topics[Kind.ALERT], encode(a)))
            if ev.snapshot_jpeg is not None:
                topic = device_topic(Kind.SNAPSHOT, a.ward, a.device_id, a.event_id)
                msgs.append(NewMessage(a.event_id, MessageKind.SNAPSHOT, topic, ev.snapshot_jpeg))
        else:
            msgs.append(NewMessage(a.event_id, MessageKind.EVENT, self.topics[Kind.EVENT], encode(a)))
        try:
            self.outbox.put(msgs)
        except sqlite3.Error as exc:
            # Disk full or the card failing: the alert cannot be made durable. Say so loudly and still
            # try to get it out once, rather than drop it.
            self.unstored_total += 1
            log.error(
                "alert NOT stored device=%s event=%s error=%s; publishing once", a.device_id, a.event_id, exc
            )
            for m in msgs:
                self.link.publish(m.topic, m.payload, qos=1)
        self.publisher.wake()
        log.info(
            "alert %s device=%s camera=%s event=%s type=%s rule=%s zone=%s count=%d seq=%d",
            a.phase,
            a.device_id,
            a.camera_id,
            a.event_id,
            a.type,
            a.rule,
            a.zone or "-",
            a.object_count,
            a.seq,
        )
        if self.clip_sink is not None:
            try:
                if a.phase == "start":
                    self.clip_sink.event_started(a, ev.snapshot_jpeg)
                else:
                    self.clip_sink.event_ended(a)
            except Exception:  # the alert is safe in the outbox; a clip failure must not lose it
                log.exception("clip sink failed event=%s", a.event_id)
