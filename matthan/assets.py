"""Pretrained models and sample footage: fetched, never committed, always SHA-256 verified.

Where they live is `default_dir()`. A mirror folder (MATTHAN_ASSETS_MIRROR or --mirror) is
tried first; otherwise each file comes from its public upstream address. A file whose checksum
does not match is never installed.
"""

import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from matthan.errors import UserError
from matthan.hashing import sha256_file
from matthan.i18n import Msg

_GH = "https://raw.githubusercontent.com"
_INTEL = f"{_GH}/intel-iot-devkit/sample-videos/57978890822836f2b4743852f04f62fc511757e4"
_AUTOML = f"{_GH}/google/automl-video-ondevice/53b3b411240e5eeb47dee3e2197eb592dbfaf57d"
_CORAL = f"{_GH}/google-coral/test_data/104342d2d3480b3e66203073dac24f4e2dbb4c41"


class AssetError(UserError):
    pass


@dataclass(frozen=True)
class Asset:
    path: str
    sha256: str
    size: int
    url: str


ASSETS: tuple[Asset, ...] = (
    Asset(
        "models/ssd_mobilenet_v1_coco_quant.tflite",
        "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13",
        4183312,
        f"{_GH}/hopeza081081081/raspberry-pi-camera-detection/225240ea3bdba3bfc2bfee48fac979cb87901c94"
        "/models/detect.tflite",
    ),
    Asset(
        "models/coco_labels.txt",
        "dc183f003fc753c4c43fae6fdf7f387559449573f13fa32e517fb7453fd380f1",
        661,
        f"{_CORAL}/coco_labels.txt",
    ),
    Asset(
        "models/automl_traffic_model.tflite",
        "e2b84f99170285640a5212a26b4ea466e1b9d957bdd46e0082c2918a874e3e65",
        3099120,
        f"{_CORAL}/automl_video_ondevice/traffic_model.tflite",
    ),
    Asset(
        "models/traffic_label_map.pbtxt",
        "e1bf50d26063d3d2087313e28f7c93b22f9fd688ecbe9bc757515b61fb6c79c4",
        116,
        f"{_AUTOML}/data/traffic_label_map.pbtxt",
    ),
    Asset(
        "video/vtest_480x360.mp4",
        "dd3e57bd66dfc1f458ebd40d79d24014533b760e8ff0461025d84b35f4214daf",
        3558640,
        f"{_GH}/Gautam-Kundalia/Social-Distancing-Assistant/932f06307ac73d19f4317495838517a57684faf1/vtest.mp4",
    ),
    Asset(
        "video/person-bicycle-car-detection_reencoded.mp4",
        "ff6419d711e39419b00f40f37bf2ea8310319c567a6394c0b03601ec64340bc2",
        4064257,
        f"{_GH}/shehryarusman/Final_Project/37006e3a24baa2fbc09b668adb3fc1af17d74e46"
        "/person-bicycle-car-detection.mp4",
    ),
    Asset(
        "video/car-detection.mp4",
        "d31e0ebf194cc16e50eea784e7c3b0b1bb7976a4fb9b3fec26cb92a6704cca34",
        2811553,
        f"{_INTEL}/car-detection.mp4",
    ),
    Asset(
        "video/one-by-one-person-detection.mp4",
        "a5964aa259099a482a8b360ffc2c57b5a30f84d5919236a4dad01f8e929ac07c",
        3291918,
        f"{_INTEL}/one-by-one-person-detection.mp4",
    ),
    Asset(
        "video/worker-zone-detection.gif",
        "258a1df000dfdb488f2992ecc02ed262e7ecf03f638c3f5d1736b26718783447",
        3285006,
        f"{_INTEL}/preview/worker-zone-detection.gif",
    ),
    Asset(
        "video/traffic_frames.mp4",
        "a94ef9529efbfbff681adb1f852c9e932eacecd7fa0b01105660d6994054314d",
        112793,
        f"{_AUTOML}/data/traffic_frames.mp4",
    ),
)

