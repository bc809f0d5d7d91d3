"""Prometheus metrics of one cloud process (its own registry, so several apps can live in one
test process without colliding)."""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingested = Counter(
            "matthan_ingest_messages", "MQTT messages stored, by kind", ["kind"], registry=r
        )
        self.rejected = Counter(
            "matthan_ingest_rejected", "MQTT messages rejected as malformed, by kind", ["kind"], registry=r
        )
        self.dropped = Counter(
            "matthan_ingest_dropped",
            "messages dropped because the ingest queue was full (by count or bytes)",
            registry=r,
        )
        self.quarantined = Counter(
            "matthan_ingest_quarantined",
            "messages the ingest could not store, kept in the quarantine folder (or only counted)",
            ["kind"],
            registry=r,
        )
        self.worker_errors = Counter(
            "matthan_ingest_worker_errors", "unexpected errors the ingest writer survived", registry=r
        )
        self.writer_up = Gauge(
            "matthan_ingest_writer_up", "1 while the ingest writer thread runs", registry=r
        )
        self.batches = Counter("matthan_ingest_batches", "database transactions of the ingest", registry=r)
        self.db_retries = Counter(
            "matthan_ingest_db_retries", "batches retried after a database error", registry=r
        )
        self.db_seconds = Histogram(
            "matthan_db_commit_seconds",
            "time to write and commit one ingest batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.db_ping_seconds = Gauge("matthan_db_ping_seconds", "last SELECT 1 round trip", registry=r)
        self.queue_depth = Gauge("matthan_ingest_queue_depth", "messages waiting for the writer", registry=r)
        self.receipts = Counter("matthan_receipts_published", "receipt messages published", registry=r)
        self.station_resends = Counter(
            "matthan_station_alert_resends",
            "alerts sent again to a ward's stations because none confirmed delivery yet",
            registry=r,
        )
        self.station_syncs = Counter(
            "matthan_station_syncs", "catch-up requests from ward stations", registry=r
        )
        self.upload_bytes = Counter(
            "matthan_upload_bytes", "bytes accepted by the media upload endpoint", ["kind"], registry=r
        )
        self.broker_connected = Gauge("matthan_broker_connected", "1 while connected to MQTT", registry=r)
        # The broker's own counters from $SYS/broker/load/publish/dropped/… and …/messages/dropped.
        self.broker_dropped = Gauge(
            "matthan_broker_publish_dropped",
            "the broker's dropped-publish figures, by $SYS topic",
            ["topic"],
            registry=r,
        )

    def watch_devices(self, count_online: Callable[[], int]) -> None:
        """devices online is read from the database when scraped, so every process agrees."""
        self.registry.register(_DevicesOnline(count_online))

    def watch_attention(self, counts: Callable[[], dict[str, int]]) -> None:
        """Notifications pending and failed, open outages and active escalations, from the
        database when scraped (cloud/attention): a failed notification is worth an alert of its own."""
        self.registry.register(_Attention(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DevicesOnline(Collector):
    def __init__(self, count_online: Callable[[], int]) -> None:
        self._count = count_online

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            value = float(self._count())
        except Exception:  # a scrape must not fail because the database is away; NaN says so
            value = float("nan")
        yield GaugeMetricFamily("matthan_devices_online", "devices currently online", value=value)


class _Attention(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            found = self._counts()
        except Exception:
            found = {}
        g = GaugeMetricFamily(
            "matthan_attention",
            "notifications pending/failed, outages open, escalations active",
            labels=["what"],
        )
        for what in ("notifications_pending", "notifications_failed", "outages_open", "escalations_active"):
            g.add_metric([what], float(found.get(what, float("nan"))))
        yield g
