import os
import subprocess
import sys
from pathlib import Path

import pytest

from matthan import assets


def test_assets_are_verified(assets_dir: Path) -> None:
    for a in assets.ASSETS:
        assert assets.verified(assets_dir / a.path, a.sha256), a.path


def test_tampered_mirror_file_is_never_installed(tmp_path: Path, assets_dir: Path) -> None:
    mirror = tmp_path / "mirror"
    for a in assets.ASSETS:
        (mirror / a.path).parent.mkdir(parents=True, exist_ok=True)
        (mirror / a.path).write_bytes((assets_dir / a.path).read_bytes())
    labels = mirror / "models/coco_labels.txt"
    labels.write_text(labels.read_text().replace("person", "persin"))
    dest = tmp_path / "dest"
    # The tampered file is skipped in the mirror and fetched upstream; with no network that
    # fails loudly, and nothing unverified is left under the real name.
    try:
        got = dict((str(p.relative_to(dest)), how) for p, how in assets.fetch(dest, mirror))
        assert got["models/coco_labels.txt"] == "upstream"
    except assets.AssetError as exc:
        assert "coco_labels" in str(exc) or "download" in str(exc)
    assert not (dest / "models/coco_labels.txt").exists() or assets.verified(
        dest / "models/coco_labels.txt", assets.ASSETS[1].sha256
    )
    assert assets.verified(dest / "models/ssd_mobilenet_v1_coco_quant.tflite", assets.ASSETS[0].sha256)


def test_missing_asset_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(assets.AssetError, match="matthan assets fetch"):
        assets.path("models/coco_labels.txt", tmp_path)


ROOT = Path(__file__).resolve().parent.parent.parent


def _matthan(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matthan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def _env_without_assets_settings(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTHAN_ASSETS")}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT)}


def test_from_a_checkout_every_command_looks_in_its_assets_folder(tmp_path: Path) -> None:
    # As after `./dev.sh demo`: a later plain `matthan ...` from any folder finds what dev.sh fetched.
    env = _env_without_assets_settings(tmp_path)
    listed = _matthan("--lang", "en", "assets", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == f"assets in {ROOT / '.assets'}"
    # What `provision check` and `device run` load when the config names no model.
    probe = "from matthan import assets; print(assets.default_dir())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.stdout.strip() == str(ROOT / ".assets")


def test_the_environment_names_the_folder_for_every_command(tmp_path: Path) -> None:
    env = {**_env_without_assets_settings(tmp_path), "MATTHAN_ASSETS_DIR": str(tmp_path / "a")}
    listed = _matthan("--lang", "en", "assets", "list", env=env, cwd=tmp_path)
    assert listed.stdout.splitlines()[0] == f"assets in {tmp_path / 'a'}"
    assert all(ln.strip().startswith("missing") for ln in listed.stdout.splitlines()[1:])


def test_an_installed_command_uses_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MATTHAN_ASSETS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(assets, "_CHECKOUT", tmp_path / "site-packages")  # no pyproject.toml beside it
    assert assets.default_dir() == tmp_path / ".cache" / "matthan" / "assets"


def test_a_missing_mirror_says_what_it_should_hold(tmp_path: Path) -> None:
    env = {**_env_without_assets_settings(tmp_path), "MATTHAN_ASSETS_MIRROR": str(tmp_path / "usb")}
    out = _matthan("assets", "fetch", "--dest", str(tmp_path / "dest"), env=env, cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    msg = out.stderr.strip()
    assert f"mirror folder {tmp_path / 'usb'} (from MATTHAN_ASSETS_MIRROR) does not exist" in msg
    assert "models/ and video/" in msg and "unset" in msg


def test_offline_without_a_mirror_says_how_to_bring_the_assets(tmp_path: Path) -> None:
    # No network (a proxy that refuses, so the test is offline on any machine).
    env = {**_env_without_assets_settings(tmp_path), "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    out = _matthan("assets", "fetch", "--dest", str(tmp_path / "dest"), env=env, cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    msg = out.stderr.strip()
    assert "Offline?" in msg and "matthan assets fetch --mirror" in msg and "MATTHAN_ASSETS_MIRROR" in msg
    assert str(tmp_path / "dest") in msg
