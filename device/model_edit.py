"""Edits of an SSD detection model made in memory at load: the file on disk stays as verified.

Two edits, both on the flatbuffer the interpreter is built from:
- the options of the `TFLite_Detection_PostProcess` op (the cap on boxes per frame);
- the classes the model answers for: the output channels of its class head that score the other
  classes are cut from the convolutions that compute them. On SSD MobileNet v1 (COCO, 90 classes)
  keeping the six a street camera needs takes 10 % off each invoke (bench/RESULTS.md), and the
  other classes no longer take the post-process's box slots or suppress a kept box that overlaps
  them: each kept class scores exactly as before.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from device.errors import ModelError

POSTPROCESS = b"TFLite_Detection_PostProcess"
# Ops between the class head's concatenation and the post-process that act on each score alone.
_ELEMENTWISE = {"LOGISTIC", "DEQUANTIZE", "QUANTIZE"}


@dataclass(frozen=True)
class PostProcess:
    options: dict[str, Any]  # num_classes, max_detections, …
    outputs: tuple[int, ...]  # tensor indices in the op's order: boxes, classes, scores, count
    raw_options: bytes  # the options as stored (FlexBuffers); empty when the op has none


def find_postprocess(model_bytes: bytes) -> PostProcess | None:
    """The model's TFLite_Detection_PostProcess op, read from the flatbuffer: its options and its
    output tensors in the op's own order (output names differ between exporters)."""
    from ai_edge_litert import schema_py_generated as schema  # type: ignore[import-untyped]
    from flatbuffers import flexbuffers  # type: ignore[import-untyped]

    model = schema.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        if model.OperatorCodes(op.OpcodeIndex()).CustomCode() != POSTPROCESS:
            continue
        numpy_raw = op.CustomOptionsAsNumpy()
        raw = b"" if isinstance(numpy_raw, int) else numpy_raw.tobytes()  # int: no options
        opts = flexbuffers.Loads(raw) if raw else {}
        outputs = tuple(int(i) for i in op.OutputsAsNumpy())
        return PostProcess(dict(opts) if isinstance(opts, dict) else {}, outputs, raw)
    return None


def with_postprocess_options(model_bytes: bytes, **changes: int | float) -> bytes:
    """The model with options of its TFLite_Detection_PostProcess op changed (max_detections, …).
    The op sizes its outputs from these options when the tensors are allocated.

    The options are a FlexBuffers map stored once in the flatbuffer; re-encoded, they must keep
    their length (all values share the map's width: an int up to 2³¹ or a float32 fits), so the
    new bytes replace the old ones in place and no offset of the model moves."""
    from flatbuffers import flexbuffers

    post = find_postprocess(model_bytes)
    if post is None:
        raise ModelError("no TFLite_Detection_PostProcess op to set options on")
    if not post.raw_options:  # no options at all: the op could not run either
        raise ModelError("the TFLite_Detection_PostProcess op has no options")
    old, options = post.raw_options, dict(post.options)
    missing = sorted(set(changes) - set(options))
    if missing:
        raise ModelError(f"the TFLite_Detection_PostProcess options lack {', '.join(missing)}")
    for name, value in changes.items():
        # A float32 as the model stores it: a double would widen every value of the map.
        options[name] = value if isinstance(value, int) else float(np.float32(value))
    new = flexbuffers.Dumps(options)
    start = model_bytes.find(old)
    if len(new) != len(old) or start < 0 or model_bytes.find(old, start + 1) >= 0:
        raise ModelError(f"cannot rewrite the TFLite_Detection_PostProcess options in place ({changes})")
    return model_bytes[:start] + bytes(new) + model_bytes[start + len(old) :]


