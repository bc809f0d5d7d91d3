"""Checking evidence: a signed manifest against the project's CA, its CRL and the media bytes.

One verifier for everyone: the cloud runs it when a manifest arrives (against the CA and the CRL
it holds), and `matthan evidence verify FILE.zip` runs it on an exported bundle with nothing but
the project's CA certificate. It never stops at the first problem; it lists each, in words an
investigator can act on.

Zip layout (cloud/evidence_export.py writes it, verify_bundle reads it):

    manifest.jws         the compact JWS exactly as the device signed it
    manifest.json        its payload, pretty-printed (for reading; the JWS is what counts)
    clip.mp4 snapshot.jpg sidecar.json   the media, as stored in the cloud
    crop.jpg                              the object's crop, when the manifest names it
    chain/device-<serial>.pem            the signer's certificate (also inside the JWS)
    chain/ca.pem                          the CA as the cloud knew it (the verifier uses its own)
    chain/crl.pem                         the CA's revocation list at export time
    summary.txt                           Vietnamese and English, for people
    custody.json                          who viewed, downloaded, exported it (from the audit log)
"""

import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from matthan import jws
from matthan.errors import UserError
from matthan.hashing import sha256_stream
from matthan.i18n import Joined, Msg
from matthan_wire.evidence import MANIFEST_TYP, MAX_MANIFEST_BYTES, EvidenceManifest

BUNDLE_FILES = {"clip": "clip.mp4", "snapshot": "snapshot.jpg", "sidecar": "sidecar.json", "crop": "crop.jpg"}
# Kinds whose file may be at hand without the manifest naming it: devices signed no crop before it
# became an EvidenceKind, and their manifests must stay valid. Such a file is said to be unsigned.
UNSIGNED_ALLOWED = frozenset({"crop"})
MANIFEST_FILE = "manifest.jws"
CRL_FILE = "chain/crl.pem"
MAX_BUNDLE_MEMBER = 2 * 1024**3  # a zip member past this is refused, not read


class EvidenceError(UserError):
    """A bundle that cannot be read at all (not a zip, no manifest)."""


@dataclass
class Verdict:
    """The outcome: valid when `problems` is empty; `notes` are facts that do not invalidate."""

    manifest: EvidenceManifest | None = None
    signer: str | None = None  # the certificate's common name (the device id)
    serial: str | None = None  # hex
    # Msg: English as str (logs, the cloud's stored reason), translated where a person reads them.
    problems: list[Msg] = field(default_factory=list)
    notes: list[Msg] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # kinds the manifest names that are not at hand

    @property
    def valid(self) -> bool:
        return not self.problems and self.manifest is not None

    def reason(self) -> str:
        """Every problem, or "valid"; a Joined/Msg, so whoever shows it can translate it."""
        return Joined("; ", self.problems) if self.problems else Msg("valid")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_manifest(
    token: str,
    ca: x509.Certificate,
    crl: x509.CertificateRevocationList | None,
    digests: Mapping[str, str | None],
    *,
    expected_device: str | None = None,
    require_crl: bool = True,
) -> Verdict:
    """Check the signature, the signer's chain and revocation at the event's time, and the media.

    `digests` maps a media kind to the SHA-256 (hex) of the bytes at hand, or None when absent.
    """
    v = Verdict()
    try:
        token_ = jws.parse(token, MANIFEST_TYP, MAX_MANIFEST_BYTES)
        chain = token_.certificates()
    except jws.JwsError as exc:
        v.problems.append(Msg("manifest: %(error)s", error=str(exc)))
        return v
    cert = chain[0]
    v.serial = f"{cert.serial_number:x}"
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    v.signer = str(names[0].value) if names else ""
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not token_.verify(public):
        v.problems.append(
            Msg(
                "signature does not verify with the certificate it names (%(signer)s, serial %(serial)s):"
                " the manifest was altered or signed with another key",
                signer=v.signer,
                serial=v.serial,
            )
        )
        return v
    try:
        manifest = EvidenceManifest.model_validate_json(token_.payload)
    except ValidationError as exc:
        v.problems.append(
            Msg("manifest: not a valid evidence manifest (%(count)s errors)", count=exc.error_count())
        )
        return v
    v.manifest = manifest
    if v.signer != manifest.device_id:
        v.problems.append(
            Msg(
                "manifest names device %(device)s but is signed by device %(signer)s's certificate",
                device=manifest.device_id,
                signer=v.signer,
            )
        )
    if expected_device is not None and v.signer != expected_device:
        v.problems.append(
            Msg(
                "manifest signed by device %(signer)s, uploaded by device %(device)s",
                signer=v.signer,
                device=expected_device,
            )
        )
    at = manifest.started_at
    problem = _chain_problem(cert, ca, at)
    if problem:
        v.problems.append(
            Msg("signer certificate (serial %(serial)s): %(problem)s", serial=v.serial, problem=problem)
        )
    _check_revocation(v, cert, ca, crl, at, require_crl)
    for kind, want in manifest.files.items():
        have = digests.get(kind)
        if have is None:
            v.missing.append(kind)
            v.problems.append(Msg("%(kind)s: named in the manifest but missing", kind=kind))
        elif have != want.sha256:
            v.problems.append(
                Msg(
                    "%(kind)s: SHA-256 %(have)s… does not match the signed %(want)s…"
                    " (the file was modified or swapped)",
                    kind=kind,
                    have=have[:16],
                    want=want.sha256[:16],
                )
            )
    for other, present in digests.items():
        if present is None or other in manifest.files:
            continue
        if other in UNSIGNED_ALLOWED:
            v.notes.append(
                Msg(
                    "%(kind)s: present but not named in the signed manifest (its device did not sign"
                    " this kind of file yet): nothing shows it is unaltered",
                    kind=other,
                )
            )
        else:
            v.problems.append(Msg("%(kind)s: present but not named in the signed manifest", kind=other))
    return v


