"""A real site for fault tests: a device's delivery path over mTLS and a ward station process.

The broker (the one `broker-config` generates) and the PKI come from tests/provisioning/conftest.py,
the cloud from cloud.app.create_app; here are the two ends an alert travels between.
"""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from device.outbox import MessageKind, NewMessage, Outbox
from device.outbox_publisher import OutboxPublisher
from matthan.backoff import Backoff
from matthan.mqtt import MqttLink
from matthan_wire import Alert, Kind, encode
from matthan_wire.config import BrokerConfig, OutboxConfig
from matthan_wire.topics import device_topic
from tests.support.receipts import wait_for


class OutboxDevice:
    """The agent's delivery path as device/agent.py wires it (outbox → publisher → link), with a
    generator that puts alerts in the outbox at a steady rate, as cameras would."""

    def __init__(self, db: Path, broker: BrokerConfig, base: Alert, resend_after_s: float = 5.0) -> None:
        self.base = base
        self.ward, self.device = base.ward, base.device_id
        self.outbox = Outbox(db, OutboxConfig(resend_after_s=resend_after_s))
        self.publisher: OutboxPublisher
        self.link = MqttLink(
            broker,
            self.device,
            subscriptions=[(device_topic(Kind.RECEIPT, self.ward, self.device), 1)],
            on_message=lambda topic, payload: self.publisher.on_receipt(payload),
            on_published=lambda mid, ok: self.publisher.on_published(mid, ok),
            status_topic=device_topic(Kind.STATUS, self.ward, self.device),
            backoff=Backoff(initial=0.2, maximum=2.0),
        )
        self.publisher = OutboxPublisher(self.outbox, self.link)
        self.generated: list[str] = []
        self._lock = threading.Lock()
        self._generating = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "OutboxDevice":
        self.link.start()
        self.publisher.start()
        return self

    def stop(self) -> None:
        self.stop_generating()
        self.publisher.stop()
        self.link.stop()
        self.outbox.close()

    def alert(self) -> str:
        with self._lock:
            event_id = f"ev-{len(self.generated):06d}"
            a = self.base.model_copy(
                update={"event_id": event_id, "seq": self.outbox.next_seq(), "snapshot": None}
            )
            self.outbox.put(
                [
                    NewMessage(
                        event_id,
                        MessageKind.ALERT,
                        device_topic(Kind.ALERT, self.ward, self.device),
                        encode(a),
                    )
                ]
            )
            self.generated.append(event_id)
        self.publisher.wake()
        return event_id

    def generate(self, per_second: float) -> None:
        """Alerts at a steady rate on a thread, until stop_generating()."""
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(1.0 / per_second):
                self.alert()

        self._thread = threading.Thread(target=run, name="alert-generator", daemon=True)
        self._thread.start()

    def stop_generating(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class StationProcess:
    """`matthan ward listen --json` with the station's certificate and its own state file."""

    def __init__(self, workdir: Path, ward: str, broker_url: str, ca: Path, cert: Path, key: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.out, self.err = workdir / "station.out", workdir / "station.err"
        self.argv = [
            sys.executable, "-m", "matthan", "ward", "listen", "--ward", ward, "--broker", broker_url,
            "--ca", str(ca), "--cert", str(cert), "--key", str(key), "--json",
            "--state", str(workdir / "station.db"),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "StationProcess":
        before = self.readiness()
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        self.wait_ready(before + 1)
        return self

    def readiness(self) -> int:
        """How many times it logged that the broker acknowledged all its subscriptions."""
        return self.err.read_text().count("station ready") if self.err.exists() else 0

    def wait_ready(self, count: int, timeout: float = 30) -> None:
        wait_for(lambda: self.readiness() >= count, timeout, f"the station's readiness #{count}")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(15)
        self.proc = None
        return code

    def shown(self) -> list[str]:
        """Event ids of the alerts it printed, in order (ward/lines.py: "kind" is alert or state)."""
        ids = []
        for line in self.out.read_text().splitlines() if self.out.exists() else []:
            body = json.loads(line)
            if body.get("kind") == "alert":
                ids.append(str(body["event_id"]))
        return ids
