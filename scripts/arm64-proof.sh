#!/usr/bin/env bash
# The device stack on arm64 (the Pi's and Jetson's architecture), emulated by qemu-user:
#   1. debootstrap an arm64 Debian bookworm root (Debian's packages only: python3, ffmpeg);
#   2. pip-install the device (this checkout) with the pinned versions of constraints.txt;
#   3. run `matthan device validate` and a short `matthan device detect` on a real clip there;
#   4. run the same detect on this (x86_64) machine and compare the events.
# Needs root, debootstrap, qemu-user-static and binfmt-support (binfmt_misc mounted and the
# qemu-aarch64 handler enabled), and network access to deb.debian.org and PyPI.
#
# Usage: scripts/arm64-proof.sh [ROOT]      (ROOT defaults to /var/tmp/matthan-arm64; kept between runs)
#
# Cost on the shared 2-core dev machine (2026-11-26, heavily loaded): debootstrap 15 min and the
# first pip install 14 min (once; the root is reused), then pip 1.5 min, validate 3 s, and the
# 20 s clip's detect 9 min under emulation (4 s on x86_64): too long for the default test command.
# On a quiet machine (2026-11-26, PROOF_SECONDS=10, the model cut to the street classes): root
# 4 min, pip 1 min, the 10 s clip's detect 53 s under emulation (1 s on x86_64), the same 4 events.
# In CI: a separate job (nightly, and on changes to constraints.txt, device/ or Dockerfile.device)
# that restores ROOT from a cache keyed on the hash of constraints.txt, runs
# `timeout 1800 scripts/arm64-proof.sh "$ROOT"` with PROOF_SECONDS=10, and saves ROOT back.
# Env:   MATTHAN_ASSETS_DIR (model + clip), PROOF_SECONDS (clip length, default 20),
#        PROOF_TIMEOUT (seconds allowed for the arm64 detect, default 900), HOST_MATTHAN (x86 matthan command), HOST_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=${1:-/var/tmp/matthan-arm64}
ASSETS=${MATTHAN_ASSETS_DIR:?set MATTHAN_ASSETS_DIR to the folder holding models/ and video/}
SECONDS_LONG=${PROOF_SECONDS:-20}
TIMEOUT=${PROOF_TIMEOUT:-900}
HOST_PYTHON=${HOST_PYTHON:-python3}
HOST_MATTHAN=${HOST_MATTHAN:-matthan}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
OUT=${PROOF_OUT:-$ROOT.out}
START=2026-01-01T08:00:00Z
t0=$(date +%s)
stamp() { echo "[arm64-proof +$(( $(date +%s) - t0 ))s] $*"; }

[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot)"; exit 2; }
for tool in debootstrap chroot ffmpeg; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install debootstrap qemu-user-static binfmt-support)"; exit 2; }
done
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "qemu-aarch64 binfmt handler not enabled"; exit 2; }

# 1. The root: created once, reused (a marker file says it is complete).
if [ ! -e "$ROOT/.matthan-root-ok" ]; then
  stamp "debootstrap arm64 bookworm into $ROOT"
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ffmpeg,ca-certificates \
    bookworm "$ROOT" "$MIRROR" >"$OUT.debootstrap.log" 2>&1 || { tail -20 "$OUT.debootstrap.log"; exit 1; }
  touch "$ROOT/.matthan-root-ok"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# A network that inspects TLS has its own CA in the host's bundle: pip in the root needs it too.
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
ca_env=()
if [ -f "$HOST_CA" ]; then
  cp "$HOST_CA" "$ROOT/etc/matthan-host-ca.crt"
  ca_env=(PIP_CERT=/etc/matthan-host-ca.crt SSL_CERT_FILE=/etc/matthan-host-ca.crt)
fi
mounted=()
cleanup() {
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  rm -f "${cpuinfo:-}"
}
trap cleanup EXIT
for fs in proc sys dev; do
  mount --bind "/$fs" "$ROOT/$fs"; mounted+=("$ROOT/$fs")
done
# qemu-user 7.2 passes the host's x86 /proc/cpuinfo through; LiteRT's CPU detection (cpuinfo, for
# XNNPACK and ruy) finds no ARM core in it and crashes in the first invoke. A Pi 4's (4 × Cortex-A72).
cpuinfo=$(mktemp)
for i in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done >"$cpuinfo"
mount --bind "$cpuinfo" "$ROOT/proc/cpuinfo"; mounted+=("$ROOT/proc/cpuinfo")
in_root() {
  chroot "$ROOT" /usr/bin/env -i PATH=/opt/matthan/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "${ca_env[@]}" "$@"
}
stamp "arm64 root: $(in_root uname -m), $(in_root python3 --version), $(in_root ffmpeg -version | head -1 | cut -c1-40)"

