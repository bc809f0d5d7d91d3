"""What a newcomer meets before any code runs: the dev.sh usage and the package metadata."""

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_dev_sh_without_a_verb_prints_only_its_usage() -> None:
    out = subprocess.run(["bash", str(ROOT / "dev.sh")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("The project's two entry points")
    assert any("./dev.sh demo" in ln for ln in lines) and any("./dev.sh test" in ln for ln in lines)
    # Only the comment block: no shell code, no comment markers.
    assert not any(ln.startswith(("#", "set ", "cd ")) for ln in lines), lines


def test_dev_sh_names_an_unknown_verb() -> None:
    out = subprocess.run(["bash", str(ROOT / "dev.sh"), "fly"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "unknown verb: fly" in out.stderr and "./dev.sh demo" in out.stderr


def test_license_metadata_is_an_spdx_expression_the_build_backend_supports() -> None:
    # A table (`{ text = ... }`) makes setuptools warn on every install; the string form needs 77+.
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"
    (backend,) = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", backend)
    assert floor is not None and int(floor.group(1)) >= 77, backend
