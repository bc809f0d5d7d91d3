"""The evidence verifier on hostile tokens: every one is a verdict with a reason, never an exception."""

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from matthan import jws
from matthan.evidence import EvidenceError, Verdict, sha256_hex, verify_bundle, verify_manifest
from matthan_wire.evidence import MANIFEST_TYP, EvidenceManifest, canonical_manifest
from matthan_wire.timeutil import utc_now
from provisioning import pki


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def header(**fields: object) -> str:
    return b64(json.dumps({"alg": "ES256", "typ": "matthan-evidence+jwt", **fields}).encode())


SIG = b64(b"\x01" * 64)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "not a compact JWS"),
        ("a.b.c", "not base64url"),
        (f"{b64(b'[' * 20000 + b']' * 20000)}.e30.{SIG}", "header is not JSON"),
        (
            f"{b64(json.dumps({'alg': 'none', 'typ': 'matthan-evidence+jwt'}).encode())}.e30.{SIG}",
            "only ES256",
        ),
        (f"{b64(json.dumps({'alg': 'ES256', 'typ': 'JWT'}).encode())}.e30.{SIG}", "token type"),
        (f"{header()}.e30.{SIG}", "no signer certificate"),
        (f"{header(x5c=['!!'])}.e30.{SIG}", "not a DER certificate"),
        (f"{header(x5c=['x'] * 5)}.e30.{SIG}", "no signer certificate"),
        (f"{header(crit=['b64'])}.e30.{SIG}", "critical extensions"),
        (f"{header()}.e30.{b64(b'x' * 10)}", "64 bytes"),
        ("x" * 70_000, "over 65536 bytes"),
    ],
)
def test_hostile_tokens_are_refused_with_a_reason(tmp_path: Path, token: str, reason: str) -> None:
    ca = pki.load_cert(pki.init_ca(tmp_path / "ca") / "ca.pem")
    verdict = verify_manifest(token, ca, None, {"clip": "0" * 64})
    assert not verdict.valid and len(verdict.problems) == 1 and reason in verdict.problems[0], (
        verdict.problems
    )


def test_a_file_that_is_not_an_evidence_zip_is_one_clear_error(tmp_path: Path) -> None:
    ca = pki.load_cert(pki.init_ca(tmp_path / "ca") / "ca.pem")
    with pytest.raises(EvidenceError, match="not a zip file"):
        verify_bundle(b"PK not really", ca)


@dataclass
class Signed:
    ca: pki.Authority
    snapshot: bytes
    crop: bytes

    def token(self, files: dict[str, bytes]) -> str:
        """A manifest over `files`, signed with dev-1's enrolled key (as the device signs it)."""
        key = pki.new_key()
        cert = self.ca.sign_csr(pki.make_csr(key, "dev-1"), "dev-1")
        now = utc_now()
        manifest = EvidenceManifest.model_validate(
            {
                "event_id": "dev-1-7",
                "device_id": "dev-1",
                "ward": "ben-nghe",
                "camera_id": "cam-1",
                "rule": {
                    "rule": "r",
                    "type": "intrusion",
                    "category": "security_order",
                    "config_sha256": "0" * 64,
                },
                "started_at": now,
                "signed_at": now,
                "files": {k: {"sha256": sha256_hex(v), "size": len(v)} for k, v in files.items()},
            }
        )
        return jws.sign(canonical_manifest(manifest), key, [cert], MANIFEST_TYP)

    def verify(self, token: str, files: dict[str, bytes]) -> Verdict:
        digests: dict[str, str | None] = {k: sha256_hex(v) for k, v in files.items()}
        return verify_manifest(token, self.ca.cert, None, digests, require_crl=False)


@pytest.fixture(scope="module")
def signed(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Signed:
    """A project CA, and a real snapshot and crop of vtest (the whole frame, and a person-sized part)."""
    frame = cv2.VideoCapture(str(assets_dir / "video/vtest_480x360.mp4")).read()[1]
    snapshot = bytes(cv2.imencode(".jpg", frame)[1])
    crop = bytes(cv2.imencode(".jpg", frame[100:300, 200:300])[1])
    return Signed(pki.Authority(pki.init_ca(tmp_path_factory.mktemp("ca") / "ca")), snapshot, crop)


def test_a_signed_crop_verifies_and_an_altered_one_fails(signed: Signed) -> None:
    token = signed.token({"snapshot": signed.snapshot, "crop": signed.crop})
    verdict = signed.verify(token, {"snapshot": signed.snapshot, "crop": signed.crop})
    assert verdict.valid, verdict.problems
    assert verdict.manifest is not None and set(verdict.manifest.files) == {"snapshot", "crop"}
    altered = bytearray(signed.crop)
    altered[len(altered) // 2] ^= 0x01
    verdict = signed.verify(token, {"snapshot": signed.snapshot, "crop": bytes(altered)})
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith("crop: SHA-256"), verdict.problems
    assert "modified or swapped" in verdict.problems[0]
    # A signed crop that is not at hand is missing, as a clip would be.
    verdict = signed.verify(token, {"snapshot": signed.snapshot})
    assert verdict.missing == ["crop"] and not verdict.valid


def test_a_manifest_without_a_crop_stays_valid_and_an_unsigned_crop_is_said_to_be(signed: Signed) -> None:
    """An older device signed no crop: its manifests stay valid; the crop next to them is unsigned."""
    token = signed.token({"snapshot": signed.snapshot})
    assert signed.verify(token, {"snapshot": signed.snapshot}).valid
    verdict = signed.verify(token, {"snapshot": signed.snapshot, "crop": signed.crop})
    assert verdict.valid, verdict.problems
    assert any(n.startswith("crop: present but not named") and "unaltered" in n for n in verdict.notes)
    # Any other unnamed file still invalidates: only the crop came later.
    verdict = signed.verify(token, {"snapshot": signed.snapshot, "clip": signed.crop})
    assert verdict.problems == ["clip: present but not named in the signed manifest"]
