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
