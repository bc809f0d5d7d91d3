"""`matthan demo`: a whole site on this machine, built through the real flows.

A project CA, a Mosquitto broker with mTLS and per-device ACLs (as `cloud broker-config`
writes it), the cloud service on SQLite with a local clip store, device agents enrolled with
claim tokens and running on the sample clips (looping), zones set as desired config through the
API, and a ward police station's subscriber whose alerts are shown on this terminal. Every part
is the process a deployment runs; the supervisor starts them in order and stops them in reverse.
"""

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from matthan import assets
from matthan.children import interrupt_on_signals
from matthan.errors import UserError
from matthan.supervisor import Service, Supervisor

log = logging.getLogger("matthan.demo")

WARD = "ben-nghe"
ADMIN = "admin"

# Zones placed on what the sample clips show (MANIFEST.md): on vtest the walkway with 3–9
# pedestrians and the parked car at the top right; on one-by-one the table where visitors stand.
DEMO_DEVICES: list[dict[str, Any]] = [
    {
        "id": "q1-demo-01",
        "clip": "video/vtest_480x360.mp4",
        "site": "Phố đi bộ Nguyễn Huệ (đầu Lê Lợi)",
        "address": "Nguyễn Huệ, phường Bến Nghé, Quận 1, TP. Hồ Chí Minh",
        "lat": 10.7745,
        "lon": 106.7038,
        "zones": [
            {"name": "walkway", "title": "vỉa hè phố đi bộ",
             "polygon": [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]],
             "rules": [{"type": "crowd", "title": "Tụ tập đông người trên phố đi bộ", "labels": ["person"],
                        "min_count": 6, "min_duration_s": 8}]},
            {"name": "curb", "polygon": [[0.8, 0.0], [1.0, 0.0], [1.0, 0.3], [0.8, 0.3]],
             "rules": [{"type": "illegal_parking", "labels": ["car", "truck"], "min_duration_s": 20,
                        "min_score": 0.6}]},
        ],
    },
    {
        "id": "q1-demo-02",
        "clip": "video/one-by-one-person-detection.mp4",
        "site": "Cổng trụ sở UBND phường Bến Nghé",
        "address": "Lê Thánh Tôn, phường Bến Nghé, Quận 1, TP. Hồ Chí Minh",
        "lat": 10.7792,
        "lon": 106.7009,
        "zones": [
            {"name": "table", "title": "bàn tiếp dân",
             "polygon": [[0.4, 0.75], [0.75, 0.75], [0.75, 1.0], [0.4, 1.0]],
             "rules": [{"type": "loitering", "labels": ["person"], "min_duration_s": 10}]},
        ],
    },
]  # fmt: skip


class DemoError(UserError):
    pass


@dataclass
class Ports:
    broker: int
    cloud: int


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise DemoError("no free TCP port on 127.0.0.1")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _need(binary: str, package: str) -> str:
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not found:
        raise DemoError(f"{binary} is not installed: apt-get install {package} (./dev.sh demo does it)")
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _matthan(*args: str) -> list[str]:
    return [sys.executable, "-m", "matthan", *args]