DEFAULT_MODEL = "models/ssd_mobilenet_v1_coco_quant.tflite"
DEFAULT_LABELS = "models/coco_labels.txt"
# What a street camera's rules count, of the default model's 90 COCO classes: the model is cut to
# them at load (model.classes) unless a device names its model itself. A tenth less CPU per
# detector run, and no box slot lost to a handbag or a bench (bench/RESULTS.md).
STREET_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


# The checkout this code runs from, if it runs from one (an editable install or PYTHONPATH);
# an installed wheel has no pyproject.toml beside its packages.
_CHECKOUT = Path(__file__).resolve().parent.parent


def default_dir() -> Path:
    """Where assets live, one rule for every command, test and benchmark:

    1. MATTHAN_ASSETS_DIR, when set (a device: /var/lib/matthan/assets);
    2. `.assets` in the checkout, when running from one (as ./dev.sh and the tests do);
    3. ~/.cache/matthan/assets otherwise (an installed command).
    """
    env = os.environ.get("MATTHAN_ASSETS_DIR")
    if env:
        return Path(env)
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "matthan").is_dir():
        return _CHECKOUT / ".assets"
    return Path.home() / ".cache" / "matthan" / "assets"


def path(relative: str, dest: Path | None = None) -> Path:
    """The verified local copy of an asset, or an AssetError saying how to get it."""
    asset = next((a for a in ASSETS if a.path == relative), None)
    if asset is None:
        raise AssetError(Msg("unknown asset %(asset)r", asset=relative))
    target = (dest or default_dir()) / relative
    if not target.is_file() or target.stat().st_size != asset.size:
        raise AssetError(
            Msg(
                "asset %(asset)s is missing in %(folder)s; run: matthan assets fetch",
                asset=relative,
                folder=str(target.parent),
            )
        )
    return target


def verified(file: Path, sha256: str) -> bool:
    return file.is_file() and sha256_file(file) == sha256


def fetch(dest: Path | None = None, mirror: Path | None = None) -> Iterator[tuple[Path, str]]:
    """Install every asset under dest; yields (path, 'present' | 'mirror' | 'upstream')."""
    dest = dest or default_dir()
    env_mirror = os.environ.get("MATTHAN_ASSETS_MIRROR")
    given = "--mirror" if mirror is not None else "MATTHAN_ASSETS_MIRROR"
    mirror = mirror or (Path(env_mirror) if env_mirror else None)
    if mirror is not None and not mirror.is_dir():
        raise AssetError(
            Msg(
                "mirror folder %(mirror)s (from %(given)s) does not exist: point it at a folder holding "
                "models/ and video/ as `matthan assets fetch` writes them (a copy of %(dest)s from a "
                "machine that has them), or leave it unset to download from upstream",
                mirror=str(mirror),
                given=given,
                dest=str(dest),
            )
        )
    for asset in ASSETS:
        target = dest / asset.path
        if verified(target, asset.sha256):
            yield target, "present"
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if mirror is not None and verified(mirror / asset.path, asset.sha256):
            _install(target, partial(_copy, mirror / asset.path), asset)
            yield target, "mirror"
        else:
            _install(target, partial(_download, asset.url, dest), asset)
            yield target, "upstream"


def _install(target: Path, write: Callable[[Path], None], asset: Asset) -> None:
    # Write beside the target and rename only once verified: a half-written or tampered file
    # is never seen under the real name.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        got = sha256_file(tmp)
        if got != asset.sha256:
            raise AssetError(
                Msg(
                    "%(asset)s: checksum mismatch (got %(got)s…, want %(want)s…)",
                    asset=asset.path,
                    got=got[:12],
                    want=asset.sha256[:12],
                )
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _copy(src: Path, out: Path) -> None:
    shutil.copyfile(src, out)


def _download(url: str, dest: Path, out: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, out.open("wb") as fh:
            shutil.copyfileobj(resp, fh)
    except OSError as exc:
        raise AssetError(
            Msg(
                "cannot download %(url)s: %(error)s. Offline? Copy the assets folder from a machine that has "
                "them (models/ and video/, e.g. its %(default)s) and run: matthan assets fetch "
                "--mirror /path/to/that/copy (or set MATTHAN_ASSETS_MIRROR); they are verified and "
                "installed into %(dest)s",
                url=url,
                error=str(exc),
                default=str(default_dir()),
                dest=str(dest),
            )
        ) from None
