"""Tests for train.evaluation.export: TorchScript and ONNX copies match PyTorch and work as labelgen teachers."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from labelgen.stages.teacher import ModelTeacher, to_network_input
from labelgen.teachers import load_teacher
from train.evaluation.export import ChannelAffine, export_model, unfuse_batchnorm, verify_exports
from train.models import create_model


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = create_model("faceoccnet", num_classes=3, width=0.125)
    # Trained-looking BatchNorm statistics, so a wrongly folded BatchNorm would show.
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.3)
            module.running_var.uniform_(0.3, 3.0)
            module.bias.data.normal_(0, 0.3)
    return net.eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export_model(model, tmp_path_factory.mktemp("export"), name="teacher")


def test_exports_match_pytorch_within_tolerance(exported):
    diffs = exported["max_diff"]
    assert set(diffs) == {"torchscript (batch 1)", "torchscript (batch 2)", "onnxruntime (batch 1)",
                          "onnxruntime (batch 2)", "cv2.dnn (batch 1)"}
    assert all(value <= 1e-4 for value in diffs.values()), diffs


def test_verification_detects_a_different_model(model, exported):
    other = create_model("faceoccnet", num_classes=3, width=0.125).eval()
    diffs = verify_exports(other, exported["torchscript"], exported["onnx"], size=128)
    assert min(diffs.values()) > 1e-3


def test_channel_affine_equals_batchnorm(model):
    x = torch.randn(2, 3, 32, 32)
    unfused = unfuse_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in unfused.modules())
    assert any(isinstance(m, ChannelAffine) for m in unfused.modules())
    with torch.no_grad():
        expected = model(x)
        # float32 sums in another order (fused vs unfused batch norm, and each CPU's SIMD path):
        # equal up to rounding relative to the outputs' scale, not to an absolute 1e-5.
        assert torch.allclose(unfused(x), expected, rtol=0, atol=1e-5 * max(1.0, expected.abs().max().item()))


@pytest.mark.parametrize("suffix", ["pt", "onnx"])
def test_exported_file_works_as_a_labelgen_teacher(model, exported, suffix):
    path = exported["torchscript" if suffix == "pt" else "onnx"]
    teacher = load_teacher(str(path))
    assert isinstance(teacher, ModelTeacher)
    crop = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    hull = np.zeros((256, 256), bool)
    hull[32:224, 48:208] = True
    visible = teacher(crop, hull)
    with torch.no_grad():
        face = model(torch.from_numpy(to_network_input(crop, 128)))[0].argmax(0) == 1
    expected = np.kron(face.numpy(), np.ones((2, 2), bool)) & hull  # nearest 128 -> 256
    assert visible.shape == hull.shape and visible.dtype == bool
    assert 0 < visible.sum() < hull.sum()
    assert (visible == expected).mean() > 0.999