def _chain_problem(cert: x509.Certificate, ca: x509.Certificate, at: dt.datetime) -> Msg | None:
    if cert.issuer != ca.subject:
        return Msg("not issued by this CA")
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return Msg("its signature does not verify against this CA")
    if not cert.not_valid_before_utc - dt.timedelta(minutes=5) <= at <= cert.not_valid_after_utc:
        return Msg(
            "not valid at the event's time %(at)s UTC (valid %(start)s to %(end)s)",
            at=f"{at:%Y-%m-%d %H:%M:%S}",
            start=f"{cert.not_valid_before_utc:%Y-%m-%d}",
            end=f"{cert.not_valid_after_utc:%Y-%m-%d}",
        )
    return None


def _check_revocation(
    v: Verdict,
    cert: x509.Certificate,
    ca: x509.Certificate,
    crl: x509.CertificateRevocationList | None,
    at: dt.datetime,
    require_crl: bool,
) -> None:
    if crl is None:
        if require_crl:
            v.problems.append(Msg("no revocation list: cannot tell whether the signer was revoked"))
        else:
            v.notes.append(Msg("revocation not checked (no CRL)"))
        return
    if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        v.problems.append(Msg("the revocation list is not signed by this CA"))
        return
    revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if revoked is None:
        v.notes.append(
            Msg("signer not revoked as of the CRL of %(at)s UTC", at=f"{crl.last_update_utc:%Y-%m-%d %H:%M}")
        )
        return
    when = revoked.revocation_date_utc
    if when <= at:
        v.problems.append(
            Msg(
                "signer certificate (serial %(serial)s) was revoked at %(when)s UTC,"
                " before the event at %(at)s UTC",
                serial=v.serial,
                when=f"{when:%Y-%m-%d %H:%M:%S}",
                at=f"{at:%Y-%m-%d %H:%M:%S}",
            )
        )
    else:
        v.notes.append(
            Msg(
                "signer certificate revoked at %(when)s UTC, after the event",
                when=f"{when:%Y-%m-%d %H:%M:%S}",
            )
        )


def load_crl(pem: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(pem)
    except ValueError:
        raise EvidenceError("the revocation list is not a PEM CRL") from None


def verify_bundle(data: bytes, ca: x509.Certificate) -> Verdict:
    """An exported zip (see the module's doc) against the CA certificate the caller trusts."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise EvidenceError("not a zip file") from None
    with zf:
        names = set(zf.namelist())
        if MANIFEST_FILE not in names:
            raise EvidenceError(f"no {MANIFEST_FILE} in the bundle: not a matthan evidence export")
        digests: dict[str, str | None] = {}
        for kind, name in BUNDLE_FILES.items():
            digests[kind] = _member_sha256(zf, name) if name in names else None
        token = _read(zf, MANIFEST_FILE, MAX_MANIFEST_BYTES).decode("ascii", "replace")
        crl = load_crl(_read(zf, CRL_FILE, 16 * 1024 * 1024)) if CRL_FILE in names else None
    return verify_manifest(token, ca, crl, digests)


def _read(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    if zf.getinfo(name).file_size > limit:
        raise EvidenceError(f"{name}: over {limit} bytes")
    return zf.read(name)


def _member_sha256(zf: zipfile.ZipFile, name: str) -> str:
    if zf.getinfo(name).file_size > MAX_BUNDLE_MEMBER:
        raise EvidenceError(f"{name}: over {MAX_BUNDLE_MEMBER} bytes")
    with zf.open(name) as f:
        return sha256_stream(f)
