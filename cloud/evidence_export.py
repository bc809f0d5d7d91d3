"""Evidence export: one event's media, its signed manifest, the signer's chain, the CRL, a summary
in Vietnamese and English and the chain of custody, as a zip anyone can check with
`matthan evidence verify FILE.zip --ca ca.pem` (layout: matthan/evidence.py).

Every export is in the audit log (who, when, which event) before the bytes leave.
"""

import base64
import json
import zipfile
from typing import IO

from sqlmodel import Session, col, select

from cloud import audit
from cloud.clipstore import ClipStore
from cloud.errors import NotFound
from cloud.evidence import complete_media, read_object, trust, verify_event
from cloud.models import AlertPin, AlertRow, AuditLog, EvidenceCheck
from cloud.settings import Settings
from matthan import jws
from matthan.evidence import BUNDLE_FILES, CRL_FILE, MANIFEST_FILE, UNSIGNED_ALLOWED
from matthan.i18n import Msg, in_language
from matthan_wire.evidence import MANIFEST_TYP, MAX_MANIFEST_BYTES, EvidenceManifest
from matthan_wire.timeutil import utc_now

_STATUS_VI = {
    "valid": "HỢP LỆ",
    "incomplete": "CHƯA ĐỦ TỆP",
    "invalid": "KHÔNG HỢP LỆ",
    "unverified": "CHƯA KIỂM TRA ĐƯỢC",
}


def write_bundle(
    session: Session, settings: Settings, store: ClipStore, event_id: str, who: str, out: IO[bytes]
) -> EvidenceCheck:
    """Write the zip to `out` and record the export; the caller commits. NotFound without a manifest."""
    media = complete_media(session, event_id)
    if "manifest" not in media:
        raise NotFound(
            Msg("event %(event)s: no signed manifest stored; nothing to export as evidence", event=event_id)
        )
    checked = verify_event(session, settings, store, event_id)
    assert checked is not None
    check = checked.row
    t = trust(settings)
    token = read_object(store, media["manifest"], MAX_MANIFEST_BYTES).decode("ascii", "replace")
    parsed = jws.parse(token, MANIFEST_TYP, MAX_MANIFEST_BYTES)
    manifest = EvidenceManifest.model_validate_json(parsed.payload)
    alert = session.get(AlertRow, event_id)
    pin = session.get(AlertPin, event_id)
    # The zip is what the device signed: a crop its manifest does not name stays out, lest it pass
    # for part of the signed evidence (the console still shows it).
    unsigned = {k for k in UNSIGNED_ALLOWED if k in media and k not in manifest.files}
    files = sorted(set(media) - unsigned)
    audit.record(session, who, "evidence.export", event_id, status=check.status, files=files)
    session.flush()
    custody = session.exec(
        select(AuditLog).where(AuditLog.target == event_id).order_by(col(AuditLog.seq))
    ).all()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_FILE, token)
        zf.writestr("manifest.json", json.dumps(json.loads(parsed.payload), indent=2, ensure_ascii=False))
        for kind, name in BUNDLE_FILES.items():
            if kind in media and kind not in unsigned:
                # Clips are already compressed: stored, so a big one costs no CPU here.
                with zf.open(zipfile.ZipInfo(name), "w", force_zip64=True) as f:
                    m = media[kind]
                    if m.size:
                        for chunk in store.read_range(m.key, 0, m.size - 1):
                            f.write(chunk)
        for i, cert_b64 in enumerate(parsed.header.get("x5c", [])):
            pem = base64.encodebytes(base64.b64decode(cert_b64)).decode()
            name = f"chain/device-{check.serial}.pem" if i == 0 else f"chain/intermediate-{i}.pem"
            zf.writestr(name, f"-----BEGIN CERTIFICATE-----\n{pem}-----END CERTIFICATE-----\n")
        zf.writestr("chain/ca.pem", t.ca_pem)
        if t.crl_pem is not None:
            zf.writestr(CRL_FILE, t.crl_pem)
        zf.writestr(
            "custody.json",
            json.dumps(
                [
                    {
                        "seq": e.seq,
                        "at": e.at.isoformat(),
                        "who": e.who,
                        "action": e.action,
                        "detail": e.detail,
                        "hash": e.hash,
                    }
                    for e in custody
                ],  # fmt: skip
                indent=2,
                ensure_ascii=False,
            ),
        )
        zf.writestr("summary.txt", summary(manifest, check, checked.reason, alert, pin, who))
    return check


