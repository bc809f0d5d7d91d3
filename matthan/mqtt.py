"""One MQTT 5 connection per identity (paho-mqtt 2.x, callback API v2), kept up for as long as it runs.

Shared by every process that speaks MQTT: the device agent (its outbox publisher), the ward station
and the cloud (which uses the URL and TLS helpers for its clean-session link, cloud/mqtt.py).

MQTT 5 because under 3.1.1 a publish the broker's ACL refuses still looks successful (docs/lessons.md);
under 5 the PUBACK carries reason 135, which is counted and logged here. The session is persistent
(clean_start False with a session expiry) so the broker keeps subscriptions and queued messages while
the link is down; subscriptions are (re)made in on_connect. A refused CONNACK (bad credentials, not
authorised) is logged as refused, never as connected, and every retry waits on `matthan.backoff`
(exponential with jitter) rather than paho's fixed doubling.

paho's own queue lives in memory only; it is not a store. What must not be lost goes through the
outbox (device/outbox.py), which hands this link a bounded window of messages at a time.

Callbacks run on paho's network thread and only enqueue or set flags: the handlers given to the link
must not block.
"""

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from matthan.backoff import Backoff
from matthan.errors import UserError
from matthan_wire import Status, encode, utc_now
from matthan_wire.config import BrokerConfig

log = logging.getLogger("matthan.mqtt")

# The broker keeps a disconnected session (subscriptions, queued QoS 1) this long.
SESSION_EXPIRY_S = 7 * 24 * 3600

MessageHandler = Callable[[str, bytes], None]
PublishedHandler = Callable[[int, bool], None]


class MqttError(UserError):
    """A broker address or TLS file that cannot be used; each part re-raises it as its own error."""


@dataclass
class LinkCounters:
    connects: int = 0
    refused: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    publish_refused: int = 0


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool


