"""The commissioning checklist against a real enrolled device: real broker with mTLS, real cloud,
real footage and the real model. Each failure is named by its item."""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlmodel import Session

from cloud.models import Device
from cloud.registry import broker_config as bc
from device.config_file import load_config
from matthan import i18n
from matthan.cli import main
from matthan_wire.config import DeviceConfig
from matthan_wire.timeutil import utc_now
from provisioning import pki
from provisioning.check import Checklist
from tests.provisioning.conftest import CloudServer, MakeBroker, SecureBroker
from tests.provisioning.test_enroll import claim, enroll
from tests.support.net import free_port

Enrolled = tuple[Path, SecureBroker, CloudServer]


@pytest.fixture
def enrolled(secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path, assets_dir: Path) -> Iterator[Enrolled]:
    broker = secure_broker(bc.Registry())
    cloud = CloudServer(tmp_path / "cloud", ca_dir, f"mqtts://127.0.0.1:{broker.port}", broker.dir).start()
    dest = tmp_path / "etc"
    # A keyframe every second, as a camera set up for recording by copy has.
    clip = assets_dir / "video" / "one-by-one-person-detection.mp4"
    assert (
        enroll(cloud, claim(cloud, cloud.user_key(), "ben-nghe"), "q1-rex-01", dest, "--camera", str(clip))
        == 0
    )
    broker.wait_reloads(1)
    yield dest / "device.yaml", broker, cloud
    cloud.stop()


def statuses(config: DeviceConfig, **kw: object) -> dict[str, tuple[str, str]]:
    return {i.name: (i.status, i.detail) for i in Checklist(config, **kw).run()}  # type: ignore[arg-type]


def test_checklist_passes_on_a_good_setup_and_reports_to_the_cloud(
    capsys: pytest.CaptureFixture[str],
    enrolled: Enrolled,
) -> None:
    config_path, _, cloud = enrolled
    assert main(["provision", "check", "--config", str(config_path), "--by", "tech-anh"]) == 0
    out, err = capsys.readouterr()
    assert "[1/8] certificate … pass" in err  # progress while it runs
    camera = next(x for x in out.splitlines() if x.startswith("camera cam-1"))
    assert "PASS" in camera and "768x432 h264" in camera and "keyframe every 1.0 s" in camera
    for name in ("certificate", "model", "broker", "cloud", "clock", "disk"):
        line = next(x for x in out.splitlines() if x.startswith(name))
        assert "PASS" in line, line
    assert "0 fail" in out and "report sent to the cloud" in out
    engine = cloud.engine()
    with Session(engine) as s:
        device = s.get(Device, "q1-rex-01")
        assert device is not None and device.commissioned_by == "tech-anh"
        assert device.commissioned_at is not None and utc_now() - device.commissioned_at < dt.timedelta(
            minutes=1
        )
        assert device.check_report is not None and device.check_report["ok"] is True
    engine.dispose()


def test_the_checklist_reads_in_the_technicians_language(
    capsys: pytest.CaptureFixture[str], enrolled: Enrolled
) -> None:
    config_path, _, _ = enrolled
    try:
        code = main(["provision", "check", "--config", str(config_path), "--no-report", "--lang", "vi"])
    finally:
        i18n.set_language("en")
    assert code == 0
    out, err = capsys.readouterr()
    assert "[1/8] chứng thư số … đạt" in err
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "q1-rex-01, còn hiệu lực đến" in lines["chứng thư số"]
    camera = lines["camera cam-1"]
    assert "768x432 h264, " in camera and " khung hình/giây" in camera
    assert "khung hình chính mỗi 1.0 giây" in camera
    assert "với danh nghĩa q1-rex-01, nhận lại tin thử sau" in lines["máy chủ MQTT"]
    assert "so với máy chủ trung tâm" in lines["đồng hồ"]
    assert "còn trống" in lines["ổ đĩa"] and "hạn mức" in lines["ổ đĩa"]
    assert out.splitlines()[-1].startswith("0 không đạt, ")


def test_unreachable_camera_is_named(
    capsys: pytest.CaptureFixture[str], enrolled: Enrolled, tmp_path: Path
) -> None:
    config_path, _, _ = enrolled
    text = config_path.read_text()
    source = next(line.split("source:")[1].strip() for line in text.splitlines() if "source:" in line)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(source, f"rtsp://admin:pw@127.0.0.1:{free_port()}/stream1"))
    assert main(["provision", "check", "--config", str(bad), "--no-report"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("camera cam-1"))
    assert "FAIL" in line and "pw" not in line  # the password never reaches the screen
    assert "1 fail" in out


def test_wrong_broker_address_is_named(enrolled: Enrolled) -> None:
    config_path, _, _ = enrolled
    config = load_config(config_path)
    wrong = config.model_copy(
        update={"broker": config.broker.model_copy(update={"url": f"mqtts://127.0.0.1:{free_port()}"})}
    )
    got = statuses(wrong)
    assert got["broker"][0] == "fail" and "127.0.0.1" in got["broker"][1]
    assert [n for n, (s, _) in got.items() if s == "fail"] == ["broker"]


def test_expired_certificate_is_named(enrolled: Enrolled, ca_dir: Path) -> None:
    config_path, _, _ = enrolled
    config = load_config(config_path)
    assert config.broker.cert is not None and config.broker.key is not None
    current = pki.load_cert(Path(config.broker.cert))
    ca = pki.Authority(ca_dir)
    now = utc_now()
    # The same key, certified by the real CA, for a period that ended yesterday.
    expired = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(ca.cert.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=91))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    Path(config.broker.cert).write_bytes(pki.cert_pem(expired))
    got = statuses(config)
    assert got["certificate"][0] == "fail" and "expired on" in got["certificate"][1]
    # The broker agrees: the handshake is refused.
    assert got["broker"][0] == "fail"


def test_skewed_clock_is_named(enrolled: Enrolled) -> None:
    config = load_config(enrolled[0])

    # The Date header gives the cloud's time to within ±1 s (see DATE_LAG_S); a loaded machine
    # delays uvicorn's once-a-second refresh a little more.
    def offset(detail: str) -> float:
        return float(detail.split(" s ")[0])

    far = statuses(config, clock=lambda: utc_now() + dt.timedelta(seconds=90))["clock"]
    assert far[0] == "fail" and 88.5 <= offset(far[1]) <= 91.5, far
    near = statuses(config, clock=lambda: utc_now() - dt.timedelta(seconds=6))["clock"]
    assert near[0] == "warn" and -7.5 <= offset(near[1]) <= -4.5, near
    good = statuses(config)["clock"]
    assert good[0] == "pass" and abs(offset(good[1])) <= 1.5, good


def _listening(port: int) -> bool:
    """True when something listens on the port (read from /proc, no probe connection)."""
    table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(
        f":{port:04X}" == cols[1][-5:] and cols[3] == "0A" for cols in (line.split() for line in table)
    )
