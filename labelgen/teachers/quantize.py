"""An int8 copy of a teacher's ONNX file: static QDQ quantisation calibrated on face crops.

On one CPU thread onnxruntime runs int8 convolutions about twice as fast as
float32 (``benchmarks/teacher_cost.py`` measures it). Static quantisation
fixes each activation's range once, from calibration crops, so the crops must
look like what the teacher labels: aligned face crops with occluders, never
the faces it is evaluated on (the recipe uses synthetic **train** faces).

Weights are quantised per output channel (``QInt8``), activations per tensor
(``QUInt8``), in QDQ form (QuantizeLinear / DequantizeLinear pairs around
each op, which onnxruntime fuses into int8 kernels). The first and last
convolutions see the raw image and make the logits, where int8 rounding costs
the most; ``keep_ends_float`` leaves them in float32.

Example (needs a model; see tests/labelgen/test_teacher_quantize.py)::

    crops = [crop for crop in face_crops]                      # uint8 RGB H x W x 3
    quantize_teacher("teacher.onnx", "teacher-int8.onnx", crops, method="percentile", keep_ends_float=True)
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from labelgen.stages.teacher import to_network_input

METHODS = ("minmax", "percentile", "entropy")
# Calibration crops whose every activation is held in memory at once (about 60 MB each for FaceOccNet width 0.5
# at 128 px); ranges and histograms are merged over the chunks. Crops beyond a whole number of chunks are unused.
CALIBRATION_CHUNK = 32


def parse_int8(text: str) -> tuple[str, int, bool, bool]:
    """An int8 recipe ``METHOD:FACES[:ends][:r7]`` as ``(method, faces, keep_ends_float, reduce_range)``.

    Example:
        >>> parse_int8("entropy:64:r7")
        ('entropy', 64, False, True)

    Raises:
        ValueError: not of that form, or an unknown method.
    """
    parts = text.split(":")
    flags = parts[2:]
    if (len(parts) < 2 or parts[0] not in METHODS or not parts[1].isdigit() or int(parts[1]) < 1
            or not set(flags) <= {"ends", "r7"} or len(set(flags)) < len(flags)):
        raise ValueError(f"an int8 recipe is METHOD:FACES[:ends][:r7] with METHOD one of {', '.join(METHODS)} "
                         f"(e.g. entropy:64:r7), not {text!r}")
    return parts[0], int(parts[1]), "ends" in flags, "r7" in flags


def calibration_crops(count: int, side: int = 128, root: str | Path | None = None) -> list[np.ndarray]:
    """The first ``count`` synthetic occluded LFW Part Labels **train** faces (training occluder families),
    as ``side`` px crops: what a teacher labels, and never a face it is evaluated on."""
    from labelgen.eval.synth import synthetic_split, to_store_size

    return [to_store_size(image, label, side)[0] for _, image, label in synthetic_split("train", limit=count,
                                                                                          root=root)]


def declared_input(model: str | Path) -> tuple[str, int]:
    """The ONNX file's input name and its square side (128 when the side is not fixed)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    declared = graph.input[0]
    side = declared.type.tensor_type.shape.dim[-1]
    return declared.name, side.dim_value if side.HasField("dim_value") else 128


def first_and_last_convs(model: str | Path) -> list[str]:
    """Names of the first and the last ``Conv`` node of an ONNX graph (in its topological order).

    Raises:
        ValueError: the graph has no ``Conv`` node.
    """
    import onnx

    convs = [node.name for node in onnx.load(str(model)).graph.node if node.op_type == "Conv"]
    if not convs:
        raise ValueError(f"{model} has no Conv node")
    return list(dict.fromkeys([convs[0], convs[-1]]))


def quantize_teacher(model: str | Path, out: str | Path, crops: Iterable[np.ndarray], method: str = "minmax",
                     keep_ends_float: bool = False, reduce_range: bool = False) -> Path:
    """Write a static int8 (QDQ, per-channel weights) copy of an ONNX teacher, calibrated on ``crops``.

    Args:
        model: The float32 ONNX file (input ``N x 3 x S x S`` in ``[-1, 1]``, the teacher convention).
        out: The int8 file to write.
        crops: Calibration face crops, ``uint8`` RGB ``H x W x 3`` (resized to the model's side by area,
            as the chain does); a multiple of :data:`CALIBRATION_CHUNK` of them is used.
        method: How each activation's range is chosen from the calibration outputs: ``minmax`` (the
            extremes), ``percentile`` (99.999th percentile of the magnitudes) or ``entropy`` (the range
            that keeps the histogram's information).
        keep_ends_float: Leave the first and the last convolution in float32 (:func:`first_and_last_convs`
            of the graph as prepared for quantisation).
        reduce_range: Quantise the weights to 7 bits (-64..64). x86 CPUs without VNNI (AVX2, AVX-512 before
            Cascade Lake) multiply uint8 activations by int8 weights in pairs summed into int16, which
            saturates when both are near their ends (255 x 127 x 2 > 32767); with 7-bit weights the sum
            stays below (255 x 64 x 2 = 32640), so the file gives the same labels on every x86 CPU.

    Returns:
        ``out``.

    Raises:
        ValueError: an unknown ``method``, or no calibration crop.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    name, side = declared_input(model)
    inputs = [to_network_input(crop, side) for crop in crops]
    if not inputs:
        raise ValueError("no calibration crop")
    chunk = min(CALIBRATION_CHUNK, len(inputs))
    inputs = inputs[:len(inputs) - len(inputs) % chunk]  # onnxruntime wants whole chunks

    class Crops(CalibrationDataReader):
        """The calibration inputs, handed out one chunk (``set_range``) at a time."""

        def __init__(self):
            self.set_range(0, len(inputs))

        def __len__(self):
            return len(inputs)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.items = iter(inputs[start_index:end_index])

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {name: item}

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quantize-") as scratch:
        # Shape inference and graph clean-up first, as onnxruntime recommends for static quantisation.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        exclude = first_and_last_convs(prepared) if keep_ends_float else []
        quantize_static(str(prepared), str(out), Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], nodes_to_exclude=exclude, reduce_range=reduce_range,
                        extra_options={"CalibStridedMinMax": chunk})
    return out
