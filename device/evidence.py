"""Signing each event's evidence manifest on the device, with the device's own key.

The key is the one enrollment made on this box for its mTLS certificate (broker.key/broker.cert):
it never left the device, the CA bound it to the device id (CN), and revoking the device revokes
it. Reusing it for the manifest is sound because the two uses cannot be confused: a JWS signs
`base64url(header).base64url(payload)` with a `typ` of its own, while a TLS 1.3 CertificateVerify
signs 64 spaces and a context string before the transcript hash (RFC 8446 §4.4.3), so neither
signature can be replayed as the other. A renewal rotates key and certificate together; the
manifest carries its certificate (`x5c`), so old manifests stay checkable after a renewal.
(docs/security.md, "Evidence signing".)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device.errors import DeviceError
from matthan import jws
from matthan.hashing import sha256_file
from matthan_wire.config import CameraConfig, DeviceIdentity
from matthan_wire.evidence import (
    MANIFEST_TYP,
    EvidenceManifest,
    FileDigest,
    ModelRef,
    RuleRef,
    SiteRef,
    canonical_manifest,
)
from matthan_wire.payloads import Alert
from matthan_wire.timeutil import utc_now

log = logging.getLogger(__name__)


class SigningError(DeviceError):
    """The device key or certificate cannot be used to sign evidence."""


def config_digest(camera: CameraConfig | None) -> str:
    """SHA-256 of the camera's configuration (zones, rules) as canonical JSON; the stream source is
    left out (it may hold credentials, and the rules, not the URL, decide what was detected)."""
    body = camera.model_dump(mode="json", exclude={"source"}) if camera is not None else None
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[float, float]
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


class EvidenceSigner:
    """Builds and signs one manifest per event; safe to call from the clip maker's thread."""

    def __init__(
        self,
        device: DeviceIdentity,
        key_path: Path,
        cert_path: Path,
        *,
        camera_for: Callable[[str], CameraConfig | None],
        config_version: Callable[[], int | None] = lambda: None,
        model_path: Path | None = None,
    ) -> None:
        self.device = device
        self.key_path, self.cert_path = Path(key_path), Path(cert_path)
        self._camera_for = camera_for
        self._config_version = config_version
        self._model_path = model_path
        self._model_sha: tuple[float, str] | None = None
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def _material(self) -> _Loaded:
        """Key and certificate, re-read after a renewal replaced them (checked by mtime)."""
        try:
            stamp = (self.key_path.stat().st_mtime, self.cert_path.stat().st_mtime)
            if self._loaded is not None and self._loaded.stamp == stamp:
                return self._loaded
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise SigningError(f"device key/certificate unusable for signing: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
            raise SigningError(f"{self.cert_path} is not the certificate of {self.key_path}")
        self._loaded = _Loaded(stamp, key, cert)
        return self._loaded

    def _model_ref(self) -> ModelRef:
        path = self._model_path
        if path is None:
            return ModelRef()
        try:
            mtime = path.stat().st_mtime
            if self._model_sha is None or self._model_sha[0] != mtime:
                self._model_sha = (mtime, sha256_file(path))
        except OSError as exc:
            log.warning("model unreadable for the manifest path=%s error=%s", path, exc.strerror)
            return ModelRef(name=path.name)
        return ModelRef(name=path.name, sha256=self._model_sha[1])

    def manifest(
        self,
        alert: Alert,
        files: Mapping[str, tuple[str, int]],
        clip_span: tuple[object, object] | None = None,
    ) -> EvidenceManifest:
        camera = self._camera_for(alert.camera_id)
        return EvidenceManifest.model_validate(
            {
                "event_id": alert.event_id,
                "device_id": self.device.id,
                "ward": alert.ward,
                "camera_id": alert.camera_id,
                "site": SiteRef(name=camera.name if camera is not None else None),
                "rule": RuleRef(
                    rule=alert.rule,
                    zone=alert.zone,
                    type=alert.type,
                    category=alert.category,
                    config_version=self._config_version(),
                    config_sha256=config_digest(camera),
                ),
                "model": self._model_ref(),
                "started_at": alert.started_at,
                "ended_at": alert.ended_at,
                "clip_start": clip_span[0] if clip_span else None,
                "clip_end": clip_span[1] if clip_span else None,
                "signed_at": utc_now(),
                "files": {k: FileDigest(sha256=sha, size=size) for k, (sha, size) in files.items()},
            }
        )

    def sign(self, manifest: EvidenceManifest) -> str:
        with self._lock:
            material = self._material()
            return jws.sign(canonical_manifest(manifest), material.key, [material.cert], MANIFEST_TYP)

    def write(self, manifest: EvidenceManifest, folder: Path) -> Path:
        """Sign and write `{event_id}.jws` atomically; returns its path."""
        token = self.sign(manifest)
        path = folder / f"{manifest.event_id}.jws"
        tmp = path.with_suffix(".jws.tmp")
        tmp.write_text(token, encoding="ascii")
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path
