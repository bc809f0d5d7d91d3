"""Evidence signing benchmark: `python -m bench.evidence` prints a Markdown section.

What signing costs the device per event, measured side by side in one run on real media (a clip
cut from the project's footage, a real snapshot) with a real device key (EC P-256, issued by a
fresh CA):
- sign: the ES256 signature over a manifest (device/evidence.py, key already loaded);
- manifest: build it (config digest, model reference cached), hash the snapshot and sidecar,
  sign, write `{event_id}.jws` with fsync — everything the clip maker adds per event;
- first manifest after start or renewal: the same with the key, certificate and model hashed anew;
- for scale, what the device does per event anyway: the clip's SHA-256 for the upload;
- and the cloud's side: verifying one manifest (signature, chain, CRL, digests).
Medians and p95 of wall time (ms), and CPU time per event, on this machine; a Pi 4 is ~3-4x slower.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from device.evidence import EvidenceSigner
from device.ffmpeg import FFMPEG
from matthan import assets
from matthan.evidence import load_crl, verify_manifest
from matthan.hashing import sha256_file
from matthan_wire.config import CameraConfig, DeviceIdentity
from matthan_wire.payloads import Alert
from matthan_wire.timeutil import utc_now
from provisioning import pki

ROUNDS = 200


def timed(fn: Callable[[], object], rounds: int = ROUNDS) -> tuple[float, float, float]:
    """(median ms, p95 ms, CPU ms per call)."""
    walls = []
    cpu0 = time.process_time()
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / rounds
    walls.sort()
    return statistics.median(walls), walls[int(0.95 * (len(walls) - 1))], cpu


def main() -> int:
    d = Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    pki.init_ca(d / "ca")
    ca = pki.Authority(d / "ca")
    key = pki.new_key()
    (d / "device.key").write_bytes(pki.key_pem(key))
    (d / "device.pem").write_bytes(pki.cert_pem(ca.sign_csr(pki.make_csr(key, "dev-1"), "dev-1")))
    src = assets.path("video/one-by-one-person-detection.mp4")
    clip = d / "ev-1.mp4"
    cut = [FFMPEG, "-v", "error", "-i", str(src), "-t", "12", "-map", "0:v", "-c", "copy", str(clip)]
    subprocess.run(cut, check=True)
    snap = d / "ev-1.jpg"
    subprocess.run([FFMPEG, "-v", "error", "-i", str(src), "-frames:v", "1", str(snap)], check=True)
    side = d / "ev-1.json"
    side.write_text('{"event_id": "ev-1", "sha256": "' + "0" * 64 + '"}' + " " * 700)
    camera = CameraConfig.model_validate(
        {"id": "cam-1", "source": "rtsp://10.0.0.1/s", "name": "Nguyễn Huệ",
         "zones": [{"name": "plaza", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                    "rules": [{"type": "intrusion", "labels": ["person"]}]}]}
    )  # fmt: skip
    model = assets.path(assets.DEFAULT_MODEL)
    now = utc_now()
    alert = Alert(event_id="ev-1", phase="end", device_id="dev-1", camera_id="cam-1", ward="ben-nghe",
                  zone="plaza", rule="plaza.intrusion", type="intrusion", category="security_order",
                  labels=["person"], object_count=1, score=0.8, bbox=[0.1, 0.2, 0.3, 0.6], started_at=now,
                  ended_at=now, seq=1, snapshot=None, clip=None)  # fmt: skip

    def signer() -> EvidenceSigner:
        device = DeviceIdentity(id="dev-1", ward="ben-nghe")
        return EvidenceSigner(
            device, d / "device.key", d / "device.pem",
            camera_for=lambda _: camera, config_version=lambda: 7, model_path=model,
        )  # fmt: skip

    warm = signer()
    clip_digest = (sha256_file(clip), clip.stat().st_size)
    manifest = warm.manifest(alert, {"clip": clip_digest})

    def per_event(s: EvidenceSigner, write: bool = True) -> Callable[[], object]:
        def run() -> object:
            files = {"clip": clip_digest, "snapshot": (sha256_file(snap), snap.stat().st_size),
                     "sidecar": (sha256_file(side), side.stat().st_size)}  # fmt: skip
            m = s.manifest(alert, files, (now, now))
            return s.write(m, d) if write else s.sign(m)

        return run

    clip_mb = clip.stat().st_size / 1e6

    rows = [
        ("ES256 signature only", timed(lambda: warm.sign(manifest))),
        ("manifest per event (hash snapshot + sidecar, build, sign, write + fsync)",
         timed(per_event(warm))),
        ("the same without the file (hash, build, sign)", timed(per_event(warm, write=False))),
        ("first manifest after start/renewal (+ load key, hash the model)",
         timed(lambda: per_event(signer())(), 20)),
        (f"for scale: SHA-256 of the clip ({clip_mb:.1f} MB), done anyway",
         timed(lambda: sha256_file(clip), 50)),
    ]  # fmt: skip
    token = warm.sign(warm.manifest(alert, {"clip": clip_digest}))
    crl = load_crl(ca.crl_path.read_bytes())
    rows.append(
        ("cloud: verify one manifest (signature, chain, CRL, digests)",
         timed(lambda: verify_manifest(token, ca.cert, crl, {"clip": clip_digest[0]})))
    )  # fmt: skip
    print("## Evidence signing (`python -m bench.evidence`)\n")
    print(f"Per event on the device, {ROUNDS} rounds (20 for the first-manifest row), real key (EC P-256),")
    snap_kb, model_mb = snap.stat().st_size / 1e3, model.stat().st_size / 1e6
    print(f"real snapshot ({snap_kb:.0f} kB) and model ({model_mb:.1f} MB).\n")
    print("| step | median ms | p95 ms | CPU ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, (med, p95, cpu) in rows:
        print(f"| {name} | {med:.2f} | {p95:.2f} | {cpu:.2f} |")
    wall, cpu, sig = rows[1][1][0], rows[1][1][2], rows[0][1][0]
    print(f"\nSigning costs the device {wall:.2f} ms per event (median wall, mostly the fsync of the")
    print(f"token) and {cpu:.2f} ms of CPU; the ES256 signature itself is {sig:.2f} ms.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
