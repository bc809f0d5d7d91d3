"""The object detector: a LiteRT interpreter running an SSD-style model with its label file.

Supports any model that ends in the `TFLite_Detection_PostProcess` op (boxes, classes, scores,
count): any input size, uint8 or float input, any max-detections count. Recurrent video models
(Google's AutoML traffic model) take extra state inputs: they start at zero and each frame's
output states are fed back on the next frame.

A Detector is owned by one thread: LiteRT interpreters are not thread-safe (every camera of a
device shares a few of them through device/shared_detector.py). `invoke` releases the GIL.
"""

import ctypes.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from device.errors import ModelError
from device.model_edit import find_postprocess, keep_classes, with_postprocess_options
from matthan_wire.config import DetectConfig, ModelConfig

log = logging.getLogger("device.detector")

EDGETPU_LIBRARY = "libedgetpu.so.1"


class NotShareable(ModelError):
    """A model that keeps state per stream: each camera needs an interpreter of its own."""


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 normalised to [0, 1]


@dataclass(frozen=True)
class Scores:
    """The score floors of one camera: `min_score`, and per label `min_scores`."""

    floor: float
    per_label: dict[str, float]

    @classmethod
    def of(cls, detect: DetectConfig) -> "Scores":
        return cls(detect.min_score, dict(detect.min_scores))

    @property
    def threshold(self) -> float:
        """The first cut: the lowest score any label asks for."""
        return min([self.floor, *self.per_label.values()])


class ObjectDetector(Protocol):
    """What the detect stage needs: a Detector of its own, or a camera's seat at a SharedDetector."""

    model_name: str
    delegate: str
    max_detections: int  # boxes per frame at most: a crowd rule cannot count past it
    known_labels: frozenset[str]  # what it can find: a rule for another label never fires

    def detect(self, image_bgr: np.ndarray) -> list[Detection]: ...

    def set_scores(self, detect: DetectConfig) -> None: ...


