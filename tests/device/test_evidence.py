"""Evidence end to end: a real event from the real detector on real footage, its manifest signed by
the device with its enrolled key, uploaded, verified by the cloud, exported as a zip and checked
offline; then each tampering an investigator must catch, caught with its reason."""

import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlmodel import Session, col, select

from cloud.auth import create_user, issue_api_key, issue_device_token
from cloud.db import make_engine, migrate
from cloud.models import AlertRow, Device, EvidenceCheck, RetentionPurge
from cloud.settings import EnrollmentSettings, Settings
from device.agent import Agent
from device.evidence import EvidenceSigner, config_digest
from device.media import DeviceMedia
from device.upload_queue import UploadQueue
from device.uploader import Uploader
from matthan import jws
from matthan.cli import main as matthan_main
from matthan.evidence import sha256_hex, verify_bundle
from matthan_wire import Alert
from matthan_wire.config import CameraConfig, DeviceConfig, DeviceIdentity, ModelConfig
from matthan_wire.evidence import MANIFEST_TYP, EvidenceManifest
from matthan_wire.timeutil import utc_now
from provisioning import pki
from tests.cloud.conftest import served
from tests.device.test_media import walk_in_walk_out  # noqa: F401  (a fixture)
from tests.device.test_uploader import FAST
from tests.support.broker import Mosquitto
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
    clips: Path

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
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[Site]:
    """A project CA, a cloud that trusts it and ingests from the broker, dev-1 with its token, an admin."""
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
        broker_url=mosquitto.url,
        clips=str(d / "clips"),
        secret_key="t" * 32,
        enrollment=EnrollmentSettings(ca_dir=d / "ca"),
    )
    with served(settings) as url:
        yield Site(pki.Authority(d / "ca"), url, db_url, token, key, d / "keys", d / "clips")


@dataclass
class Recorded:
    alert: AlertRow
    bundle: bytes
    zip_path: Path
    camera: CameraConfig


def _cloud_row(site: Site, model: type[Any], key: str) -> Any:
    engine = make_engine(site.db_url)
    with Session(engine) as s:
        row = s.get(model, key)
    engine.dispose()
    return row