def endpoint(url: str) -> Endpoint:
    """mqtt://host[:port] (1883) or mqtts://host[:port] (8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise MqttError(f"broker url {url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise MqttError(f"broker url {url!r}: bad port") from None
    return Endpoint(parts.hostname, port, tls)


def use_tls(client: mqtt.Client, ca: str | None, cert: str | None, key: str | None) -> None:
    """Verify the broker against `ca` and present `cert`/`key` (mutual TLS when given)."""
    try:
        client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
    except (OSError, ssl.SSLError) as exc:
        raise MqttError(f"broker TLS files (ca={ca}, cert={cert}): {exc}") from None


class MqttLink:
    """A persistent MQTT 5 session; `status_topic` makes it announce online/offline (retained, will)."""

    def __init__(
        self,
        broker: BrokerConfig,
        client_id: str,
        *,
        subscriptions: list[tuple[str, int]],
        on_message: MessageHandler,
        on_published: PublishedHandler | None = None,
        on_connected: Callable[[], None] | None = None,
        on_subscribed: Callable[[], None] | None = None,
        status_topic: str | None = None,
        backoff: Backoff | None = None,
        session_expiry_s: int = SESSION_EXPIRY_S,
        max_inflight: int = 100,
    ) -> None:
        self.client_id = client_id
        self.endpoint = endpoint(broker.url)
        self.keepalive_s = broker.keepalive_s
        self.subscriptions = list(subscriptions)
        self.status_topic = status_topic
        self.counters = LinkCounters()
        self.last_refusal: str | None = None
        self._on_message = on_message
        self._on_published = on_published
        self._on_connected = on_connected
        self._on_subscribed = on_subscribed
        self._suback_wanted: set[int] = set()  # mids of this connection's SUBSCRIBEs not acked yet
        self._backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self._session_expiry_s = session_expiry_s
        self._connected = threading.Event()
        self._epoch = 0
        self._stopping = False
        self._started = False
        self._refused_now = False

        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(max_inflight)
        if broker.username is not None:
            c.username_pw_set(broker.username, broker.password)
        if self.endpoint.tls:
            use_tls(c, broker.ca, broker.cert, broker.key)
        elif broker.cert or broker.ca:
            log.warning("broker url %s is not mqtts://; ca/cert/key are ignored", broker.url)
        if status_topic is not None:
            c.will_set(status_topic, self._status("offline"), qos=1, retain=True)
        c.on_connect = self._handle_connect
        c.on_connect_fail = self._handle_connect_fail
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_publish = self._handle_publish
        c.on_subscribe = self._handle_subscribe
        self._client = c

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        self._client.connect_async(
            self.endpoint.host,
            self.endpoint.port,
            keepalive=self.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._set_retry_delay(self._backoff.next())
        self._client.loop_start()
        self._started = True
        log.info(
            "mqtt connecting client=%s broker=%s:%d tls=%s",
            self.client_id,
            self.endpoint.host,
            self.endpoint.port,
            self.endpoint.tls,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained; a clean disconnect sends no will), disconnect, end the network thread."""
        if not self._started:
            return
        self._stopping = True
        if self.status_topic is not None and self._connected.is_set():
            info = self._client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # no connection any more: the will says it
                info.wait_for_publish(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._started = False
        log.info("mqtt stopped client=%s", self.client_id)

    # ---- use -------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def epoch(self) -> int:
        """Increases on every accepted connection; a publisher replays when it changes."""
        return self._epoch

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Hand one message to paho; its mid, or None when there is no connection (nothing queued)."""
        if not self._connected.is_set():
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # Queued by paho in memory for a connection that just went away; the outbox resends it.
            return None
        return int(info.mid)

    def resubscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe again, so the broker sends the topic's retained message once more."""
        if self._connected.is_set():
            self._client.unsubscribe(topic)
            self._client.subscribe(topic, qos=qos)

    # ---- paho callbacks (network thread: flags and enqueues only) ----------------------------------

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused_now = True
            self.counters.refused += 1
            self.last_refusal = f"{reason.getName()} ({reason.value})"
            log.error(
                "mqtt connect refused client=%s reason=%s code=%d (attempt %d)",
                self.client_id,
                reason.getName(),
                reason.value,
                self.counters.refused,
            )
            return
        self.counters.connects += 1
        self._backoff.reset()
        self._set_retry_delay(self._backoff.next())
        self._suback_wanted = set()
        for topic, qos in self.subscriptions:
            _, mid = client.subscribe(topic, qos=qos)
            if mid is not None:
                self._suback_wanted.add(mid)
        if self.status_topic is not None:
            client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        self._epoch += 1
        self._connected.set()
        log.info(
            "mqtt connected client=%s session_present=%s epoch=%d",
            self.client_id,
            flags.session_present,
            self._epoch,
        )
        if self._on_connected is not None:
            self._on_connected()

    def _handle_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.counters.connect_failures += 1
        delay = self._backoff.next()
        self._set_retry_delay(delay)
        log.warning(
            "mqtt broker unreachable client=%s broker=%s:%d retry_in=%.1fs",
            self.client_id,
            self.endpoint.host,
            self.endpoint.port,
            delay,
        )

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        was_up = self._connected.is_set()
        self._connected.clear()
        if self._stopping:
            return
        delay = self._backoff.next()
        self._set_retry_delay(delay)
        if was_up:
            self.counters.disconnects += 1
            log.warning(
                "mqtt disconnected client=%s reason=%s retry_in=%.1fs",
                self.client_id,
                reason.getName(),
                delay,
            )
        elif self._refused_now:
            pass  # already logged as refused
        else:
            # Closed before any CONNACK: e.g. the broker rejected our TLS client certificate.
            self.counters.connect_failures += 1
            log.warning(
                "mqtt connection closed before CONNACK client=%s reason=%s retry_in=%.1fs",
                self.client_id,
                reason.getName(),
                delay,
            )
        self._refused_now = False

    def _handle_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._on_message(msg.topic, bytes(msg.payload))
        except Exception:  # a handler's bug must not take the network thread down
            log.exception("mqtt message handler failed topic=%s", msg.topic)

    def _handle_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        props: Properties | None,
    ) -> None:
        if mid not in self._suback_wanted:
            return  # a resubscribe(), or a SUBACK of an earlier connection
        self._suback_wanted.discard(mid)
        for reason in reasons:
            if reason.is_failure:
                log.error("mqtt subscribe refused client=%s reason=%s", self.client_id, reason.getName())
        if not self._suback_wanted:
            # The readiness signal: from here on the broker routes every subscribed topic to us.
            log.info("mqtt subscribed client=%s topics=%d", self.client_id, len(self.subscriptions))
            if self._on_subscribed is not None:
                self._on_subscribed()

    def _handle_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        ok = not reason.is_failure
        if not ok:
            self.counters.publish_refused += 1
            log.error(
                "mqtt publish refused by broker client=%s mid=%d reason=%s code=%d",
                self.client_id,
                mid,
                reason.getName(),
                reason.value,
            )
        if self._on_published is not None:
            self._on_published(mid, ok)

    # ---- helpers ---------------------------------------------------------------------------------

    def _set_retry_delay(self, delay: float) -> None:
        # paho waits min(2 * previous, max) between attempts; pinning both to one jittered value
        # makes each wait exactly what matthan.backoff chose.
        self._client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]

    @staticmethod
    def _status(state: str) -> bytes:
        return encode(Status(state=state, at=utc_now()))
