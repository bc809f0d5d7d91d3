"""The cloud's MQTT connection: MQTT 5, clean start, reconnect with backoff and jitter.

The broker address and TLS set-up are the shared ones (matthan/mqtt.py); the session is not: the
device's and station's link keeps a persistent session, the cloud's starts clean every time.

paho's network thread only calls `on_message` (which must just enqueue) and re-subscribes on every
connect; publishing is thread-safe (paho's own locks) and may be called from the writer thread or
the API. A clean session per connection, always: with shared subscriptions a persistent member
that is offline still gets its share of messages, where they wait (measured here, docs/lessons.md).
"""

import contextlib
import logging
import secrets
import socket
import ssl
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud.errors import CloudError
from cloud.settings import Settings
from matthan.backoff import Backoff
from matthan.i18n import Msg
from matthan.identity import certificate_name
from matthan.mqtt import MqttError, endpoint, use_tls

log = logging.getLogger("matthan.cloud.mqtt")

OnMessage = Callable[[str, bytes, bool], None]


class MqttLink:
    def __init__(self, settings: Settings, client_prefix: str = "matthan-cloud") -> None:
        if settings.broker_url is None:
            raise CloudError(Msg("no broker URL configured"))
        try:
            where = endpoint(settings.broker_url)
        except MqttError as exc:
            raise CloudError(str(exc)) from None
        self.host, self.port, self.tls = where.host, where.port, where.tls
        # Unique per process: a second connection with the same id kicks the first off (docs/lessons.md).
        # Behind the generated broker config the id is the certificate's name whatever we ask for,
        # so ask for that: each ingest worker then needs its own certificate (cloud:ingest-2, …).
        named = certificate_name(settings.broker_cert) if self.tls and settings.broker_cert else None
        self.client_id = named or f"{client_prefix}-{socket.gethostname()[:20]}-{secrets.token_hex(4)}"
        self._subscriptions: list[tuple[str, int]] = []
        self._on_message: OnMessage | None = None
        self._routes: list[tuple[Callable[[str], bool], OnMessage]] = []
        self._on_connect: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._connected = threading.Event()
        # Set on the broker's SUBACK: from then on nothing published to our filters passes us by.
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = Backoff(initial=0.5, maximum=30.0)
        self.connects = 0
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        if settings.broker_username:
            client.username_pw_set(settings.broker_username, settings.broker_password)
        if self.tls:
            try:
                use_tls(client, settings.broker_ca, settings.broker_cert, settings.broker_key)
            except MqttError as exc:
                raise CloudError(str(exc)) from None
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        self.client = client

    # --- wiring (before start) ---

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self._subscriptions.append((topic_filter, qos))

    def on_message(self, handler: OnMessage) -> None:
        self._on_message = handler

    def route(self, match: Callable[[str], bool], handler: OnMessage) -> None:
        """Messages whose topic matches go to `handler` instead of the `on_message` handler."""
        self._routes.append((match, handler))

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Called in the network thread after each (re)connect; it must not block."""
        self._on_connect.append(hook)

    # --- life ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._lost.set()
        with contextlib.suppress(Exception):  # already gone: nothing to tell the broker
            self.client.disconnect()
        if self._thread:
            self._thread.join(timeout)
        self.client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Until the broker has acknowledged our subscriptions (the readiness to receive)."""
        return self._subscribed.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Queue a publish; False when not connected (paho still sends it after a reconnect)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _supervise(self) -> None:
        while not self._stop.is_set():
            self._lost.clear()
            try:
                self.client.connect(self.host, self.port, keepalive=30, clean_start=True)
            except (OSError, ssl.SSLError) as exc:
                delay = self._backoff.next()
                log.warning(
                    "broker=%s:%s connect failed (%s); retry in %.1fs", self.host, self.port, exc, delay
                )
                self._stop.wait(delay)
                continue
            self.client.loop_start()
            self._lost.wait()
            self.client.loop_stop()
            if not self._stop.is_set():
                delay = self._backoff.next()
                log.warning("broker=%s:%s connection lost; reconnect in %.1fs", self.host, self.port, delay)
                self._stop.wait(delay)

    def _handle_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            log.error("broker=%s:%s refused the connection: %s", self.host, self.port, reason)
            return
        self.connects += 1
        self._backoff.reset()
        if self._subscriptions:
            client.subscribe(list(self._subscriptions))
        self._connected.set()
        log.info("broker=%s:%s connected client=%s", self.host, self.port, self.client_id)
        for hook in self._on_connect:
            hook()

    def _handle_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        self._connected.clear()
        self._subscribed.clear()
        self._lost.set()

    def _handle_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: object
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("broker=%s:%s refused subscriptions: %s", self.host, self.port, ", ".join(refused))
            return
        self._subscribed.set()
        log.info("broker=%s:%s subscribed client=%s filters=%d", self.host, self.port, self.client_id,
                 len(reasons))  # fmt: skip

    def _handle_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        for match, handler in self._routes:
            if match(msg.topic):
                handler(msg.topic, bytes(msg.payload), bool(msg.retain))
                return
        if self._on_message is not None:
            self._on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
