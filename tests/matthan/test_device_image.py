"""Dockerfile.device: no Docker engine runs on CI, so lint it and run its install step for real."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.device"
CONFIG = ROOT / "tests" / "device" / "configs" / "good.yaml"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_image_runs_agent_as_non_root_with_volumes_and_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), user
    assert re.search(r'^VOLUME \[.*"/etc/matthan".*"/var/lib/matthan"', text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*matthan.*device.*healthcheck", text, re.M)
    assert re.search(r'^ENTRYPOINT .*"matthan", "device", "run"', text, re.M)
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage: the build stage stays out of the image"


@pytest.mark.slow
def test_image_install_step_works_in_a_clean_venv(tmp_path: Path) -> None:
    # Run the Dockerfile's own pip line, with the image's venv path swapped for a temporary one.
    line = next(
        ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("RUN /opt/matthan/bin/pip install")
    )
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(".venv", ".assets", ".git", "test-output", "*.egg-info", "build"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    cmd = shlex.split(line.removeprefix("RUN ").replace("/opt/matthan", str(venv)))
    subprocess.run([*cmd, "-q"], check=True, cwd=src, timeout=900)
    matthan = venv / "bin" / "matthan"
    assert subprocess.run([str(matthan), "--help"], capture_output=True, text=True).returncode == 0
    out = subprocess.run(
        [str(matthan), "device", "validate", "--config", str(CONFIG)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    probe = "import ai_edge_litert.interpreter, cv2, paho.mqtt.client, numpy; print(cv2.__version__)"
    assert subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True).returncode == 0
    # The device set only: none of the cloud's dependencies, nor norfair/SciPy.
    for absent in ("fastapi", "sqlalchemy", "alembic", "jinja2", "uvicorn", "norfair", "scipy"):
        found = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {absent}"], capture_output=True)
        assert found.returncode != 0, f"{absent} is installed on the device"