class Demo:
    def __init__(self, workdir: Path, ports: Ports, devices: int = 2) -> None:
        self.workdir = workdir
        self.ports = ports
        self.devices = DEMO_DEVICES[: max(1, min(devices, len(DEMO_DEVICES)))]
        self.sup = Supervisor()
        self.password = secrets.token_urlsafe(9)
        self.api_key = ""
        self.cloud_url = f"http://127.0.0.1:{ports.cloud}"
        self.broker_url = f"mqtts://127.0.0.1:{ports.broker}"
        # The broker drops to the `mosquitto` user when started as root; its files must be
        # reachable by that user, which a home folder (0700) is not.
        self.broker_dir = Path(tempfile.mkdtemp(prefix="matthan-demo-broker-"))
        self.db_url = f"sqlite:///{workdir / 'cloud.db'}"

    # -- setup -------------------------------------------------------------------------------

    def run(self, duration_s: float | None) -> int:
        # SIGTERM (a service manager, `kill`) and SIGHUP (the terminal closed) stop the site as
        # Ctrl-C does: through the finally in _run, in reverse order. A SIGKILL runs no code of
        # ours; the services' death signal (matthan.children) covers it.
        with interrupt_on_signals():
            return self._run(duration_s)

    def _run(self, duration_s: float | None) -> int:
        mosquitto = _need("mosquitto", "mosquitto")
        _need("ffmpeg", "ffmpeg")
        clips = self._assets()
        try:
            self._pki()
            self._broker(mosquitto)
            self._cloud()
            for dev in self.devices:
                self._enroll_and_configure(dev, clips[dev["clip"]])
            for dev in self.devices:
                self._agent(dev)
            self._ward()
            self._banner()
            return self._wait(duration_s)
        finally:
            log.info("stopping the site in reverse order")
            self.sup.stop_all()
            shutil.rmtree(self.broker_dir, ignore_errors=True)

    def _assets(self) -> dict[str, Path]:
        list(assets.fetch())
        return {d["clip"]: assets.path(d["clip"]) for d in DEMO_DEVICES}

    def _pki(self) -> None:
        from provisioning import pki

        self.ca_dir = pki.init_ca(self.workdir / "ca")
        ca = pki.Authority(self.ca_dir)
        ids = self.workdir / "identities"
        ca.issue_keypair("cloud:ingest", server=False).write(ids / "cloud.key", ids / "cloud.pem")
        ca.issue_keypair(f"station:{WARD}", server=False).write(ids / "station.key", ids / "station.pem")
        self.ids = ids

    def _broker(self, mosquitto: str) -> None:
        from cloud.registry import broker_config as bc

        site = bc.BrokerSite(port=self.ports.broker, bind="127.0.0.1", names=["localhost", "127.0.0.1"])
        bc.write_broker_config(bc.Registry(wards=[WARD]), self.ca_dir, self.broker_dir, site)
        self.sup.start(
            Service(
                "broker",
                [mosquitto, "-c", str(self.broker_dir / "mosquitto.conf")],
                self.workdir / "logs" / "broker.log",
                ready=lambda: port_open(self.ports.broker),
                ready_timeout_s=15,
            )
        )

    def _cloud(self) -> None:
        clips_dir = self.workdir / "clips"
        env = {
            "MATTHAN_CLOUD_BROKER_CA": str(self.ca_dir / "ca.pem"),
            "MATTHAN_CLOUD_BROKER_CERT": str(self.ids / "cloud.pem"),
            "MATTHAN_CLOUD_BROKER_KEY": str(self.ids / "cloud.key"),
            "MATTHAN_CLOUD_SECRET_KEY": secrets.token_urlsafe(32),
            "MATTHAN_CLOUD_HEALTH_INTERVAL_S": "10",
            "MATTHAN_PROVISION_CA_DIR": str(self.ca_dir),
            "MATTHAN_PROVISION_BROKER_URL": self.broker_url,
            "MATTHAN_PROVISION_BROKER_DIR": str(self.broker_dir),
        }
        add = _matthan("cloud", "user", "add", "--db", self.db_url, "--name", ADMIN, "--role", "admin",
                       "--password-stdin", "--api-key")  # fmt: skip
        out = subprocess.run(add, input=self.password + "\n", capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise DemoError(f"creating the admin failed: {out.stderr.strip()}")
        self.api_key = next(
            (ln.split(":", 1)[1].strip() for ln in out.stdout.splitlines() if ln.startswith("api key:")), ""
        )
        if not self.api_key:
            raise DemoError(f"no API key in: {out.stdout.strip()}")
        self.sup.start(
            Service(
                "cloud",
                _matthan("cloud", "serve", "--db", self.db_url, "--broker", self.broker_url, "--clips",
                         str(clips_dir), "--port", str(self.ports.cloud), "--public-url", self.cloud_url),
                self.workdir / "logs" / "cloud.log",
                ready=self._cloud_ready,
                env=env,
            )
        )  # fmt: skip

    def _cloud_ready(self) -> bool:
        try:
            return httpx.get(f"{self.cloud_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(
            method, f"{self.cloud_url}/api/v1{path}", json=body, timeout=30,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )  # fmt: skip
        if resp.status_code >= 400:
            raise DemoError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    def _enroll_and_configure(self, dev: dict[str, Any], clip: Path) -> None:
        token = self._api("POST", "/claim-tokens", {"ward": WARD, "device_id": dev["id"]})["token"]
        etc = self.workdir / "devices" / dev["id"]
        enroll = _matthan("provision", "enroll", "--cloud", self.cloud_url, "--token", token, "--device-id",
                          dev["id"], "--camera", str(clip), "--ward", WARD, "--dir", str(etc), "--storage",
                          str(etc / "data"))  # fmt: skip
        out = subprocess.run(enroll, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise DemoError(f"enrolling {dev['id']} failed: {out.stderr.strip()}")
        log.info("enrolled device=%s with a claim token", dev["id"])
        # The operations centre draws the zones: a new desired config, published retained.
        source = yaml.safe_load((etc / "device.yaml").read_text())["cameras"][0]["source"]
        site = {
            "cameras": [{"id": "cam-1", "name": dev["site"], "source": source, "loop": True,
                         "site": {"name": dev["site"], "address": dev["address"], "lat": dev["lat"],
                                  "lon": dev["lon"]},
                         "detect": {"fps": 5}, "zones": dev["zones"],
                         "record": {"pre_capture_s": 3, "post_capture_s": 3}}],
            "health": {"interval_s": 10},
        }  # fmt: skip
        self._api("PUT", f"/devices/{dev['id']}/config", site)
        self._api("PUT", f"/devices/{dev['id']}/cameras/cam-1",
                  {"site_name": dev["site"], "address": dev["address"], "lat": dev["lat"],
                   "lon": dev["lon"]})  # fmt: skip

    def _agent(self, dev: dict[str, Any]) -> None:
        config = self.workdir / "devices" / dev["id"] / "device.yaml"
        self.sup.start(
            Service(
                f"device {dev['id']}",
                _matthan("device", "run", "--config", str(config)),
                self.workdir / "logs" / f"{dev['id']}.log",
                ready=lambda: self._online(dev["id"]),
                ready_timeout_s=60,
            )
        )

    def _online(self, device_id: str) -> bool:
        try:
            return bool(self._api("GET", f"/devices/{device_id}").get("online"))
        except (DemoError, httpx.HTTPError):
            return False

    def _ward(self) -> None:
        self.sup.start(
            Service(
                f"ward station {WARD}",
                _matthan("ward", "listen", "--ward", WARD, "--broker", self.broker_url,
                         "--ca", str(self.ca_dir / "ca.pem"), "--cert", str(self.ids / "station.pem"),
                         "--key", str(self.ids / "station.key"),
                         "--state", str(self.workdir / "ward" / "station.db"),
                         "--snapshots", str(self.workdir / "ward" / "snapshots"),
                         "--console-url", self.cloud_url),
                self.workdir / "ward" / "alerts.log",
                # Connected with its subscriptions sent: alerts from now on reach the station.
                ready=lambda: "mqtt connected" in _read(self.workdir / "ward" / "alerts.log"),
                ready_timeout_s=60,
                echo_stdout=True,
            )
        )  # fmt: skip

    def _banner(self) -> None:
        (self.workdir / "login.json").write_text(
            json.dumps(
                {"url": self.cloud_url, "user": ADMIN, "password": self.password, "api_key": self.api_key}
            )
        )
        print(
            f"\nmatthan demo is running.\n"
            f"  console:   {self.cloud_url}/   user {ADMIN}   password {self.password}\n"
            f"  broker:    {self.broker_url} (mTLS; CA {self.ca_dir / 'ca.pem'})\n"
            f"  devices:   {', '.join(d['id'] for d in self.devices)} on the sample clips, looping\n"
            f"  logs:      {self.workdir / 'logs'}\n"
            f"Alerts of ward {WARD} appear below as its police station receives them.\n"
            f"Ctrl-C (or SIGTERM, SIGHUP) stops everything.\n",
            flush=True,
        )

    def _wait(self, duration_s: float | None) -> int:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while deadline is None or time.monotonic() < deadline:
                dead = self.sup.dead()
                if dead is not None:
                    log.error("%s stopped unexpectedly: %s", dead.name, Supervisor.tail(dead))
                    return 1
                time.sleep(0.5)
        except KeyboardInterrupt as exc:
            print(f"\nstopping ({exc or 'Ctrl-C'})…", flush=True)
        return 0


def run_demo(workdir: Path, duration_s: float | None, broker_port: int, cloud_port: int, devices: int) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    os.environ.setdefault("MATTHAN_ASSETS_DIR", str(assets.default_dir()))
    ports = Ports(broker=free_port(broker_port), cloud=free_port(cloud_port))
    return Demo(workdir, ports, devices).run(duration_s)
