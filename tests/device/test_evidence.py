"""Evidence end to end: a real event from the real detector on real footage, its manifest signed by
the device with its enrolled key, uploaded, verified by the cloud, exported as a zip and checked
offline; then each tampering an investigator must catch, caught with its reason."""

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from cloud.auth import create_user, issue_api_key, issue_device_token
from cloud.db import make_engine, migrate
from cloud.models import AlertRow, Device, EvidenceCheck
from cloud.settings import EnrollmentSettings, Settings
from device.camera_worker import CameraWorker
from device.events import DetectedEvent
from device.evidence import EvidenceSigner
from device.media import DeviceMedia
from device.uploader import Uploader, UploadQueue
from matthan import jws
from matthan.cli import main as matthan_main
from matthan.evidence import verify_bundle
from matthan_wire import Alert
from matthan_wire.config import DeviceConfig, DeviceIdentity, ModelConfig
from matthan_wire.evidence import MANIFEST_TYP, EvidenceManifest
from matthan_wire.timeutil import utc_now
from provisioning import pki
from tests.cloud.conftest import served
from tests.device.test_uploader import FAST, walk_in_walk_out  # noqa: F401  (a fixture)
from tests.support.net import wait_until

DEVICE = DeviceIdentity(id="dev-1", ward="ben-nghe")


