"""A real project CA and a real Mosquitto configured by `broker-config`, on a free loopback port."""

import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from cloud.registry import broker_config as bc
from provisioning import pki
from tests.support.broker import MOSQUITTO
from tests.support.net import free_port, wait_port


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return pki.init_ca(tmp_path / "ca")


@dataclass
class Identity:
    name: str
    key: Path
    cert: Path


def issue(ca_dir: Path, name: str, dest: Path, device: bool = True) -> Identity:
    """A client certificate as enrollment would leave it: devices from a CSR, others made by the CA."""
    ca = pki.Authority(ca_dir)
    dest.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = dest / f"{name.replace(':', '_')}.key", dest / f"{name.replace(':', '_')}.pem"
    if device:
        key = pki.new_key()
        cert = ca.sign_csr(pki.make_csr(key, name), name)
        key_path.write_bytes(pki.key_pem(key))
        cert_path.write_bytes(pki.cert_pem(cert))
    else:
        ca.issue_keypair(name, server=False).write(key_path, cert_path)
    return Identity(name, key_path, cert_path)


class SecureBroker:
    """Mosquitto started from the folder `write_broker_config` produced."""

    def __init__(self, ca_dir: Path, registry: bc.Registry) -> None:
        self.ca_dir = ca_dir
        # Not under pytest's 0700 tmp tree: the broker reads its files as the `mosquitto` user,
        # which must be able to reach the folder, as in production.
        self.dir = Path(tempfile.mkdtemp(prefix="matthan-broker-"))
        self.port = free_port()
        self.site = bc.BrokerSite(port=self.port, bind="127.0.0.1")
        self.registry = registry
        self.log = self.dir.parent / f"{self.dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        bc.write_broker_config(registry, ca_dir, self.dir, self.site)

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    def start(self) -> "SecureBroker":
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")], stdout=logf, stderr=logf
            )
        try:
            wait_port(self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}") from None
        return self

    def regenerate(self, registry: bc.Registry) -> None:
        self.registry = registry
        bc.write_broker_config(registry, self.ca_dir, self.dir, self.site)

    def reload(self) -> None:
        before = self.log.read_text().count("Reloading config")
        assert bc.reload_broker(self.dir) == (self.proc.pid if self.proc else None)
        # The broker logs the reload once it has re-read the files.
        deadline = 50
        while self.log.read_text().count("Reloading config") == before and deadline:
            threading.Event().wait(0.05)
            deadline -= 1
        threading.Event().wait(0.1)

    def wait_reloads(self, count: int, timeout: float = 5.0) -> None:
        """Until the broker has logged `count` reloads in all (SIGHUPs sent by someone else)."""
        for _ in range(int(timeout / 0.05)):
            if self.log.read_text().count("Reloading config") >= count:
                threading.Event().wait(0.1)  # logged first, then the files are re-read
                return
            threading.Event().wait(0.05)
        raise AssertionError(f"broker did not reload {count} time(s)")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut: whatever the broker had not autosaved is gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.log.unlink(missing_ok=True)


MakeBroker = Callable[[bc.Registry], SecureBroker]


@pytest.fixture
def secure_broker(ca_dir: Path) -> Iterator[MakeBroker]:
    made: list[SecureBroker] = []

    def make(registry: bc.Registry) -> SecureBroker:
        b = SecureBroker(ca_dir, registry).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.cleanup()


@dataclass
class Client:
    """A paho MQTT 5 client with a certificate; messages and PUBACK reason codes land in queues."""

    name: str
    client: mqtt.Client
    messages: "queue.Queue[mqtt.MQTTMessage]" = field(default_factory=queue.Queue)
    acks: dict[int, int] = field(default_factory=dict)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """Publish and wait for the broker's PUBACK; returns its reason code (135 = not authorized)."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)
        for _ in range(100):
            if info.mid in self.acks:
                return self.acks.pop(info.mid)
            threading.Event().wait(0.01)
        raise AssertionError(f"no PUBACK for {topic}")

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5)

    def topics_until(self, marker: str, timeout: float = 5.0) -> list[str]:
        """Every topic received up to and including `marker` (which must arrive)."""
        seen: list[str] = []
        while True:
            msg = self.messages.get(timeout=timeout)
            seen.append(msg.topic)
            if msg.topic == marker:
                return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    broker: SecureBroker, ident: Identity | None, port: int | None = None, client_id: str | None = None
) -> Client:
    # A second connection with the same client id kicks the first off; tests that open two say so.
    cid = client_id or (ident.name if ident else "anon")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    c.tls_set(
        ca_certs=str(broker.ca),
        certfile=str(ident.cert) if ident else None,
        keyfile=str(ident.key) if ident else None,
    )
    wrapper = Client(ident.name if ident else "anon", c)
    connected = threading.Event()
    result: list[ReasonCode] = []

    def on_connect(cl: mqtt.Client, u: object, flags: object, rc: ReasonCode, props: object) -> None:
        result.append(rc)
        connected.set()

    def on_publish(cl: mqtt.Client, u: object, mid: int, rc: ReasonCode, props: object) -> None:
        wrapper.acks[mid] = rc.value

    def on_disconnect(cl: mqtt.Client, u: object, flags: object, rc: ReasonCode, props: object) -> None:
        if not connected.is_set():  # the broker dropped us during or right after the handshake
            result.append(rc)
            connected.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    c.on_publish = on_publish
    c.on_message = lambda cl, u, m: wrapper.messages.put(m)
    c.on_subscribe = lambda cl, u, mid, codes, props: wrapper.subscribed.set()
    c.connect("127.0.0.1", port or broker.port, keepalive=10)
    c.loop_start()
    if not connected.wait(5) or result[0].is_failure:
        c.loop_stop()
        raise ConnectionError(f"{wrapper.name}: not connected ({result[0] if result else 'no CONNACK'})")
    return wrapper


class CloudServer:
    """The real cloud app (create_app) under uvicorn in a thread, on SQLite, with enrollment set up."""

    def __init__(
        self, workdir: Path, ca_dir: Path, device_broker: str, broker_dir: Path | None, **overrides: object
    ) -> None:
        import uvicorn

        from cloud.app import create_app
        from cloud.settings import EnrollmentSettings, Settings

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = str(overrides.pop("db_url", None) or f"sqlite:///{workdir / 'cloud.db'}")
        settings = Settings(
            db_url=self.db_url,
            clips=str(workdir / "clips"),
            public_url=self.url,
            port=self.port,
            secret_key="x" * 32,
            enrollment=EnrollmentSettings(ca_dir=ca_dir, broker_url=device_broker, broker_dir=broker_dir),
            **{"broker_url": None, **overrides},
        )
        self.app = create_app(settings)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "CloudServer":
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            threading.Event().wait(0.05)
        raise RuntimeError("the cloud app did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def engine(self) -> "Engine":
        from cloud.db import make_engine

        return make_engine(self.db_url)

    def user_key(self, name: str = "operator1", role: str = "operator") -> str:
        """A user with an API key, made straight in the database as an admin would."""
        from cloud.auth import create_user, issue_api_key
        from cloud.db import session_scope

        engine = self.engine()
        with session_scope(engine) as s:
            key = issue_api_key(s, create_user(s, name, role, "correct horse battery"))
        engine.dispose()
        return key
