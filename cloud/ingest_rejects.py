"""What the ingest refuses, accounted for once: a malformed message is counted by kind and logged
once per source; a message that could not be stored for a reason other than its shape (the database
refused it, or our own code failed on it) is counted, logged with its device and event, and kept in
the quarantine folder for an operator. Used by the parse (cloud/ingest_parse.py) and the writer
thread (cloud/ingest.py).
"""

import json
import logging

from cloud.inbox import Inbound
from cloud.metrics import Metrics
from cloud.quarantine import Quarantine
from matthan_wire.codec import MAX_PAYLOAD_BYTES

log = logging.getLogger("matthan.cloud.ingest")

_LOGGED_SOURCES_MAX = 10_000


class Rejections:
    def __init__(self, metrics: Metrics, quarantine: Quarantine) -> None:
        self.metrics = metrics
        self.quarantine = quarantine
        self.total = 0  # every message refused, whatever the reason (each counted once)
        self._logged: set[tuple[str, str]] = set()

    def reject(self, kind: str, source: str, reason: str) -> None:
        self.total += 1
        self.metrics.rejected.labels(kind).inc()
        key = (source, kind)
        if key not in self._logged:
            if len(self._logged) < _LOGGED_SOURCES_MAX:
                self._logged.add(key)
            log.warning(
                "rejected kind=%s source=%s reason=%s (further ones from it are only counted)",
                kind,
                source,
                reason[:300],
            )

    def fail(self, item: Inbound, kind: str, reason: str) -> None:
        """A message that could not be stored for a reason other than its shape: rejected (counted
        once, one log line naming device and event), and kept in the quarantine folder."""
        self.total += 1
        self.metrics.rejected.labels(kind).inc()
        self.metrics.quarantined.labels(kind).inc()
        kept = self.quarantine.keep(item.topic, item.payload, reason, kind)
        log.error(
            "quarantined kind=%s topic=%s event=%s reason=%s file=%s",
            kind,
            item.topic[:120],
            _event_id(item.payload),
            reason.splitlines()[0][:300] if reason else "-",
            kept or "(not kept: folder full or unwritable)",
        )


def _event_id(payload: bytes) -> str:
    """The event id of a payload, for one log line; '-' when there is none to read."""
    try:
        data = json.loads(payload[:MAX_PAYLOAD_BYTES])
        value = data.get("event_id") if isinstance(data, dict) else None
    except (ValueError, RecursionError):
        return "-"
    return value[:63] if isinstance(value, str) else "-"
