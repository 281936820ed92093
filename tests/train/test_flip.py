"""Tests for train.models.flip: flip test-time averaging, in PyTorch, the exports and the CLIs."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from train.evaluation.export import export_model
from train.evaluation.inference import Segmenter
from train.models import FlipAveraged, create_model, flip_averaged_logits

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class LeftHeavy(nn.Module):
    """Logits that depend on the column: channel 0 is x-position times the image (not mirror-symmetric)."""

    def forward(self, x):
        ramp = torch.linspace(0, 1, x.shape[-1])
        return torch.stack([x[:, 0] * ramp, x[:, 1]], dim=1)


def test_flip_average_equals_the_hand_computed_mean():
    x = torch.rand(2, 3, 4, 6)
    net = LeftHeavy()
    ramp = torch.linspace(0, 1, 6)
    expected_channel0 = (x[:, 0] * ramp + (x[:, 0].flip(-1) * ramp).flip(-1)) / 2
    out = flip_averaged_logits(net, x)
    assert torch.allclose(out[:, 0], expected_channel0)
    assert torch.allclose(out[:, 1], x[:, 1])  # a mirror-equivariant channel is unchanged
    assert not torch.allclose(net(x)[:, 0], out[:, 0])


def test_wrapped_model_is_mirror_equivariant():
    torch.manual_seed(0)
    net = create_model("faceoccnet", num_classes=3, width=0.125).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        plain, averaged = net(x), FlipAveraged(net)(x)
        assert not torch.allclose(plain, net(x.flip(-1)).flip(-1), atol=1e-4)  # the network alone is not
        assert torch.allclose(averaged, FlipAveraged(net)(x.flip(-1)).flip(-1), atol=1e-5)


@pytest.mark.parametrize("suffix", ["pt", "onnx"])
def test_exported_flip_average_equals_segmenter_flip_average(tmp_path, suffix):
    torch.manual_seed(1)
    net = create_model("faceoccnet", num_classes=3, width=0.125).eval()
    plain = export_model(net, tmp_path, name="plain", size=64)
    averaged = export_model(FlipAveraged(net), tmp_path, name="flip", size=64)
    assert all(diff <= 1e-4 for diff in averaged["max_diff"].values()), averaged["max_diff"]
    kind = "torchscript" if suffix == "pt" else "onnx"
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8))
    built_in = Segmenter(averaged[kind]).logits(images)
    at_inference = Segmenter(plain[kind], flip_average=True).logits(images)
    assert torch.allclose(built_in, at_inference, atol=1e-4)
    assert not torch.allclose(built_in, Segmenter(plain[kind]).logits(images), atol=1e-3)
