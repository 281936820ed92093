"""labelgen.teachers.quantize: an int8 copy of an ONNX teacher that labelgen runs like the original."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from labelgen.teachers.quantize import first_and_last_convs, quantize_teacher


@pytest.fixture(scope="module")
def float_teacher(tmp_path_factory):
    """A small FaceOccNet (width 0.25, seeded) exported as labelgen's teachers are."""
    import torch

    from train.evaluation.export import export_onnx
    from train.models import create_model

    torch.manual_seed(0)
    model = create_model("faceoccnet", num_classes=3, width=0.25).eval()
    return export_onnx(model, tmp_path_factory.mktemp("teacher") / "teacher.onnx")


def crops(count: int, seed: int) -> list[np.ndarray]:
    """Smooth random colour images at 160 px (not the model's side: the quantiser resizes them)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 10, 10, 3), dtype=np.uint8)
    return [np.asarray(np.kron(image, np.ones((16, 16, 1))), np.uint8) for image in small]


def conv_weights_are_quantized(path) -> list[bool]:
    """For each Conv node in order: is its weight the output of a DequantizeLinear node?"""
    graph = onnx.load(str(path)).graph
    dequantized = {output for node in graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    return [node.input[1] in dequantized for node in graph.node if node.op_type == "Conv"]


def test_the_int8_copy_runs_as_a_teacher_and_stays_close_to_the_float_one(float_teacher, tmp_path):
    import onnxruntime

    from labelgen.stages.teacher import ModelTeacher, to_network_input

    out = quantize_teacher(float_teacher, tmp_path / "int8.onnx", crops(16, 0))
    assert all(conv_weights_are_quantized(out)) and out.stat().st_size < 0.5 * float_teacher.stat().st_size
    x = np.concatenate([to_network_input(crop, 128) for crop in crops(4, 1)])
    run = {path: onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
           for path in (float_teacher, out)}
    reference, quantized = (run[p].run(None, {"image": x})[0] for p in (float_teacher, out))
    # int8 activations and weights: a few per cent of the logits' range, far from 0 (not float) and from 1 (broken).
    error = np.abs(quantized - reference).max() / np.abs(reference).max()
    assert 0 < error < 0.2, error
    teacher = ModelTeacher(out)
    assert teacher(crops(1, 2)[0], np.ones((160, 160), bool)).shape == (160, 160)


def test_keep_ends_float_leaves_the_first_and_last_convolution_in_float(float_teacher, tmp_path):
    out = quantize_teacher(float_teacher, tmp_path / "int8_ends.onnx", crops(16, 0), keep_ends_float=True)
    quantized = conv_weights_are_quantized(out)
    assert not quantized[0] and not quantized[-1] and all(quantized[1:-1])
    assert len(first_and_last_convs(float_teacher)) == 2


def test_bad_calls_are_refused_before_any_work(float_teacher, tmp_path):
    with pytest.raises(ValueError, match="unknown calibration method 'median'"):
        quantize_teacher(float_teacher, tmp_path / "x.onnx", crops(2, 0), "median")
    with pytest.raises(ValueError, match="no calibration crop"):
        quantize_teacher(float_teacher, tmp_path / "x.onnx", [])


def quantized_weight_ranges(path) -> list[tuple[int, int]]:
    """(min, max) of every int8 weight initialiser that feeds a DequantizeLinear node."""
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    initialisers = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    fed = {node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    return [(int(array.min()), int(array.max())) for name, array in initialisers.items()
            if name in fed and array.dtype == np.int8]


@pytest.mark.parametrize("reduce_range, low, high", [(False, -127, 127), (True, -64, 64)])
def test_reduce_range_keeps_weights_in_seven_bits(float_teacher, tmp_path, reduce_range, low, high):
    """Weights within +-64 are what no x86 int8 kernel can saturate (255 x 64 x 2 < 2**15); full range
    uses the 8th bit somewhere."""
    out = quantize_teacher(float_teacher, tmp_path / "int8.onnx", crops(16, 0), reduce_range=reduce_range)
    ranges = quantized_weight_ranges(out)
    assert ranges and all(low <= lo and hi <= high for lo, hi in ranges)
    widest = max(max(-lo, hi) for lo, hi in ranges)
    assert widest > 64 if not reduce_range else widest == 64
