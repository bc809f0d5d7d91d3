"""A station refuses a certificate of another ward, and says in words what is wrong with TLS."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.registry import broker_config as bc
from provisioning import pki
from tests.provisioning.conftest import MakeBroker, ca_dir, issue, secure_broker
from tests.support.receipts import wait_for

__all__ = ["ca_dir", "secure_broker"]

REGISTRY = bc.Registry(devices=[bc.RegistryDevice(id="cam-a", ward="ben-nghe")], wards=["ben-nghe"])


def _listen(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matthan", "ward", "listen", *argv], capture_output=True, text=True, timeout=60
    )


def _one_line_refusal(out: subprocess.CompletedProcess[str], words: str) -> None:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr and "Unspecified error" not in out.stderr
    assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_certificate_of_another_ward_is_refused_before_connecting(ca_dir: Path, tmp_path: Path) -> None:
    other = issue(ca_dir, "station:da-kao", tmp_path, device=False)
    out = _listen("--ward", "ben-nghe", "--broker", "mqtts://127.0.0.1:1", "--ca", str(ca_dir / "ca.pem"),
                  "--cert", str(other.cert), "--key", str(other.key))  # fmt: skip
    _one_line_refusal(out, "--ward ben-nghe does not match the certificate, which is for ward da-kao")
    device = issue(ca_dir, "cam-a", tmp_path)
    out = _listen("--ward", "ben-nghe", "--broker", "mqtts://127.0.0.1:1", "--ca", str(ca_dir / "ca.pem"),
                  "--cert", str(device.cert), "--key", str(device.key))  # fmt: skip
    _one_line_refusal(out, "is for 'cam-a', not a ward station")


@pytest.mark.parametrize("what", ["foreign-client-cert", "foreign-ca"])
def test_tls_failures_are_named_with_what_to_fix(
    what: str, ca_dir: Path, secure_broker: MakeBroker, tmp_path: Path
) -> None:
    broker = secure_broker(REGISTRY)
    good = issue(ca_dir, "station:ben-nghe", tmp_path / "good", device=False)
    stranger_ca = pki.init_ca(tmp_path / "stranger-ca", name="someone else's CA")
    stranger = issue(stranger_ca, "station:ben-nghe", tmp_path / "stranger", device=False)
    url = f"mqtts://127.0.0.1:{broker.port}"
    if what == "foreign-client-cert":
        out = _listen("--ward", "ben-nghe", "--broker", url, "--ca", str(broker.ca),
                      "--cert", str(stranger.cert), "--key", str(stranger.key))  # fmt: skip
        _one_line_refusal(out, "it was not issued by the broker's CA")
    else:
        out = _listen("--ward", "ben-nghe", "--broker", url, "--ca", str(stranger_ca / "ca.pem"),
                      "--cert", str(good.cert), "--key", str(good.key))  # fmt: skip
        _one_line_refusal(out, "the broker's certificate is not signed by --ca")


def test_the_stations_own_certificate_passes_the_checks_and_connects(
    ca_dir: Path, secure_broker: MakeBroker, tmp_path: Path
) -> None:
    broker = secure_broker(REGISTRY)
    good = issue(ca_dir, "station:ben-nghe", tmp_path, device=False)
    err = tmp_path / "station.err"
    with err.open("wb") as errf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "matthan", "ward", "listen", "--ward", "ben-nghe",
             "--broker", f"mqtts://127.0.0.1:{broker.port}", "--ca", str(broker.ca),
             "--cert", str(good.cert), "--key", str(good.key), "--no-confirm"],
            stdout=subprocess.DEVNULL, stderr=errf,
        )  # fmt: skip
    try:
        wait_for(lambda: "mqtt connected" in err.read_text() or proc.poll() is not None, 20, "connected")
        assert proc.poll() is None, err.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