@pytest.fixture(scope="module")
def recorded(
    site: Site,
    mosquitto: Mosquitto,
    walk_in_walk_out: Path,  # noqa: F811
    model_config: ModelConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Recorded:
    """One real event: the real agent detects it, publishes it over MQTT (the cloud's ingest stores
    the alert) and cuts, signs and uploads its media; then the cloud exports it."""
    tmp = tmp_path_factory.mktemp("device")
    key, cert = site.device_files(DEVICE.id)
    (tmp / "device.token").write_text(site.device_token)
    config = DeviceConfig.model_validate(
        {
            "device": DEVICE.model_dump(),
            # A plain broker here: the agent ignores the key for MQTT, and signs with it.
            "broker": {"url": mosquitto.url, "cert": str(cert), "key": str(key)},
            "cloud": {"url": site.url, "token_file": str(tmp / "device.token")},
            "storage": {"path": str(tmp / "storage")},
            "model": model_config.model_dump(),
            "cameras": [
                {"id": "cam-1", "name": "Nguyễn Huệ / Lê Lợi", "source": str(walk_in_walk_out),
                 "detect": {"fps": 5}, "record": {"segment_s": 1, "pre_capture_s": 1, "post_capture_s": 1},
                 "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                            "rules": [{"type": "intrusion", "labels": ["person"]}]}]}
            ],
        }
    )  # fmt: skip
    built: list[DeviceMedia] = []

    def media(cfg: DeviceConfig, version: Callable[[], int | None]) -> DeviceMedia:  # as `device run` does
        built.append(DeviceMedia(cfg, model="ssd", model_path=model_config.path, config_version=version))
        return built[0]

    agent = Agent(config, media=media)
    agent.start()
    try:

        def ended() -> str | None:
            engine = make_engine(site.db_url)
            with Session(engine) as s:
                row = s.exec(select(AlertRow).where(col(AlertRow.ended_at).is_not(None))).first()
            engine.dispose()
            return row.event_id if row else None

        event_id = wait_until(ended, timeout=60, what="an ended alert ingested by the cloud")
        assert built[0].clips.wait_idle(30)
        wait_until(lambda: built[0].upload_view().backlog == 0, timeout=60, what="everything uploaded")
    finally:
        agent.stop()
    stats = built[0].clips.stats()
    assert stats.manifests_signed >= 1 and stats.manifests_failed == 0
    alert = _cloud_row(site, AlertRow, event_id)
    r = site.api("GET", f"/api/v1/alerts/{event_id}/evidence.zip")
    assert r.status_code == 200, r.text
    zip_path = tmp / "evidence.zip"
    zip_path.write_bytes(r.content)
    return Recorded(alert, r.content, zip_path, config.cameras[0])


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
    check = _cloud_row(site, EvidenceCheck, recorded.alert.event_id)
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
    assert m.rule.config_sha256 == config_digest(recorded.camera) and m.rule.zone == "room"
    assert m.site.name == "Nguyễn Huệ / Lê Lợi" and m.rule.rule == recorded.alert.rule
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
    # The check's own words in both languages (here its note on revocation).
    assert "VI: thiết bị ký chưa bị thu hồi theo CRL lúc" in summary, summary
    assert "EN: signer not revoked as of the CRL of" in summary, summary
    assert "evidence.export" in custody  # the export itself is in the chain of custody
    ca_file = recorded.zip_path.parent / "trusted-ca.pem"
    ca_file.write_bytes(pki.cert_pem(site.ca.cert))
    assert (
        matthan_main(["--lang", "en", "evidence", "verify", str(recorded.zip_path), "--ca", str(ca_file)])
        == 0
    )
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
    assert matthan_main(["--lang", "en", "evidence", "verify", str(bad), "--ca", str(ca_file)]) == 1
    assert "INVALID: clip: SHA-256" in capsys.readouterr().out
    # An investigator reads why in their own language.
    assert matthan_main(["--lang", "vi", "evidence", "verify", str(bad), "--ca", str(ca_file)]) == 1
    out = capsys.readouterr().out
    assert "clip: SHA-256" in out and "không khớp với giá trị đã ký" in out and "bị tráo" in out, out


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


def test_the_command_line_export_is_the_same_evidence_and_is_audited(
    site: Site, recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATTHAN_PROVISION_CA_DIR", str(site.ca.dir))
    out = tmp_path / "cli.zip"
    argv = ["cloud", "evidence", "export", recorded.alert.event_id, "--db", site.db_url,
            "--clips", str(site.clips), "-o", str(out), "--by", "inspector-lan"]  # fmt: skip
    assert matthan_main(argv) == 0
    bundle = out.read_bytes()
    assert verify_bundle(bundle, site.ca.cert).valid
    assert member(bundle, "manifest.jws") == member(recorded.bundle, "manifest.jws")
    custody = member(bundle, "custody.json").decode()
    assert custody.count('"evidence.export"') == 2 and "cli:inspector-lan" in custody


def test_the_device_stops_sending_media_the_cloud_deleted_by_retention(site: Site, tmp_path: Path) -> None:
    engine = make_engine(site.db_url)
    with Session(engine) as s:
        s.add(
            RetentionPurge(event_id="dev-1-purged", purged_at=utc_now(), rule="security_order/false_alarm 7d")
        )
        s.commit()
    engine.dispose()
    (tmp_path / "late.jpg").write_bytes(b"\xff\xd8 late copy")
    uploads = UploadQueue(tmp_path / "q.db")
    uploads.add("dev-1-purged", "snapshot", tmp_path / "late.jpg")
    _drain(site, uploads, "given up")
    item = uploads.get("dev-1-purged", "snapshot")
    assert item is not None and item.state == "failed" and item.attempts == 0
    assert item.last_error is not None and item.last_error.startswith("410")


def _drain(site: Site, uploads: UploadQueue, what: str) -> None:
    """The device's uploader against the cloud until nothing is left to send."""
    up = Uploader(uploads, site.url, site.device_token, backoff=FAST, timeout_s=5.0)
    up.start()
    try:
        wait_until(lambda: uploads.backlog().count == 0, timeout=30, what=what)
    finally:
        up.stop()


def _upload(site: Site, folder: Path, event_id: str, files: dict[str, bytes]) -> None:
    """The files as the device's uploader sends them (the manifest last, as it is signed last)."""
    folder.mkdir(exist_ok=True)
    uploads = UploadQueue(folder / "q.db")
    for kind, data in sorted(files.items(), key=lambda kv: kv[0] == "manifest"):
        (folder / f"{event_id}.{kind}").write_bytes(data)
        uploads.add(event_id, kind, folder / f"{event_id}.{kind}")  # type: ignore[arg-type]
    _drain(site, uploads, "uploaded")


def _export(site: Site, event_id: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("MATTHAN_PROVISION_CA_DIR", str(site.ca.dir))
    argv = ["cloud", "evidence", "export", event_id, "--db", site.db_url, "--clips", str(site.clips),
            "-o", str(out), "--by", "inspector-lan"]  # fmt: skip
    assert matthan_main(argv) == 0
    return out.read_bytes()


def test_the_crop_is_signed_checked_by_the_cloud_and_exported(
    site: Site, recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A two-input camera's crop (the readable face or plate) is in the manifest: the cloud checks
    it, the export carries it, and an altered crop fails like an altered snapshot; a manifest from a
    device that signed no crop stays valid, its crop said to be unsigned and left out of the zip."""
    import cv2

    snapshot = member(recorded.bundle, "snapshot.jpg")
    frame = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
    crop = bytes(cv2.imencode(".jpg", frame[frame.shape[0] // 4 :, frame.shape[1] // 4 :])[1])
    key, cert = site.device_files(DEVICE.id)
    signer = EvidenceSigner(DEVICE, key, cert, camera_for=lambda _: None)

    def manifest(event_id: str, files: dict[str, bytes]) -> bytes:
        alert = recorded.alert
        a = Alert(
            event_id=event_id, phase="end", device_id=alert.device_id, camera_id=alert.camera_id,
            ward=alert.ward, zone=alert.zone, rule=alert.rule, type="intrusion",
            category="security_order", labels=alert.labels, object_count=alert.object_count,
            score=alert.score, bbox=None, started_at=utc_now(), ended_at=utc_now(), seq=998,
            snapshot=None, clip=None,
        )  # fmt: skip
        digests = {k: (sha256_hex(v), len(v)) for k, v in files.items()}
        return signer.sign(signer.manifest(a, digests)).encode()

    signed = {"snapshot": snapshot, "crop": crop}
    _upload(site, tmp_path / "signed", "dev-1-crop", {**signed, "manifest": manifest("dev-1-crop", signed)})
    check = _cloud_row(site, EvidenceCheck, "dev-1-crop")
    assert check is not None and check.status == "valid", check
    bundle = _export(site, "dev-1-crop", tmp_path / "crop.zip", monkeypatch)
    assert member(bundle, "crop.jpg") == crop
    verdict = verify_bundle(bundle, site.ca.cert)
    assert (
        verdict.valid and verdict.manifest is not None and set(verdict.manifest.files) == {"snapshot", "crop"}
    )
    altered = bytearray(crop)
    altered[len(altered) // 2] ^= 0x01
    verdict = verify_bundle(rewrite(bundle, crop_jpg=bytes(altered)), site.ca.cert)
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith("crop: SHA-256"), verdict.problems
    assert "modified or swapped" in verdict.problems[0]
    # The cloud holds a crop other than the one signed: it says so.
    swapped = {**signed, "crop": bytes(altered), "manifest": manifest("dev-1-crop-swapped", signed)}
    _upload(site, tmp_path / "swapped", "dev-1-crop-swapped", swapped)
    check = _cloud_row(site, EvidenceCheck, "dev-1-crop-swapped")
    assert check is not None and check.status == "invalid" and check.reason.startswith("crop: SHA-256"), check
    # An older device: its manifest names no crop, the crop was uploaded all the same.
    old = {"snapshot": snapshot}
    _upload(site, tmp_path / "old", "dev-1-old", {**signed, "manifest": manifest("dev-1-old", old)})
    check = _cloud_row(site, EvidenceCheck, "dev-1-old")
    assert check is not None and check.status == "valid", check
    assert "crop: present but not named" in check.reason and "unaltered" in check.reason
    bundle = _export(site, "dev-1-old", tmp_path / "old.zip", monkeypatch)
    assert "crop.jpg" not in zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    assert verify_bundle(bundle, site.ca.cert).valid


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
    a = recorded.alert
    after = Alert(
        event_id="dev-1-late", phase="end", device_id=a.device_id, camera_id=a.camera_id, ward=a.ward,
        zone=a.zone, rule=a.rule, type="intrusion", category="security_order", labels=a.labels,
        object_count=a.object_count, score=a.score, bbox=None, started_at=utc_now(), ended_at=utc_now(),
        seq=999, snapshot=None, clip=None,
    )  # fmt: skip
    snapshot = member(recorded.bundle, "snapshot.jpg")

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
    _drain(site, uploads, "uploaded")
    check = _cloud_row(site, EvidenceCheck, "dev-1-late")
    assert check is not None and check.status == "invalid" and "before the event" in check.reason