def summary(
    m: EvidenceManifest,
    check: EvidenceCheck,
    reason: str,
    alert: AlertRow | None,
    pin: AlertPin | None,
    who: str,
) -> str:
    """For people, in Vietnamese and English; `reason` is the check's, as verify_event gives it."""
    files = "\n".join(f"  {k:9} sha256 {d.sha256}  {d.size} bytes" for k, d in m.files.items())
    state = alert.state if alert else "-"
    pinned = f"{pin.pinned_by} {pin.pinned_at:%Y-%m-%d %H:%M} UTC: {pin.reason}" if pin else "-"
    site = f" — {m.site.name}" if m.site.name else ""
    status = f"{_STATUS_VI.get(check.status, check.status)} / {check.status.upper()}"
    when = f"{m.started_at:%Y-%m-%d %H:%M:%S} UTC" + (f" → {m.ended_at:%H:%M:%S} UTC" if m.ended_at else "")
    return f"""HỒ SƠ CHỨNG CỨ / EVIDENCE BUNDLE — matthan
==========================================

Sự kiện / Event ............ {m.event_id}
Thời gian / Time ........... {when}
Thiết bị / Device .......... {m.device_id} (chứng thư / certificate serial {check.serial})
Camera ..................... {m.camera_id}{site}
Phường / Ward .............. {m.ward}
Quy tắc / Rule ............. {m.rule.rule} ({m.rule.type}, {m.rule.category}), zone {m.rule.zone or "-"}
Cấu hình / Configuration ... version {m.rule.config_version}, sha256 {m.rule.config_sha256}
Mô hình / Model ............ {m.model.name or "-"} sha256 {m.model.sha256 or "-"}
Ký lúc / Signed at ......... {m.signed_at:%Y-%m-%d %H:%M:%S} UTC (trên thiết bị / on the device)
Trạng thái cảnh báo / Alert state ... {state}
Lưu giữ làm chứng cứ / Pinned as evidence ... {pinned}

Tệp đã ký / Signed files:
{files}

Kết quả kiểm tra của hệ thống / The cloud's check: {status}
  VI: {in_language(reason, "vi")}
  EN: {in_language(reason, "en")}

Xuất bởi / Exported by {who} lúc / at {utc_now():%Y-%m-%d %H:%M:%S} UTC.

Cách tự kiểm tra / How to check it yourself
-------------------------------------------
VI: Tệp manifest.jws là bản kê khai do chính thiết bị ký (JWS, ES256) bằng khoá riêng của thiết bị;
chứng thư của thiết bị nằm trong chain/. Chạy:
    matthan evidence verify TEP.zip --ca ca.pem
với ca.pem là chứng thư gốc (CA) của dự án lấy từ nguồn tin cậy — không dùng chain/ca.pem trong
tệp zip này. Lệnh kiểm tra chữ ký, chuỗi chứng thư, tình trạng thu hồi tại thời điểm sự kiện, và
SHA-256 của từng tệp; báo "valid" hoặc nêu chính xác điểm không khớp.

EN: manifest.jws is the statement the device itself signed (JWS, ES256) with its own key; its
certificate is in chain/. Run:
    matthan evidence verify FILE.zip --ca ca.pem
with ca.pem the project's CA certificate from a source you trust — not chain/ca.pem from this zip.
It checks the signature, the certificate chain, revocation at the event's time and the SHA-256 of
every file, and says "valid" or exactly what does not match.

custody.json: mọi lần xem, tải, xuất tệp của sự kiện này (nhật ký kiểm toán) / every view,
download and export of this event's media (from the audit log).
"""