# 2. The device, as Dockerfile.device installs it: this checkout with the pinned versions (wheels
#    where PyPI has them; filterpy, which norfair needs, is a pure-Python sdist).
rm -rf "$ROOT/src" && mkdir -p "$ROOT/src"
git ls-files -z | grep -zv '^tests/\|^bench/\|^docs/' | xargs -0 cp --parents -t "$ROOT/src"
if [ ! -x "$ROOT/opt/matthan/bin/python" ]; then
  in_root python3 -m venv /opt/matthan
fi
stamp "pip install the device with constraints.txt"
in_root /opt/matthan/bin/pip install -q --disable-pip-version-check --prefer-binary \
  -c /src/constraints.txt "/src[device]" >"$OUT.pip.log" 2>&1 || { tail -20 "$OUT.pip.log"; exit 1; }
in_root /opt/matthan/bin/pip freeze | grep -iE '^(ai-edge-litert|numpy|opencv-python-headless|pydantic|paho-mqtt|norfair)=' \
  | sed 's/^/  arm64 /'

# 3. A short real clip, the model, and a config with rules that fire on it.
mkdir -p "$ROOT/work/models" "$ROOT/work/data"
cp "$ASSETS/models/ssd_mobilenet_v1_coco_quant.tflite" "$ASSETS/models/coco_labels.txt" "$ROOT/work/models/"
ffmpeg -v error -y -i "$ASSETS/video/vtest_480x360.mp4" -t "$SECONDS_LONG" -an -c:v libx264 -preset veryfast \
  "$ROOT/work/clip.mp4"
cat >"$ROOT/work/device.yaml" <<YAML
device: {id: arm64-proof, ward: ben-nghe}
broker: {url: "mqtt://127.0.0.1:1883"}
storage: {path: data, budget_mb: 64}
model: {path: models/ssd_mobilenet_v1_coco_quant.tflite, labels: models/coco_labels.txt, threads: 2,
        classes: [person, bicycle, car, motorcycle, bus, truck]}  # cut at load, as the default is
cameras:
  - id: plaza
    source: clip.mp4
    detect: {fps: 5}
    zones:
      - name: square
        polygon: [[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]]
        rules:
          - {type: intrusion, labels: [person], min_duration_s: 1}
          - {type: crowd, labels: [person], min_count: 4, min_duration_s: 2}
YAML
stamp "arm64: matthan device validate"
in_root sh -c 'cd /work && matthan device validate --config device.yaml'
stamp "arm64: matthan device detect (${SECONDS_LONG}s clip, timeout ${TIMEOUT}s)"
a0=$(date +%s)
in_root sh -c "cd /work && timeout $TIMEOUT matthan device detect --config device.yaml --camera plaza \
  --source clip.mp4 --json --start-time $START" >"$OUT.arm64.jsonl" 2>"$OUT.arm64.log" \
  || { tail -20 "$OUT.arm64.log"; exit 1; }
a1=$(date +%s)
tail -1 "$OUT.arm64.log" | sed 's/^/  arm64 /'

# 4. The same run on this machine.
stamp "x86_64: the same detect"
work=$(mktemp -d)
cp -r "$ROOT/work/." "$work/"
(cd "$work" && PYTHONPATH="$REPO" timeout 300 "$HOST_MATTHAN" device detect --config device.yaml \
  --camera plaza --source clip.mp4 --json --start-time $START) >"$OUT.x86_64.jsonl" 2>"$OUT.x86_64.log"
tail -1 "$OUT.x86_64.log" | sed 's/^/  x86_64 /'
rm -rf "$work"

"$HOST_PYTHON" - "$OUT.arm64.jsonl" "$OUT.x86_64.jsonl" "$((a1 - a0))" <<'PY'
import json, sys
def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return [(r["phase"], r["rule"], r["started_at"], r.get("ended_at"), r["object_count"]) for r in rows]
arm, x86 = load(sys.argv[1]), load(sys.argv[2])
same = sum(1 for a in arm if a in x86)
print(f"events: arm64={len(arm)} x86_64={len(x86)} identical={same} arm64_detect_s={sys.argv[3]}")
for row in sorted(set(arm) ^ set(x86)):
    print("  only on", "arm64 " if row in arm else "x86_64", row)
sys.exit(0 if arm and len(arm) == len(x86) == same else 1)
PY
stamp "done"
