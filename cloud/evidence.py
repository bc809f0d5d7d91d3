"""The cloud's check of each event's signed manifest, on arrival and again as its media arrive.

The manifest (a compact JWS the device signed, matthan_wire/evidence.py) is verified with the one
verifier everybody uses (matthan/evidence.py): against the project's CA certificate and its CRL
(read from the enrollment CA folder; the CA key is not needed), with the revocation status at the
event's time, and against the SHA-256 of each media file the cloud holds complete for the event.
The verdict is stored in `evidence_check`:

- valid: signature, signer chain and revocation hold, and every file the manifest names is here and matches;
- incomplete: all of that holds so far, but some named files have not arrived yet;
- invalid: anything else, with the reasons in words.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlmodel import Session, col, select

from cloud.clipstore import ClipStore
from cloud.errors import Unavailable
from cloud.models import EvidenceCheck, MediaObject
from cloud.settings import Settings
from matthan.evidence import load_crl, sha256_hex, verify_manifest
from matthan.i18n import Joined, Msg
from matthan_wire.evidence import MAX_MANIFEST_BYTES
from matthan_wire.timeutil import utc_now

log = logging.getLogger("matthan.cloud.evidence")
CA_FILE = "ca.pem"
CRL_FILE = "crl.pem"


@dataclass(frozen=True)
class Trust:
    ca: x509.Certificate
    ca_pem: bytes
    crl: x509.CertificateRevocationList | None
    crl_pem: bytes | None


def trust(settings: Settings) -> Trust:
    """The CA certificate and its current CRL, from the enrollment CA folder."""
    folder = settings.enrollment.ca_dir
    if folder is None:
        raise Unavailable(Msg("no CA configured (MATTHAN_PROVISION_CA_DIR): evidence cannot be verified"))
    try:
        ca_pem = (Path(folder) / CA_FILE).read_bytes()
        ca = x509.load_pem_x509_certificate(ca_pem)
    except (OSError, ValueError) as exc:
        raise Unavailable(
            Msg("CA certificate unreadable in %(folder)s: %(error)s", folder=str(folder), error=str(exc))
        ) from None
    crl_path = Path(folder) / CRL_FILE
    crl_pem = crl_path.read_bytes() if crl_path.is_file() else None
    return Trust(ca, ca_pem, load_crl(crl_pem) if crl_pem else None, crl_pem)


def read_object(store: ClipStore, media: MediaObject, limit: int | None = None) -> bytes:
    if limit is not None and media.size > limit:
        raise ValueError(f"{media.kind} of {media.event_id} is over {limit} bytes")
    if media.size == 0:
        return b""
    return b"".join(store.read_range(media.key, 0, media.size - 1))


def complete_media(session: Session, event_id: str) -> dict[str, MediaObject]:
    rows = session.exec(
        select(MediaObject).where(MediaObject.event_id == event_id, col(MediaObject.complete))
    ).all()
    return {m.kind: m for m in rows}


@dataclass(frozen=True)
class Checked:
    row: EvidenceCheck
    reason: str  # row.reason as a Msg/Joined: English in the row, translated where a person reads it


def check_event(
    session: Session, settings: Settings, store: ClipStore, event_id: str
) -> EvidenceCheck | None:
    """Verify the event's manifest if it has arrived; store and return the verdict (caller commits)."""
    checked = verify_event(session, settings, store, event_id)
    return checked.row if checked is not None else None


def verify_event(session: Session, settings: Settings, store: ClipStore, event_id: str) -> Checked | None:
    """check_event, with the reason in a form each reader's language can be given."""
    media = complete_media(session, event_id)
    manifest = media.pop("manifest", None)
    if manifest is None:
        return None
    token_bytes = read_object(store, manifest, MAX_MANIFEST_BYTES)
    row = session.get(EvidenceCheck, event_id) or EvidenceCheck(
        event_id=event_id, status="invalid", reason="", manifest_sha256=sha256_hex(token_bytes)
    )
    row.manifest_sha256 = sha256_hex(token_bytes)
    reason: str
    try:
        t = trust(settings)
    except Unavailable as exc:
        row.status, reason = "unverified", exc.args[0] if exc.args else str(exc)
    else:
        digests: dict[str, str | None] = {k: m.sha256 for k, m in media.items()}
        verdict = verify_manifest(
            token_bytes.decode("ascii", "replace"), t.ca, t.crl, digests, expected_device=manifest.device_id
        )
        row.signer, row.serial = verdict.signer, verdict.serial
        if verdict.valid:
            row.status, reason = "valid", Joined("; ", verdict.notes) if verdict.notes else Msg("valid")
        elif verdict.missing and len(verdict.problems) == len(verdict.missing):
            row.status, reason = "incomplete", Msg("waiting for %(kinds)s", kinds=", ".join(verdict.missing))
        else:
            row.status, reason = "invalid", verdict.reason()
    row.reason = str(reason)[:2000]
    row.checked_at = utc_now()
    session.add(row)
    level = logging.WARNING if row.status == "invalid" else logging.INFO
    log.log(
        level,
        "evidence check event=%s status=%s signer=%s reason=%s",
        event_id,
        row.status,
        row.signer,
        row.reason,
    )
    return Checked(row, reason)