def keep_classes(model_bytes: bytes, classes: Sequence[int]) -> bytes:
    """The model scoring only `classes` (ids of its label file, from 0): the post-process's class
    i is then classes[i].

    The SSD class head is, per feature map, a 1×1 convolution whose output channels are
    anchor-major (anchor a, class c → channel a·C + c, C counting the background), reshaped to
    [1, boxes, C] and concatenated over the maps; an element-wise activation may follow. Every
    channel is computed from its own weights and bias and the tensors are quantised per tensor or
    per output channel, so a kept channel's value is bit-for-bit the same. A model whose class
    head is not built this way is refused (ModelError), never cut wrongly."""
    if not classes or len(set(classes)) != len(classes):
        raise ModelError("the classes to keep must be distinct and at least one")
    try:
        return _keep_classes(model_bytes, classes)
    except ModelError:
        raise
    except Exception as exc:  # a flatbuffer of another layout raises anything from None fields
        raise ModelError(f"cannot read the model's class head ({exc.__class__.__name__})") from None


class _Graph:
    """The model's one subgraph as objects, with who writes and who reads each tensor."""

    def __init__(self, model: Any) -> None:
        from ai_edge_litert import schema_py_generated as schema

        if len(model.subgraphs) != 1:
            raise ModelError("the model has more than one subgraph")
        self.model = model
        self.graph = model.subgraphs[0]
        self._builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        ops = self.graph.operators
        self.producer = {int(t): op for op in ops for t in (op.outputs if op.outputs is not None else [])}
        self.readers: dict[int, int] = {}
        for op in ops:
            for t in op.inputs if op.inputs is not None else []:
                self.readers[int(t)] = self.readers.get(int(t), 0) + 1

    def kind(self, op: Any) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        if code.customCode:
            return str(code.customCode.decode(errors="replace"))
        return str(self._builtin.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"))

    def tensor(self, index: int) -> Any:
        return self.graph.tensors[index]

    def own_constant(self, index: int, refusal: str) -> Any:
        """The buffer of a constant tensor only this op reads (else its edit would reach others)."""
        buffer = self.model.buffers[self.tensor(index).buffer]
        if buffer.data is None or self.readers.get(index, 0) != 1:
            raise ModelError(refusal)
        return buffer


def _keep_classes(model_bytes: bytes, classes: Sequence[int]) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    g = _Graph(schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0)))
    post = next((op for op in g.graph.operators if g.kind(op) == POSTPROCESS.decode()), None)
    if post is None or post.customOptions is None:
        raise ModelError("no TFLite_Detection_PostProcess op with options")
    options = flexbuffers.Loads(bytes(post.customOptions))
    num_classes = options.get("num_classes") if isinstance(options, dict) else None
    scores = int(post.inputs[1])
    width = int(g.tensor(scores).shape[-1])
    if not isinstance(num_classes, int) or width - num_classes not in (0, 1):
        raise ModelError("the post-process's class count does not match its scores")
    if not all(0 <= c < num_classes for c in classes):
        raise ModelError(f"a class to keep is outside the model's {num_classes}")
    background = width - num_classes  # a first channel for "nothing", which the op skips
    channels = list(range(background)) + [c + background for c in classes]

    # Back from the post-process: element-wise ops, then the concatenation of reshapes (or one).
    chain, tensor = [scores], scores
    while tensor in g.producer and g.kind(g.producer[tensor]) in _ELEMENTWISE:
        tensor = int(g.producer[tensor].inputs[0])
        chain.append(tensor)
    op = g.producer.get(tensor)
    reshapes = [op] if op is not None and g.kind(op) == "RESHAPE" else []
    if op is not None and g.kind(op) == "CONCATENATION":
        # Along the boxes, never the classes: a cut of a concatenated class axis would mix maps.
        if int(op.builtinOptions.axis) in (-1, len(g.tensor(tensor).shape) - 1):
            raise ModelError("the class head concatenates along the classes")
        reshapes = [g.producer.get(int(t)) for t in op.inputs]
    if not reshapes or any(r is None or g.kind(r) != "RESHAPE" for r in reshapes):
        raise ModelError("the class head is not a concatenation of reshaped convolutions")
    heads = [int(r.outputs[0]) for r in reshapes]
    if any(g.readers.get(t, 0) != 1 for t in chain + heads):
        raise ModelError("the class scores are read by more than the post-process")
    if any(int(g.tensor(t).shape[-1]) != width for t in heads):
        raise ModelError("a class head's reshape does not end in the classes")
    for t in chain:
        _set_last_dim(g.tensor(t), len(channels))
    for reshape in reshapes:
        _cut_head(g, reshape, width, channels)
    options["num_classes"] = len(classes)
    post.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(g.model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _cut_head(g: _Graph, reshape: Any, width: int, channels: list[int]) -> None:
    """One feature map's class convolution and its reshape, cut to the kept channels."""
    conv = g.producer.get(int(reshape.inputs[0]))
    if conv is None or g.kind(conv) != "CONV_2D" or len(conv.inputs) < 3:
        raise ModelError("a class head's reshape is not fed by a convolution with a bias")
    out = g.tensor(int(conv.outputs[0]))
    if g.readers.get(int(conv.outputs[0]), 0) != 1 or int(out.shape[-1]) % width:
        raise ModelError("a class convolution's channels are not whole anchors of the classes")
    anchors = int(out.shape[-1]) // width
    keep = np.array([a * width + c for a in range(anchors) for c in channels])
    for index in (int(conv.inputs[1]), int(conv.inputs[2])):  # weights (OHWI), bias
        tensor = g.tensor(index)
        buffer = g.own_constant(index, "a class convolution's weights are not its own constants")
        values = np.frombuffer(bytes(buffer.data), _numpy_type(tensor.type))
        values = values.reshape(tuple(int(d) for d in tensor.shape))
        buffer.data = np.frombuffer(np.ascontiguousarray(values.take(keep, axis=0)).tobytes(), np.uint8)
        shape = np.array(tensor.shape, dtype=np.int32)
        shape[0] = len(keep)
        tensor.shape = shape
        _cut_quantization(tensor.quantization, keep)
    _set_last_dim(out, len(keep))
    _cut_quantization(out.quantization, keep)
    _set_last_dim(g.tensor(int(reshape.outputs[0])), len(channels))
    new_shape = getattr(reshape.builtinOptions, "newShape", None)
    if new_shape is not None and len(new_shape):
        new_shape = np.array(new_shape, dtype=np.int32)
        new_shape[-1] = len(channels)
        reshape.builtinOptions.newShape = new_shape
    if len(reshape.inputs) > 1:  # the shape as a constant input tensor
        refusal = "a class head's reshape takes its shape from a computed tensor"
        buffer = g.own_constant(int(reshape.inputs[1]), refusal)
        values = np.frombuffer(bytes(buffer.data), np.int32).copy()
        values[-1] = len(channels)
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)


def _set_last_dim(tensor: Any, size: int) -> None:
    for field in ("shape", "shapeSignature"):
        dims = getattr(tensor, field, None)
        if dims is not None and len(dims):
            dims = np.array(dims, dtype=np.int32)
            dims[-1] = size
            setattr(tensor, field, dims)


def _cut_quantization(quantization: Any, keep: np.ndarray) -> None:
    """Per-channel scales and zero points follow their channels; per-tensor ones stay."""
    if quantization is None:
        return
    scales = getattr(quantization, "scale", None)
    if scales is not None and len(scales) > 1 and getattr(quantization, "quantizedDimension", 0) != 0:
        raise ModelError("a class convolution is quantised along an axis other than its channels")
    for field in ("scale", "zeroPoint"):
        values = getattr(quantization, field, None)
        if values is not None and len(values) > 1:
            setattr(quantization, field, np.asarray(values)[keep])


def _numpy_type(tensor_type: int) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    t = schema.TensorType
    known = {t.UINT8: np.uint8, t.INT8: np.int8, t.INT16: np.int16, t.INT32: np.int32, t.FLOAT32: np.float32}
    if tensor_type not in known:
        raise ModelError("a class convolution's weights are of a type this edit does not know")
    return known[tensor_type]