def read_labels(path: Path) -> dict[int, str]:
    """Class index (as the model outputs it) → label.

    Two formats: one label per line (line i = class i, `n/a` for gaps, as coco_labels.txt), or a
    TF Object Detection label map (`item { name: "sedan" id: 1 }`, ids from 1, so class = id − 1).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"label file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"label file {path}: cannot read ({exc.__class__.__name__})") from None
    if "item" in text and "{" in text:
        labels: dict[int, str] = {}
        for block in re.findall(r"item\s*\{(.*?)\}", text, flags=re.S):
            name = re.search(r"""(?:display_)?name\s*:\s*["']([^"']+)["']""", block)
            ident = re.search(r"\bid\s*:\s*(\d+)", block)
            if name is None or ident is None or int(ident.group(1)) < 1:
                raise ModelError(f"label file {path}: label map item without a name or an id ≥ 1")
            labels[int(ident.group(1)) - 1] = name.group(1)
    else:
        labels = {i: line.strip() for i, line in enumerate(text.splitlines()) if line.strip()}
        # Trailing blank lines are harmless; an inner blank line would shift every class id.
        if len(labels) != max(labels, default=-1) + 1:
            raise ModelError(f"label file {path}: blank line inside the list would shift class ids")
    if not any(name.lower() != "n/a" for name in labels.values()):
        raise ModelError(f"label file {path}: no labels in it")
    return labels


def edgetpu_available() -> bool:
    return ctypes.util.find_library("edgetpu") is not None or any(
        Path(d, EDGETPU_LIBRARY).exists()
        for d in ("/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu")
    )


class Detector:
    """One interpreter, one model, one label file; `detect()` from one thread only."""

    def __init__(self, model: ModelConfig, detect: DetectConfig | None = None) -> None:
        from ai_edge_litert.interpreter import (  # type: ignore[import-untyped]
            Interpreter,
            OpResolverType,
            load_delegate,
        )

        path = Path(model.path)
        self.model_name = path.name
        try:
            model_bytes = path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"model {path}: no such file") from None
        except OSError as exc:
            raise ModelError(f"model {path}: cannot read ({exc.__class__.__name__})") from None
        if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
            raise ModelError(f"model {path}: not a TFLite model (no TFL3 identifier)")
        try:
            post = find_postprocess(model_bytes)
        except Exception:  # a corrupt flatbuffer raises anything from struct to IndexError
            raise ModelError(f"model {path}: corrupt TFLite flatbuffer") from None
        if post is None:
            raise ModelError(
                f"model {path}: not a detection model (no TFLite_Detection_PostProcess op); "
                "an SSD-style detector is needed"
            )
        own = post.options.get("max_detections")
        self.own_max_detections = own if isinstance(own, int) else None
        model_bytes = self._with_cap(path, model_bytes, model.max_detections)
        self.labels = read_labels(Path(model.labels))
        num_classes = post.options.get("num_classes")
        if isinstance(num_classes, int) and len(self.labels) != num_classes:
            raise ModelError(
                f"label file {model.labels} has {len(self.labels)} classes but model {path.name} has "
                f"{num_classes}: wrong label file for this model?"
            )
        model_bytes = self._with_classes(model, model_bytes)

        delegates: list[Any] = []
        self.delegate = "xnnpack"
        resolver = OpResolverType.AUTO
        if model.delegate == "cpu":
            self.delegate = "cpu"
            resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        elif edgetpu_available():
            try:
                delegates = [load_delegate(EDGETPU_LIBRARY)]
                self.delegate = "edgetpu"
            except (ValueError, OSError) as exc:
                log.warning(
                    "edgetpu delegate failed to load (%s); using CPU/XNNPACK model=%s", exc, path.name
                )
        elif model.delegate == "edgetpu":
            log.warning(
                "edgetpu delegate requested but %s is not installed; using CPU/XNNPACK", EDGETPU_LIBRARY
            )
        try:
            self._it = Interpreter(
                model_content=model_bytes,
                num_threads=model.threads,
                experimental_delegates=delegates or None,
                experimental_op_resolver_type=resolver,
            )
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"model {path}: LiteRT cannot load it ({str(exc).splitlines()[0]})") from None

        self._find_tensors(path, post.outputs)
        self.known_labels = frozenset(name for name in self.labels.values() if name.lower() != "n/a")
        self.set_scores(detect or DetectConfig())

    def _with_classes(self, model: ModelConfig, model_bytes: bytes) -> bytes:
        """The model cut to the configured classes, its labels renumbered to match; as it is
        (with a warning) when its class head cannot be cut: slower, but every rule still served.
        A class the label file does not have is the technician's to fix, so it stops the load."""
        if model.classes is None:
            return model_bytes
        ids: dict[str, int] = {}
        for i, name in sorted(self.labels.items()):
            ids.setdefault(name, i)
        unknown = [name for name in model.classes if name not in ids]
        if unknown:
            known = [name for name in ids if name.lower() != "n/a"]
            raise ModelError(
                f"model.classes: {', '.join(unknown)} not in the label file {Path(model.labels).name} "
                f"(its first labels: {', '.join(known[:6])})"
            )
        try:
            cut = keep_classes(model_bytes, [ids[name] for name in model.classes])
        except ModelError as exc:
            log.warning("model %s: model.classes not cut from the model (%s); the others are dropped "
                        "after each run instead", self.model_name, exc)  # fmt: skip
            kept = set(model.classes)
            self.labels = {i: name if name in kept else "n/a" for i, name in self.labels.items()}
            return model_bytes
        self.labels = dict(enumerate(model.classes))
        return cut

    @staticmethod
    def _with_cap(path: Path, model_bytes: bytes, max_detections: int | None) -> bytes:
        """The model with the configured cap on boxes, or as it is (with a warning) when its op
        cannot take one: a camera that detects with the model's own cap still serves every rule,
        a camera that refuses to start for a tuning value serves none."""
        if max_detections is None:
            return model_bytes
        try:
            return with_postprocess_options(model_bytes, max_detections=max_detections)
        except ModelError as exc:
            log.warning("model %s: max_detections=%d not applied, the model's own cap stays (%s)",
                        path.name, max_detections, exc)  # fmt: skip
            return model_bytes

    def set_scores(self, detect: DetectConfig) -> None:
        self.scores = Scores.of(detect)

    def _find_tensors(self, path: Path, post_outputs: tuple[int, ...]) -> None:
        inputs = self._it.get_input_details()
        outputs = self._it.get_output_details()
        images = [d for d in inputs if len(d["shape"]) == 4 and d["shape"][-1] == 3]
        if len(images) != 1:
            raise ModelError(f"model {path}: expected one image input [1,H,W,3], found {len(images)}")
        self._image = images[0]
        self.input_size = (int(self._image["shape"][2]), int(self._image["shape"][1]))  # w, h
        by_index = {d["index"]: d for d in outputs}
        post = [by_index[i] for i in post_outputs if i in by_index]
        if len(post) != 4 or len(post_outputs) != 4:
            raise ModelError(f"model {path}: expected 4 detection outputs (boxes, classes, scores, count)")
        self._boxes, self._classes, self._scores, self._count = (d["index"] for d in post)
        self.max_detections = int(post[0]["shape"][1])
        # State inputs of recurrent models, each paired with the output of the same shape and
        # name tail (raw_inputs/init_lstm_c ← raw_outputs/lstm_c).
        self._states: list[tuple[dict[str, Any], dict[str, Any]]] = []
        rest = [d for d in outputs if d["index"] not in post_outputs]
        for d in inputs:
            if d is self._image:
                continue
            tail = d["name"].rsplit("/", 1)[-1].removeprefix("init_")
            match = [o for o in rest if o["name"].endswith(tail) and list(o["shape"]) == list(d["shape"])]
            match = match or [o for o in rest if list(o["shape"]) == list(d["shape"])]
            if not match:
                raise ModelError(f"model {path}: input {d['name']} has no matching state output")
            self._states.append((d, match[0]))
            rest = [o for o in rest if o["index"] != match[0]["index"]]
        self.reset_state()

    @property
    def recurrent_states(self) -> int:
        return len(self._states)

    def reset_state(self) -> None:
        """Zero the recurrent state (a new stream session starts from nothing)."""
        for d, _ in self._states:
            scale, zero = d["quantization"]
            # Zero in real terms is the zero point for a quantised tensor.
            value = zero if scale else 0
            self._it.set_tensor(d["index"], np.full(d["shape"], value, dtype=d["dtype"]))

    def preprocess(self, image_bgr: np.ndarray) -> np.ndarray:
        w, h = self.input_size
        rgb = cv2.cvtColor(cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        if self._image["dtype"] == np.uint8:
            return rgb[np.newaxis]
        # Float models take [-1, 1] (the SSD convention: (x − 127.5) / 127.5).
        return ((rgb.astype(np.float32) - 127.5) / 127.5)[np.newaxis]

    def invoke(self, tensor: np.ndarray) -> None:
        self._it.set_tensor(self._image["index"], tensor)
        self._it.invoke()
        for d, out in self._states:
            self._it.set_tensor(d["index"], self._it.get_tensor(out["index"]).astype(d["dtype"]))

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        self.invoke(self.preprocess(image_bgr))
        return self.results()

    def results(self, scores: Scores | None = None) -> list[Detection]:
        floors = scores or self.scores
        floor, per_label = floors.floor, floors.per_label
        values = self._it.get_tensor(self._scores)[0]
        count = min(int(self._it.get_tensor(self._count)[0]), len(values))
        # One numpy pass over the boxes, then Python only for those above the lowest floor: this
        # runs in the shared detector's threads, between one camera's invoke and the next.
        keep = np.flatnonzero(values[:count] >= floors.threshold)
        if keep.size == 0:
            return []
        boxes = np.clip(self._it.get_tensor(self._boxes)[0][keep], 0.0, 1.0).tolist()
        classes = self._it.get_tensor(self._classes)[0][keep].astype(np.int64).tolist()
        found: list[Detection] = []
        for score, cls, (y1, x1, y2, x2) in zip(values[keep].tolist(), classes, boxes, strict=True):
            label = self.labels.get(cls, "n/a")
            if label.lower() == "n/a" or score < per_label.get(label, floor) or x2 <= x1 or y2 <= y1:
                continue
            found.append(Detection(label, score, (x1, y1, x2, y2)))
        return found


def load_detector(model: ModelConfig, detect: DetectConfig | None = None) -> Detector:
    detector = Detector(model, detect)
    log.info(
        "detector loaded model=%s delegate=%s threads=%d input=%dx%d max_detections=%d (the model's own: %s) "
        "classes=%s",
        detector.model_name,
        detector.delegate,
        model.threads,
        *detector.input_size,
        detector.max_detections,
        detector.own_max_detections,
        ",".join(model.classes) if model.classes is not None else "all",
    )
    return detector
