"""Enrollment end to end: the real cloud app under uvicorn, the CLI on the "device", a real
Mosquitto whose ACL the cloud regenerates and reloads when the device joins or is revoked."""

import os
import pwd
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import update

from cloud.models import ClaimToken, Device
from cloud.registry import broker_config as bc
from matthan.cli import main
from matthan_wire import Kind
from matthan_wire.identities import CLOUD_USER
from matthan_wire.timeutil import utc_now
from matthan_wire.topics import device_topic
from provisioning import pki
from tests.provisioning.conftest import CloudServer, Identity, MakeBroker, SecureBroker, connect, issue

Site = tuple[SecureBroker, CloudServer]


@pytest.fixture
def site(secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path) -> Iterator[Site]:
    broker = secure_broker(bc.Registry())
    cloud = CloudServer(tmp_path / "cloud", ca_dir, f"mqtts://127.0.0.1:{broker.port}", broker.dir).start()
    yield broker, cloud
    cloud.stop()


def claim(cloud: CloudServer, key: str, ward: str, device_id: str | None = None) -> str:
    body = {"ward": ward, **({"device_id": device_id} if device_id else {})}
    resp = httpx.post(
        f"{cloud.url}/api/v1/claim-tokens", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def enroll(cloud: CloudServer, token: str, device: str, dest: Path, *extra: str) -> int:
    return main(["provision", "enroll", "--cloud", cloud.url, "--token", token, "--device-id", device,
                 "--dir", str(dest), "--storage", str(dest / "data"), *extra])  # fmt: skip


def test_enroll_end_to_end(capsys: pytest.CaptureFixture[str], site: Site, tmp_path: Path) -> None:
    broker, cloud = site
    key = cloud.user_key()
    token = claim(cloud, key, "ben-nghe")
    dest = tmp_path / "etc-matthan"
    assert enroll(cloud, token, "q1-rex-01", dest, "--camera", "rtsp://admin:s3cret@10.1.2.3/stream1") == 0

    modes = {p.name: p.stat().st_mode & 0o777 for p in dest.iterdir() if p.is_file()}
    assert modes["device.key"] == 0o600 and modes["device.token"] == 0o600 and modes["device.yaml"] == 0o600
    assert main(["--lang", "en", "device", "validate", "--config", str(dest / "device.yaml")]) == 0
    assert "OK: device q1-rex-01 (ward ben-nghe): 1 camera(s)" in capsys.readouterr().out
    cert = pki.load_cert(dest / "device.pem")
    assert pki.common_name(cert) == "q1-rex-01"
    assert cert.not_valid_after_utc - utc_now() < timedelta(days=pki.DEVICE_DAYS + 1)

    # The registry holds the certificate and only a redacted camera URL.
    with cloud.engine().connect() as conn:
        row = conn.execute(Device.__table__.select()).one()  # type: ignore[attr-defined]
        cam = conn.execute(__import__("cloud.models", fromlist=["Camera"]).Camera.__table__.select()).one()
    assert row.cert_serial == f"{cert.serial_number:x}" and row.ward == "ben-nghe"
    assert cam.source_redacted == "rtsp://***@10.1.2.3/stream1"

    # The cloud regenerated the ACL and reloaded the broker: the new device may publish at once.
    broker.wait_reloads(1)
    cloud_id = issue(broker.ca_dir, CLOUD_USER, tmp_path / "ids", device=False)
    listener = connect(broker, cloud_id)
    device = connect(broker, Identity("q1-rex-01", dest / "device.key", dest / "device.pem"))
    try:
        listener.subscribe("matthan/v1/#")
        topic = device_topic(Kind.ALERT, "ben-nghe", "q1-rex-01")
        assert device.publish(topic, b"{}") == 0
        assert listener.topics_until(topic) == [topic]
    finally:
        device.close()
        listener.close()

    # The device's upload token works on the media API.
    dev_token = (dest / "device.token").read_text().strip()
    resp = httpx.head(f"{cloud.url}/api/v1/media/ev-1/clip", headers={"Authorization": f"Bearer {dev_token}"})
    assert resp.status_code == 404  # authenticated; nothing uploaded yet

    # Single use: a second device with the same token is refused and nothing is written.
    other = tmp_path / "other"
    assert enroll(cloud, token, "q1-rex-02", other, "--camera", "rtsp://10.1.2.4/s") == 1
    assert "already used (by q1-rex-01" in capsys.readouterr().err
    assert not other.exists()


def test_expired_wrong_ward_and_wrong_device_tokens_are_refused(
    capsys: pytest.CaptureFixture[str],
    site: Site,
    tmp_path: Path,
) -> None:
    _, cloud = site
    key = cloud.user_key()
    cam = ("--camera", "rtsp://10.1.2.3/s")

    expired = claim(cloud, key, "ben-nghe")
    with cloud.engine().begin() as conn:
        conn.execute(update(ClaimToken).values(expires_at=utc_now() - timedelta(minutes=1)))
    assert enroll(cloud, expired, "dev-1", tmp_path / "a", *cam) == 1
    assert "claim token expired at" in capsys.readouterr().err

    ward_token = claim(cloud, key, "ben-nghe")
    assert enroll(cloud, ward_token, "dev-1", tmp_path / "b", "--ward", "da-kao", *cam) == 1
    assert "claim token is for ward ben-nghe, not da-kao" in capsys.readouterr().err

    bound = claim(cloud, key, "ben-nghe", device_id="dev-9")
    assert enroll(cloud, bound, "dev-1", tmp_path / "c", *cam) == 1
    assert "bound to device dev-9, not dev-1" in capsys.readouterr().err

    assert enroll(cloud, "mct_not-a-real-token", "dev-1", tmp_path / "d", *cam) == 1
    assert "claim token unknown" in capsys.readouterr().err

    # A device registered in one ward cannot be claimed with another ward's token.
    main(["cloud", "import", str(_csv(tmp_path, "s,da-kao,10.78,106.70,rtsp://10.9.9.9/a,dk-01")),
          "--db", cloud.db_url, "--tokens", str(tmp_path / "tokens.csv")])  # fmt: skip
    assert enroll(cloud, ward_token, "dk-01", tmp_path / "e") == 1
    assert "device dk-01 belongs to ward da-kao" in capsys.readouterr().err

    assert not any((tmp_path / d).exists() for d in "abcde")
    # The refused attempts consumed nothing: the ward token still enrolls a device of its ward.
    assert enroll(cloud, ward_token, "dev-1", tmp_path / "f", "--ward", "ben-nghe", *cam) == 0


def test_imported_device_enrolls_with_its_token_and_config(site: Site, tmp_path: Path) -> None:
    _, cloud = site
    csv_file = _csv(
        tmp_path,
        "Rex plaza,ben-nghe,10.7769,106.7009,rtsp://u:p@10.1.2.3/a,rex-01",
        "Rex corner,ben-nghe,10.7770,106.7010,rtsp://u:p@10.1.2.4/a,rex-01",
    )
    tokens = tmp_path / "tokens.csv"
    assert main(["cloud", "import", str(csv_file), "--db", cloud.db_url, "--tokens", str(tokens)]) == 0
    assert tokens.stat().st_mode & 0o777 == 0o600
    token = tokens.read_text().splitlines()[1].split(",")[2]
    dest = tmp_path / "dev"
    assert enroll(cloud, token, "rex-01", dest) == 0
    text = (dest / "device.yaml").read_text()
    assert "rtsp://u:p@10.1.2.3/a" in text and "rtsp://u:p@10.1.2.4/a" in text


def test_revoked_device_is_refused_by_broker_and_api(site: Site, tmp_path: Path) -> None:
    broker, cloud = site
    operator = cloud.user_key()
    token = claim(cloud, operator, "ben-nghe")
    dest = tmp_path / "dev"
    assert enroll(cloud, token, "q1-rex-01", dest, "--camera", "rtsp://10.1.2.3/s") == 0
    ident = Identity("q1-rex-01", dest / "device.key", dest / "device.pem")
    connect(broker, ident).close()
    admin = cloud.user_key("boss", "admin")

    refused = httpx.post(
        f"{cloud.url}/api/v1/devices/q1-rex-01/revoke", headers={"Authorization": f"Bearer {operator}"}
    )
    assert refused.status_code == 403  # operators do not revoke; admins do
    resp = httpx.post(
        f"{cloud.url}/api/v1/devices/q1-rex-01/revoke", headers={"Authorization": f"Bearer {admin}"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["broker_reloaded"] is True and body["serials"] == [
        f"{pki.load_cert(dest / 'device.pem').serial_number:x}"
    ]

    broker.wait_reloads(2)  # the cloud's SIGHUPs: one on enrollment, one on revocation
    with pytest.raises(OSError):
        connect(broker, ident)
    dev_token = (dest / "device.token").read_text().strip()
    upload = httpx.get(
        f"{cloud.url}/api/v1/media/ev-1/clip", headers={"Authorization": f"Bearer {dev_token}"}
    )
    assert upload.status_code == 403 and "q1-rex-01 is revoked" in upload.json()["detail"]


def test_renew_issues_a_new_certificate_that_the_broker_accepts(site: Site, tmp_path: Path) -> None:
    broker, cloud = site
    token = claim(cloud, cloud.user_key(), "ben-nghe")
    dest = tmp_path / "dev"
    assert enroll(cloud, token, "q1-rex-01", dest, "--camera", "rtsp://10.1.2.3/s") == 0
    before = pki.load_cert(dest / "device.pem")
    # A daily timer runs it with --if-due: nothing happens while the certificate is young.
    assert main(["provision", "renew", "--config", str(dest / "device.yaml"), "--if-due"]) == 0
    assert pki.load_cert(dest / "device.pem").serial_number == before.serial_number
    assert main(["provision", "renew", "--config", str(dest / "device.yaml")]) == 0
    after = pki.load_cert(dest / "device.pem")
    assert after.serial_number != before.serial_number
    # Ten days left: --if-due renews.
    key = serialization.load_pem_private_key((dest / "device.key").read_bytes(), None)
    short = pki.Authority(broker.ca_dir).sign_csr(pki.make_csr(key, "q1-rex-01"), "q1-rex-01", days=10)  # type: ignore[arg-type]
    (dest / "device.pem").write_bytes(pki.cert_pem(short))
    assert main(["provision", "renew", "--config", str(dest / "device.yaml"), "--if-due"]) == 0
    after = pki.load_cert(dest / "device.pem")
    assert after.serial_number != short.serial_number
    assert after.not_valid_after_utc - utc_now() > timedelta(days=pki.DEVICE_DAYS - 1)
    assert (dest / "device.key").stat().st_mode & 0o777 == 0o600
    connect(broker, Identity("q1-rex-01", dest / "device.key", dest / "device.pem")).close()


def test_cloud_ingest_and_device_talk_through_the_acl(
    secure_broker: MakeBroker, ca_dir: Path, tmp_path: Path
) -> None:
    """The cloud's own MQTT link (CN cloud:ingest) ingests an enrolled device's alert and receipts it;
    the device gets its retained desired config and the receipt: every hop through the ACL."""
    from cloud.models import AlertRow

    broker = secure_broker(bc.Registry())
    cloud_id = issue(ca_dir, CLOUD_USER, tmp_path / "ids", device=False)
    cloud = CloudServer(
        tmp_path / "cloud",
        ca_dir,
        f"mqtts://127.0.0.1:{broker.port}",
        broker.dir,
        broker_url=f"mqtts://127.0.0.1:{broker.port}",
        broker_ca=str(broker.ca),
        broker_cert=str(cloud_id.cert),
        broker_key=str(cloud_id.key),
    ).start()
    try:
        dest = tmp_path / "dev"
        token = claim(cloud, cloud.user_key(), "ben-nghe")
        assert enroll(cloud, token, "q1-rex-01", dest, "--camera", "rtsp://10.1.2.3/s") == 0
        broker.wait_reloads(1)
        device = connect(broker, Identity("q1-rex-01", dest / "device.key", dest / "device.pem"))
        try:
            desired = device_topic(Kind.CONFIG_DESIRED, "ben-nghe", "q1-rex-01")
            receipt = device_topic(Kind.RECEIPT, "ben-nghe", "q1-rex-01")
            device.subscribe(desired)
            assert device.messages.get(timeout=5).topic == desired  # retained at enrollment
            device.subscribe(receipt)
            raw = (Path(__file__).parents[1] / "wire" / "golden" / "alert_start.json").read_bytes().strip()
            assert device.publish(device_topic(Kind.ALERT, "ben-nghe", "q1-rex-01"), raw) == 0
            got = device.messages.get(timeout=10)
            assert got.topic == receipt and b"3f1c2a9e-7b1d-4c1e-9a51-0c6f2d0e8b11" in got.payload
        finally:
            device.close()
        engine = cloud.engine()
        with engine.connect() as conn:
            rows = conn.execute(AlertRow.__table__.select()).all()  # type: ignore[attr-defined]
        engine.dispose()
        assert [r.event_id for r in rows] == ["3f1c2a9e-7b1d-4c1e-9a51-0c6f2d0e8b11"]
    finally:
        cloud.stop()


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "cameras.csv"
    path.write_text("site,ward,lat,lon,source,device\n" + "\n".join(rows) + "\n")
    return path


def test_enroll_hands_the_files_to_the_agents_user(site: Site, tmp_path: Path) -> None:
    _, cloud = site
    token = claim(cloud, cloud.user_key(), "ben-nghe")
    dest = tmp_path / "etc-matthan"
    # An unknown user is refused before the single-use token is spent.
    cam = ("--camera", "rtsp://10.1.2.3/stream1")
    assert enroll(cloud, token, "q1-rex-09", dest, *cam, "--owner", "no-such-user-here") == 1
    assert not dest.exists()
    if os.geteuid() != 0:
        pytest.skip("handing files to another user needs root")
    nobody = pwd.getpwnam("nobody")
    assert enroll(cloud, token, "q1-rex-09", dest, *cam, "--owner", "nobody") == 0
    for name in ("device.key", "device.token", "device.yaml", "device.pem", "ca.pem"):
        assert (dest / name).stat().st_uid == nobody.pw_uid, name
    assert (dest / "device.key").stat().st_mode & 0o777 == 0o600
    assert (dest / "data").stat().st_uid == nobody.pw_uid
