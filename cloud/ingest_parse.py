"""The ingest's validation: a list of raw MQTT messages becomes one Batch (cloud/ingest_write.py)
of what is valid. Each topic is parsed (and cached), each payload decoded by the wire contract and
checked against its topic (ward, device, phase); every invalid message is rejected here, counted
once (cloud/ingest_rejects.py).
"""

from datetime import datetime

from cloud.inbox import Inbound
from cloud.ingest_rejects import Rejections
from cloud.ingest_rows import sample_row
from cloud.ingest_write import Batch
from matthan_wire import (
    Alert,
    AlertAction,
    Health,
    Kind,
    ReportedConfig,
    Status,
    Topic,
    WireError,
    decode,
    parse_topic,
)
from matthan_wire.codec import MAX_PAYLOAD_BYTES
from matthan_wire.timeutil import utc_now

SHARED_KINDS = (Kind.ALERT, Kind.EVENT, Kind.SNAPSHOT, Kind.HEALTH)
# Retained topics: MQTT 5 sends no retained messages to shared subscriptions, so every worker
# subscribes to these plainly (they are few, and applying them twice is harmless).
RETAINED_KINDS = (Kind.STATUS, Kind.CONFIG_REPORTED)
_TOPIC_CACHE_MAX = 200_000


class BatchParser:
    """`ward_of` is the writer's device → ward map (as the database has it), read to refuse a
    device that speaks under another ward's topic."""

    def __init__(self, rejections: Rejections, ward_of: dict[str, str], pg: bool) -> None:
        self.rejections = rejections
        self.ward_of = ward_of
        self._pg = pg
        self._topics: dict[str, Topic] = {}

    def parse(self, items: list[Inbound], valid: list[Inbound] | None = None) -> Batch:
        """The batch of what is valid; each invalid message is rejected (counted once) here, and
        the valid ones are appended to `valid`, so a batch split later parses only those again."""
        batch = Batch(oldest=min(i.received for i in items))
        now = utc_now()
        for item in items:
            topic = self._topics.get(item.topic)
            if topic is None:
                try:
                    topic = parse_topic(item.topic)
                except WireError as exc:
                    self.rejections.reject("topic", item.topic[:120], str(exc))
                    continue
                # A fleet has a few topics per device; parsing each message again cost more
                # than the insert. Bounded, so a flood of odd snapshot topics cannot grow it.
                if len(self._topics) < _TOPIC_CACHE_MAX and topic.kind is not Kind.SNAPSHOT:
                    self._topics[item.topic] = topic
            source = f"{topic.ward}/{topic.device}" if topic.device else topic.ward
            try:
                self._accept(batch, topic.kind, topic.ward, topic.device, topic.event_id, item, now)
            except WireError as exc:
                self.rejections.reject(topic.kind.value, source, str(exc))
                continue
            except Exception as exc:  # a bug meeting an odd message: that message only
                self.rejections.fail(
                    item, "internal", f"internal error {exc.__class__.__name__}: {str(exc)[:300]}"
                )
                continue
            batch.counts[topic.kind.value] += 1
            if valid is not None:
                valid.append(item)
        return batch

    def _accept(
        self,
        b: Batch,
        kind: Kind,
        ward: str,
        device: str | None,
        event_id: str | None,
        item: Inbound,
        now: datetime,
    ) -> None:
        if kind is Kind.ALERT_ACTION:
            b.actions.append((ward, decode(AlertAction, item.payload)))
            return
        if device is None or kind not in (*SHARED_KINDS, *RETAINED_KINDS):
            raise WireError(f"the cloud does not take {kind.value} messages")
        known = self.ward_of.get(device) or b.wards.get(device)
        if known is not None and known != ward:
            raise WireError(f"device {device} belongs to ward {known}, not {ward}")
        if kind in (Kind.ALERT, Kind.EVENT):
            alert = decode(Alert, item.payload)
            if (alert.device_id, alert.ward) != (device, ward):
                raise WireError(f"payload names {alert.ward}/{alert.device_id}, topic {ward}/{device}")
            if (alert.phase == "start") != (kind is Kind.ALERT):
                raise WireError(f"a {alert.phase} on the {kind.value} topic")
            (b.starts if kind is Kind.ALERT else b.ends)[alert.event_id] = alert
        elif kind is Kind.SNAPSHOT:
            data = item.payload
            if len(data) > MAX_PAYLOAD_BYTES * 4 or not (data[:3] == b"\xff\xd8\xff" and len(data) > 100):
                raise WireError(f"snapshot {event_id}: not a JPEG of a sensible size ({len(data)} bytes)")
            assert event_id is not None
            b.snapshots[event_id] = (device, data)
        elif kind is Kind.HEALTH:
            health = decode(Health, item.payload)
            if (health.device_id, health.ward) != (device, ward):
                raise WireError(f"payload names {health.ward}/{health.device_id}, topic {ward}/{device}")
            b.samples.append(sample_row(health))
            newest = b.latest.get(device)
            if newest is None or health.at > newest[0]:
                # PostgreSQL takes the validated payload's own JSON text (psycopg sends a str
                # untyped, so the json column parses it): dumping the model again cost more
                # than the row.
                body = item.payload.decode() if self._pg else health.model_dump(mode="json")
                b.latest[device] = (health.at, body, health.agent_version)
        elif kind is Kind.STATUS:
            b.statuses.append((device, decode(Status, item.payload), item.retained))
        elif kind is Kind.CONFIG_REPORTED:
            if not item.payload:  # a cleared retained message
                return
            b.reported[device] = decode(ReportedConfig, item.payload)
        b.wards[device] = ward
        if not item.retained:
            b.seen[device] = now
