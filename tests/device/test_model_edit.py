"""Edits of the real SSD model in memory: the post-process's options, the classes it answers for."""

import logging
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

from device.config_file import default_model
from device.detector import Detection, ModelError, load_detector
from device.model_edit import find_postprocess, keep_classes, with_postprocess_options
from matthan import assets, vocabulary
from matthan_wire.config import DetectConfig, ModelConfig
from tests.support.models import tiny_add_model
from tests.support.video import frames_at

STREET = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
STREET_IDS = [0, 1, 2, 3, 5, 7]  # their lines in coco_labels.txt


@pytest.fixture(scope="module")
def ssd_bytes(assets_dir: Path) -> bytes:
    return (assets_dir / "models/ssd_mobilenet_v1_coco_quant.tflite").read_bytes()


def test_max_detections_is_set_in_memory_only(model_config: ModelConfig, assets_dir: Path) -> None:
    path = assets_dir / "models/ssd_mobilenet_v1_coco_quant.tflite"
    before = path.read_bytes()
    patched = with_postprocess_options(before, max_detections=37, nms_iou_threshold=0.45)
    assert len(patched) == len(before) and path.read_bytes() == before
    post = find_postprocess(patched)
    assert post is not None and post.options["max_detections"] == 37
    assert post.options["nms_iou_threshold"] == pytest.approx(0.45)
    assert load_detector(model_config.model_copy(update={"max_detections": 37})).max_detections == 37


def test_post_process_options_that_cannot_be_set(ssd_bytes: bytes) -> None:
    with pytest.raises(ModelError, match="no TFLite_Detection_PostProcess op"):
        with_postprocess_options(tiny_add_model(), max_detections=20)
    with pytest.raises(ModelError, match="options lack max_boxes"):
        with_postprocess_options(ssd_bytes, max_boxes=20)
    with pytest.raises(ModelError, match="cannot rewrite"):  # a double widens every value of the map
        with_postprocess_options(ssd_bytes, max_detections=2**40)


def _scores(model: bytes, image: np.ndarray) -> np.ndarray:
    """The class scores the post-process reads (after the logistic), for one frame."""
    it = Interpreter(model_content=model, num_threads=1, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], image)
    it.invoke()
    (scores,) = [t for t in it.get_tensor_details() if t["name"] == "convert_scores"]
    return np.array(it.get_tensor(scores["index"])[0])


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_a_kept_class_scores_exactly_as_before(ssd_bytes: bytes, assets_dir: Path, video) -> None:  # type: ignore[no-untyped-def]
    """Each kept channel is computed from its own weights and bias: bit for bit the same, on real
    frames; the post-process is told the new count and the file on disk is untouched."""
    import cv2

    cut = keep_classes(ssd_bytes, STREET_IDS)
    assert (assets_dir / "models/ssd_mobilenet_v1_coco_quant.tflite").read_bytes() == ssd_bytes
    post = find_postprocess(cut)
    assert post is not None and post.options["num_classes"] == 6
    for frame in frames_at(video("vtest_480x360.mp4"), {0, 400}).values():
        image = cv2.cvtColor(cv2.resize(frame, (300, 300)), cv2.COLOR_BGR2RGB)[np.newaxis]
        whole, kept = _scores(ssd_bytes, image), _scores(cut, image)
        assert whole.shape == (1917, 91) and kept.shape == (1917, 7)
        np.testing.assert_array_equal(kept, whole[:, [0, *(c + 1 for c in STREET_IDS)]])
    # In any order: the post-process's class i is the i-th kept one.
    reordered = keep_classes(ssd_bytes, [2, 0])
    image = np.zeros((1, 300, 300, 3), np.uint8)
    np.testing.assert_array_equal(_scores(reordered, image), _scores(ssd_bytes, image)[:, [0, 3, 1]])


def test_the_cut_model_finds_every_street_box_the_whole_one_did(model_config: ModelConfig, video) -> None:  # type: ignore[no-untyped-def]
    """Boxes of the other classes no longer take the ten slots or suppress a kept one: on the
    street, the cut model's boxes are the whole model's street boxes and more, never fewer."""
    whole = load_detector(model_config)
    cut = load_detector(model_config.model_copy(update={"classes": STREET}))
    assert cut.labels == dict(enumerate(STREET)) and cut.known_labels == frozenset(STREET)

    def street(found: list[Detection]) -> set[tuple[str, float, tuple[float, ...]]]:
        return {(d.label, d.score, tuple(round(v, 4) for v in d.bbox)) for d in found if d.label in STREET}

    frames = frames_at(video("vtest_480x360.mp4"), set(range(0, 795, 53)))
    more = 0
    for frame in frames.values():
        before, after = street(whole.detect(frame)), street(cut.detect(frame))
        assert before <= after
        more += len(after - before)
    assert more > 0  # on vtest some frames' tenth slot went to a handbag or a bench


def test_classes_the_label_file_lacks_stop_the_load(model_config: ModelConfig) -> None:
    with pytest.raises(
        ModelError, match=r"model.classes: persn, scooter not in the label file coco_labels.txt"
    ):
        load_detector(model_config.model_copy(update={"classes": ["person", "persn", "scooter"]}))


def test_a_model_whose_class_head_cannot_be_cut_keeps_it_and_drops_the_rest(
    traffic: ModelConfig, caplog: pytest.LogCaptureFixture, video
) -> None:  # type: ignore[no-untyped-def]
    """The recurrent traffic model's class head is not the SSD layout: it is refused whole, never
    cut wrongly, and the camera still gets only the classes asked for (slower, not wrong)."""
    with caplog.at_level(logging.WARNING, logger="device.detector"):
        detector = load_detector(
            traffic.model_copy(update={"classes": ["sedan"]}), DetectConfig(min_score=0.1)
        )
    assert any("model.classes not cut from the model" in r.getMessage() for r in caplog.records)
    assert detector.known_labels == frozenset({"sedan"})
    found = [d for frame in frames_at(video("traffic_frames.mp4"), set(range(0, 40, 4))).values()
             for d in detector.detect(frame)]  # fmt: skip
    assert found and {d.label for d in found} == {"sedan"}


def test_models_that_are_not_an_ssd_class_head_are_refused(ssd_bytes: bytes) -> None:
    with pytest.raises(ModelError, match="no TFLite_Detection_PostProcess op"):
        keep_classes(tiny_add_model(), [0])
    with pytest.raises(ModelError, match="distinct"):
        keep_classes(ssd_bytes, [0, 0])
    with pytest.raises(ModelError, match="outside the model's 90"):
        keep_classes(ssd_bytes, [90])
    with pytest.raises(ModelError, match="cannot read the model's class head"):  # a damaged file
        keep_classes(ssd_bytes[:4096], [0])


def test_the_default_model_is_cut_to_the_street_classes_the_product_names() -> None:
    model = default_model()
    assert model.path.endswith(assets.DEFAULT_MODEL) and model.classes == list(assets.STREET_CLASSES)
    # Every class kept has a word in the console and the alerts, and every word a class.
    assert set(assets.STREET_CLASSES) == set(vocabulary.LABELS)


def test_classes_named_twice_are_refused() -> None:
    with pytest.raises(ValueError, match=r"classes listed twice: \['car'\]"):
        ModelConfig(path="m.tflite", labels="l.txt", classes=["car", "person", "car"])
