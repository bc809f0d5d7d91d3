#!/usr/bin/env bash
# The project's two entry points; each installs what is missing first.
#   ./dev.sh demo   a whole site on this machine (broker, cloud, device on a sample clip, console)
#   ./dev.sh test   lint, type checks and the whole test suite against real components
# Other verbs: ./dev.sh setup (install only), ./dev.sh bench (every benchmark).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
# Assets go where every matthan command looks (matthan/assets.py, default_dir): MATTHAN_ASSETS_DIR
# if set, else this checkout's .assets. MATTHAN_ASSETS_MIRROR, if set, names a local copy to use
# instead of downloading.

say() { printf '\033[1m[matthan]\033[0m %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

apt_install() {
  # System packages come from the distribution; as root we install them, otherwise we say which.
  local missing=("$@")
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    say "installing system packages with sudo: ${missing[*]}"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    die "missing system packages; run as root: apt-get install ${missing[*]}"
  fi
}

system_deps() {
  local want=()
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || want+=(mosquitto)
  command -v mosquitto_pub >/dev/null || want+=(mosquitto-clients)
  command -v ffmpeg >/dev/null || want+=(ffmpeg)
  # The snapshot caption's font (Vietnamese diacritics): device/evidence_snapshot.py.
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || want+=(fonts-dejavu-core)
  if [ "${1:-}" = test ]; then
    command -v chromium >/dev/null || want+=(chromium)
    command -v psql >/dev/null || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null || want+=(postgresql)
  fi
  apt_install "${want[@]}"
}

postgres_up() {
  # The tests need a PostgreSQL on 127.0.0.1:5432 with a database `test` the postgres user reaches.
  if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then return 0; fi
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not running on 127.0.0.1:5432; start it (tests need it)"
  local ver; ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  [ -n "$ver" ] || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  say "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && break; sleep 0.2; done
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 \
    || su postgres -c "createdb test"
  export PGPASSWORD=${PGPASSWORD:-postgres}
}

find_python() {
  local py
  for py in python3.11 python3.12 python3.13 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))'; then
      echo "$py"; return 0
    fi
  done
  return 1
}

python_deps() {
  local stamp=$VENV/.installed
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py=$(find_python) || die "Python 3.11 or newer is needed (apt-get install python3 python3-venv)"
    "$py" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; "$py" -m venv "$VENV"; }
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    say "installing Python packages into .venv"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    # .[dev] is everything: the device and cloud sets, both database drivers and the test tools.
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
    touch "$stamp"
  fi
}

assets_fetch() {
  "$VENV/bin/matthan" assets fetch >/dev/null
}

usage() {
  # The comment block under the shebang is the usage text: it ends at the first line that is not a comment.
  awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0"
}

verb=${1:-}
shift || true
case "$verb" in
  setup)
    system_deps test; python_deps; assets_fetch ;;
  demo)
    system_deps demo; python_deps; assets_fetch
    exec "$VENV/bin/matthan" demo "$@" ;;
  test)
    system_deps test; postgres_up; python_deps; assets_fetch
    say "lint (ruff) and types (mypy)"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy" matthan_wire matthan device cloud provisioning ward bench
    say "tests"
    exec "$VENV/bin/python" -m pytest "$@" ;;
  bench)
    system_deps demo; python_deps; assets_fetch
    exec "$VENV/bin/python" -m bench "$@" ;;
  help|-h|--help)
    usage ;;
  "")
    usage; exit 2 ;;
  *)
    say "unknown verb: $verb"; usage >&2; exit 2 ;;
esac
