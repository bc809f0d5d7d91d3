"""Fixtures of the device tests: the real model, the real footage, a camera config builder, a cloud
to upload to."""

import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from device.camera_worker import CameraWorker
from device.events import DetectedEvent
from matthan_wire.config import CameraConfig, DeviceIdentity, ModelConfig

if TYPE_CHECKING:
    from tests.support.cloud_server import Cloud

T0 = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
DEVICE = DeviceIdentity(id="q1-rex-01", ward="ben-nghe", timezone="Asia/Ho_Chi_Minh")


@pytest.fixture(scope="session")
def model_config(assets_dir: Path) -> ModelConfig:
    return ModelConfig(
        path=str(assets_dir / "models/ssd_mobilenet_v1_coco_quant.tflite"),
        labels=str(assets_dir / "models/coco_labels.txt"),
        threads=2,
    )


@pytest.fixture(scope="session")
def video(assets_dir: Path) -> Callable[[str], Path]:
    def get(name: str) -> Path:
        return assets_dir / "video" / name

    return get


@pytest.fixture(scope="session")
def vtest_45s(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 45 s of vtest, cut by stream copy (the same pixels as the original)."""
    out = tmp_path_factory.mktemp("clips") / "vtest_45s.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(assets_dir / "video/vtest_480x360.mp4"), "-t", "45",
         "-an", "-c", "copy", str(out)],
        check=True, timeout=60,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator["Cloud"]:
    """One cloud for the tests that leave it running (each uses its own event ids)."""
    # Imported here: the cloud's modules load only for the tests that upload.
    from tests.support.cloud_server import Cloud

    c = Cloud(tmp_path_factory.mktemp("cloud")).start()
    yield c
    c.kill()


@pytest.fixture
def own_cloud(tmp_path: Path) -> Iterator["Cloud"]:
    """A cloud of the test's own, for tests that kill it."""
    from tests.support.cloud_server import Cloud

    workdir = tmp_path / "cloud"
    workdir.mkdir()
    c = Cloud(workdir).start()
    yield c
    c.kill()


def camera(source: Path | str, **fields: Any) -> CameraConfig:
    data: dict[str, Any] = {"id": "cam", "source": str(source), "detect": {"fps": 5}}
    data.update(fields)
    return CameraConfig.model_validate(data)


class Run:
    """One CameraWorker pass over a file, unpaced, collecting every event."""

    def __init__(self, cam: CameraConfig, model: ModelConfig, start: datetime = T0) -> None:
        self.events: list[DetectedEvent] = []
        self._lock = threading.Lock()
        seq = iter(range(1, 10**9))
        self.worker = CameraWorker(
            DEVICE, cam, model, self._on_event, lambda: next(seq), paced=False, start_time=start
        )
        self.worker.start()
        assert self.worker.wait_finished(120), "the clip did not finish in 120 s"
        self.worker.stop()
        assert self.worker.error is None, self.worker.error
        self.stats = self.worker.stats()

    def _on_event(self, event: DetectedEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, rule: str, phase: str | None = None) -> list[DetectedEvent]:
        return [e for e in self.events if e.alert.rule == rule and (phase is None or e.alert.phase == phase)]

    def offsets(self, rule: str, phase: str = "start") -> list[float]:
        """Seconds from the clip's start at which the rule's events started (or ended)."""
        out = []
        for e in self.of(rule, phase):
            at = e.alert.started_at if phase == "start" else e.alert.ended_at
            assert at is not None
            out.append(round((at - T0).total_seconds(), 1))
        return out


@pytest.fixture(scope="module")
def traffic(assets_dir: Path) -> ModelConfig:
    """The second real model: AutoML traffic (vehicles), for what is model-specific."""
    return ModelConfig(
        path=str(assets_dir / "models/automl_traffic_model.tflite"),
        labels=str(assets_dir / "models/traffic_label_map.pbtxt"),
    )