@dataclass
class Site:
    ca: pki.Authority
    url: str
    db_url: str
    device_token: str
    admin_key: str
    keys: Path

    def api(self, method: str, path: str, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def device_files(self, device_id: str) -> tuple[Path, Path]:
        key, cert = self.keys / f"{device_id}.key", self.keys / f"{device_id}.pem"
        if not key.exists():
            k = pki.new_key()
            cert_obj = self.ca.sign_csr(pki.make_csr(k, device_id), device_id)
            key.write_bytes(pki.key_pem(k))
            cert.write_bytes(pki.cert_pem(cert_obj))
        return key, cert


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A project CA, a cloud that trusts it (no broker), dev-1 with its token, an admin with a key."""
    d = tmp_path_factory.mktemp("evidence")
    pki.init_ca(d / "ca")
    db_url = f"sqlite:///{d / 'cloud.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with Session(engine) as s:
        token = issue_device_token(s, Device(id=DEVICE.id, ward=DEVICE.ward))
        key = issue_api_key(s, create_user(s, "an", "admin", "correct horse battery"))
        s.commit()
    engine.dispose()
    (d / "keys").mkdir()
    settings = Settings(
        db_url=db_url,
        broker_url=None,
        clips=str(d / "clips"),
        secret_key="t" * 32,
        enrollment=EnrollmentSettings(ca_dir=d / "ca"),
    )
    with served(settings) as url:
        yield Site(pki.Authority(d / "ca"), url, db_url, token, key, d / "keys")


@dataclass
class Recorded:
    alert: Alert
    bundle: bytes
    zip_path: Path


@pytest.fixture(scope="module")
def recorded(
    site: Site,
    walk_in_walk_out: Path,  # noqa: F811
    model_config: ModelConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Recorded:
    """One real event: detected, cut, signed and uploaded by the device, then exported by the cloud."""
    tmp = tmp_path_factory.mktemp("device")
    key, cert = site.device_files(DEVICE.id)
    (tmp / "device.token").write_text(site.device_token)
    config = DeviceConfig.model_validate(
        {
            "device": DEVICE.model_dump(),
            "broker": {"url": "mqtts://127.0.0.1:8883", "cert": str(cert), "key": str(key)},  # MQTT unused
            "cloud": {"url": site.url, "token_file": str(tmp / "device.token")},
            "storage": {"path": str(tmp / "storage")},
            "cameras": [
                {"id": "cam-1", "name": "Nguyễn Huệ / Lê Lợi", "source": str(walk_in_walk_out),
                 "detect": {"fps": 5}, "record": {"segment_s": 1, "pre_capture_s": 1, "post_capture_s": 1},
                 "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                            "rules": [{"type": "intrusion", "labels": ["person"]}]}]}
            ],
        }
    )  # fmt: skip
    media = DeviceMedia(config, model="ssd", model_path=model_config.path, config_version=lambda: 4)
    events: list[DetectedEvent] = []

    def on_event(ev: DetectedEvent) -> None:
        events.append(ev)
        media.clips.handle(ev.alert, ev.snapshot_jpeg)

    seq = iter(range(1, 1000))
    worker = CameraWorker(DEVICE, config.cameras[0], model_config, on_event, lambda: next(seq), paced=True)
    media.start()
    worker.start()
    try:
        assert worker.wait_finished(30)
        assert media.clips.wait_idle(30)
        wait_until(lambda: media.upload_view().backlog == 0, timeout=60, what="everything uploaded")
    finally:
        worker.stop()
        media.stop()
    assert media.clips.stats().manifests_signed >= 1 and media.clips.stats().manifests_failed == 0
    end = next(e.alert for e in events if e.alert.phase == "end")
    # What the MQTT ingest would have written for the event (the broker is not under test here).
    engine = make_engine(site.db_url)
    with Session(engine) as s:
        fields = set(AlertRow.model_fields) & set(Alert.model_fields) - {"clip"}
        s.add(AlertRow(**{f: getattr(end, f) for f in fields}, state="new"))
        s.commit()
    engine.dispose()
    r = site.api("GET", f"/api/v1/alerts/{end.event_id}/evidence.zip")
    assert r.status_code == 200, r.text
    zip_path = tmp / "evidence.zip"
    zip_path.write_bytes(r.content)
    return Recorded(end, r.content, zip_path)


def rewrite(bundle: bytes, **replace: bytes) -> bytes:
    """The same zip with some members replaced (names with '/' passed as '__')."""
    repl = {k.replace("__", "/").replace("_jpg", ".jpg").replace("_mp4", ".mp4").replace("_jws", ".jws")
            .replace("_pem", ".pem"): v for k, v in replace.items()}  # fmt: skip
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bundle)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, repl.get(name, src.read(name)))
    return out.getvalue()


def member(bundle: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        return zf.read(name)


def test_the_cloud_verified_the_devices_manifest_on_arrival(site: Site, recorded: Recorded) -> None:
    engine = make_engine(site.db_url)
    with Session(engine) as s:
        check = s.get(EvidenceCheck, recorded.alert.event_id)
    engine.dispose()
    assert check is not None and check.status == "valid", check
    assert check.signer == DEVICE.id
    state = site.api("GET", f"/api/v1/alerts/{recorded.alert.event_id}/evidence").json()
    assert state["status"] == "valid" and state["serial"] == check.serial


def test_the_export_verifies_offline_with_only_the_ca(site: Site, recorded: Recorded, capsys) -> None:  # type: ignore[no-untyped-def]
    verdict = verify_bundle(recorded.bundle, site.ca.cert)
    assert verdict.valid, verdict.problems
    m = verdict.manifest
    assert m is not None and m.event_id == recorded.alert.event_id and m.camera_id == "cam-1"
    assert set(m.files) == {"clip", "snapshot", "sidecar"}
    assert m.rule.config_version == 4 and m.rule.zone == "room" and m.site.name == "Nguyễn Huệ / Lê Lợi"
    assert m.model.name == "ssd_mobilenet_v1_coco_quant.tflite" and m.model.sha256 is not None
    with zipfile.ZipFile(io.BytesIO(recorded.bundle)) as zf:
        names = set(zf.namelist())
        summary = zf.read("summary.txt").decode()
        custody = zf.read("custody.json").decode()
    assert {
        "clip.mp4",
        "snapshot.jpg",
        "sidecar.json",
        "manifest.jws",
        "chain/ca.pem",
        "chain/crl.pem",
    } <= names
    assert any(n.startswith("chain/device-") for n in names)
    assert "Sự kiện / Event" in summary and "HỢP LỆ / VALID" in summary
    assert "evidence.export" in custody  # the export itself is in the chain of custody
    ca_file = recorded.zip_path.parent / "trusted-ca.pem"
    ca_file.write_bytes(pki.cert_pem(site.ca.cert))
    assert matthan_main(["evidence", "verify", str(recorded.zip_path), "--ca", str(ca_file)]) == 0
    assert ": valid (signed by dev-1" in capsys.readouterr().out


def test_a_modified_byte_in_the_clip_fails(site: Site, recorded: Recorded, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    clip = bytearray(member(recorded.bundle, "clip.mp4"))
    clip[len(clip) // 2] ^= 0x01
    verdict = verify_bundle(rewrite(recorded.bundle, clip_mp4=bytes(clip)), site.ca.cert)
    assert not verdict.valid
    assert verdict.problems == [verdict.problems[0]] and verdict.problems[0].startswith("clip: SHA-256")
    assert "modified or swapped" in verdict.problems[0]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(rewrite(recorded.bundle, clip_mp4=bytes(clip)))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pki.cert_pem(site.ca.cert))
    assert matthan_main(["evidence", "verify", str(bad), "--ca", str(ca_file)]) == 1
    assert "INVALID: clip: SHA-256" in capsys.readouterr().out


def test_a_swapped_snapshot_fails(site: Site, recorded: Recorded, assets_dir: Path) -> None:
    import cv2

    frame = cv2.VideoCapture(str(assets_dir / "video/vtest_480x360.mp4")).read()[1]
    other = bytes(cv2.imencode(".jpg", frame)[1])
    verdict = verify_bundle(rewrite(recorded.bundle, snapshot_jpg=other), site.ca.cert)
    assert [p.split(":")[0] for p in verdict.problems] == ["snapshot"], verdict.problems


def test_a_manifest_signed_by_another_device_fails(site: Site, recorded: Recorded) -> None:
    token = member(recorded.bundle, "manifest.jws").decode()
    payload = jws.parse(token, MANIFEST_TYP).payload  # dev-1's statement, word for word
    key2, cert2 = site.device_files("dev-2")
    forged = EvidenceSigner(
        DeviceIdentity(id="dev-2", ward=DEVICE.ward), key2, cert2, camera_for=lambda _: None
    ).sign(EvidenceManifest.model_validate_json(payload))
    verdict = verify_bundle(rewrite(recorded.bundle, manifest_jws=forged.encode()), site.ca.cert)
    assert verdict.problems == ["manifest names device dev-1 but is signed by device dev-2's certificate"]
    # dev-1's certificate in the header with dev-2's signature: the signature itself fails.
    h, p, sig = token.split(".")
    spliced = f"{h}.{p}.{forged.split('.')[2]}"
    verdict = verify_bundle(rewrite(recorded.bundle, manifest_jws=spliced.encode()), site.ca.cert)
    assert len(verdict.problems) == 1 and "signature does not verify" in verdict.problems[0]
    # And a CA the investigator does not trust is not ours.
    other_ca = site.keys / "other-ca"
    pki.init_ca(other_ca)
    verdict = verify_bundle(recorded.bundle, pki.load_cert(other_ca / "ca.pem"))
    assert any("does not verify against this CA" in p for p in verdict.problems), verdict.problems


def test_a_certificate_revoked_before_the_event_fails_and_the_cloud_flags_it(
    site: Site, recorded: Recorded, tmp_path: Path
) -> None:
    """Runs last: it revokes dev-1. A stolen key keeps signing after the revocation; its manifests fail."""
    site.ca.revoke(DEVICE.id)
    crl = (site.ca.crl_path).read_bytes()
    # The recorded event predates the revocation: still valid, with the revocation noted.
    earlier = verify_bundle(rewrite(recorded.bundle, chain__crl_pem=crl), site.ca.cert)
    assert earlier.valid and any("after the event" in n for n in earlier.notes), earlier
    # A new event signed with the revoked key.
    key, cert = site.device_files(DEVICE.id)
    signer = EvidenceSigner(DEVICE, key, cert, camera_for=lambda _: None)
    after = recorded.alert.model_copy(
        update={"event_id": "dev-1-late", "started_at": utc_now(), "ended_at": utc_now()}
    )
    snapshot = member(recorded.bundle, "snapshot.jpg")
    from matthan.evidence import sha256_hex

    manifest = signer.manifest(after, {"snapshot": (sha256_hex(snapshot), len(snapshot))})
    token = signer.sign(manifest)
    verdict = verify_bundle(
        rewrite(recorded.bundle, manifest_jws=token.encode(), chain__crl_pem=crl), site.ca.cert
    )
    assert any("was revoked at" in p and "before the event" in p for p in verdict.problems), verdict.problems
    # The cloud flags the same manifest when it arrives (the upload token still works here).
    media = tmp_path / "media"
    media.mkdir()
    (media / "late.jpg").write_bytes(snapshot)
    (media / "late.jws").write_text(token)
    uploads = UploadQueue(tmp_path / "q.db")
    uploads.add("dev-1-late", "snapshot", media / "late.jpg")
    uploads.add("dev-1-late", "manifest", media / "late.jws")
    up = Uploader(uploads, site.url, site.device_token, backoff=FAST, timeout_s=5.0)
    up.start()
    try:
        wait_until(lambda: uploads.backlog().count == 0, timeout=30, what="uploaded")
    finally:
        up.stop()
    engine = make_engine(site.db_url)
    with Session(engine) as s:
        check = s.get(EvidenceCheck, "dev-1-late")
    engine.dispose()
    assert check is not None and check.status == "invalid" and "before the event" in check.reason
