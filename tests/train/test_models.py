"""Tests for train.models: FaceOccNet shape, size, init and the registry."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from train.models import FaceOccNet, create_model, faceoccnet_channels, list_models, normalize_image, register_model
from train.models import registry


def _expected_params(width: float, k: int) -> int:
    """Parameter count worked out by hand from the architecture description."""
    ch = faceoccnet_channels(width)
    c64, c128, c256, d1, d2 = ch["c64"], ch["c128"], ch["c256"], ch["dec1"], ch["dec2"]
    # (in, out, has_bn) of every conv block; every block conv has a bias.
    blocks = [
        (3, c64, False), (c64, c128, True), (c128, c128, True), (c128, c128, True), (c128, c256, True),
        (c256, c256, True), (c256, c256, True),
        (2 * c256, 4 * d1, True), (d1, d1, True), (d1, 4 * d2, True), (d2, d2, False), (d2, d2, False),
    ]
    total = sum(9 * i * o + o + (2 * o if bn else 0) for i, o, bn in blocks)
    return total + 9 * d2 * k + k


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_published_parameter_count():
    assert _expected_params(1.0, 3) == 4_524_323
    assert _count(create_model("faceoccnet", num_classes=3, width=1.0)) == 4_524_323


@pytest.mark.parametrize("width,k", [(0.25, 3), (0.5, 5)])
def test_parameter_count_matches_arithmetic_for_other_widths(width, k):
    assert _count(create_model(num_classes=k, width=width)) == _expected_params(width, k)


@pytest.mark.parametrize("width", [1.0, 0.25])
def test_output_shape_128(width):
    torch.manual_seed(0)
    model = create_model(num_classes=3, width=width).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert out.shape == (2, 3, 128, 128)
    assert torch.isfinite(out).all()


def test_intermediate_shapes_at_128():
    model = create_model().eval()
    seen = {}
    model.encoder.register_forward_hook(lambda m, i, o: seen.__setitem__("enc", o.shape))
    model.dropout.register_forward_hook(lambda m, i, o: seen.__setitem__("cat", o.shape))
    model.decoder[1].register_forward_hook(lambda m, i, o: seen.__setitem__("ps1", o.shape))
    model.decoder[4].register_forward_hook(lambda m, i, o: seen.__setitem__("ps2", o.shape))
    with torch.no_grad():
        model(torch.zeros(1, 3, 128, 128))
    assert seen == {
        "enc": (1, 256, 32, 32),
        "cat": (1, 512, 32, 32),
        "ps1": (1, 128, 64, 64),
        "ps2": (1, 32, 128, 128),
    }


@pytest.mark.parametrize("width", [0.1, 0.3, 0.25, 0.5, 0.77])
def test_width_keeps_pixel_shuffle_valid(width):
    ch = faceoccnet_channels(width)
    assert ch["c128"] == ch["dec1"] and ch["dec1"] == 4 * ch["dec2"]
    assert abs(ch["c64"] - 64 * width) <= 2 and abs(ch["c256"] - 256 * width) <= 8
    with torch.no_grad():
        out = create_model(num_classes=4, width=width).eval()(torch.zeros(1, 3, 32, 48))
    assert out.shape == (1, 4, 32, 48)


def test_width_must_be_positive():
    with pytest.raises(ValueError):
        faceoccnet_channels(0.0)


def test_block_structure_and_bias():
    model = create_model()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == 13 and len(bns) == 9
    assert all(c.bias is not None for c in convs)
    assert [c.dilation[0] for c in model.context.modules() if isinstance(c, nn.Conv2d)] == [4, 3]
    assert isinstance(model.dropout, nn.Dropout2d) and model.dropout.p == 0.2
    first = model.encoder[0]
    assert isinstance(first[0], nn.ReflectionPad2d) and isinstance(first[2], nn.ELU) and len(first) == 3
    assert isinstance(model.encoder[1][3], nn.BatchNorm2d)  # conv -> ELU -> BN order


def test_initialisation_statistics():
    torch.manual_seed(0)
    model = create_model()
    conv = model.decoder[0][1]  # 512 -> 512, 2.4M weights: tight estimate of the std
    fan = 512 * 9
    expected_std = math.sqrt(2.0) * math.sqrt(2.0 / (fan + fan))
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert torch.count_nonzero(m.bias) == 0
    bn_w = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    bn_b = torch.cat([m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert bn_w.mean().item() == pytest.approx(1.0, abs=0.005)
    assert bn_w.std().item() == pytest.approx(0.02, rel=0.15)
    assert torch.count_nonzero(bn_b) == 0


def test_training_step_reaches_every_parameter():
    torch.manual_seed(0)
    model = create_model(width=0.25).train()
    out = model(torch.rand(2, 3, 32, 32) * 2 - 1)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_registry(monkeypatch):
    assert "faceoccnet" in list_models()
    assert isinstance(create_model("FaceOccNet", width=0.25), FaceOccNet)
    with pytest.raises(KeyError):
        create_model("nope")
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @register_model("tiny_test_net")
    def _tiny(num_classes=3, width=1.0, bias=True):
        return nn.Conv2d(3, num_classes, 1, bias=bias)

    assert "tiny_test_net" in list_models()
    net = create_model("tiny_test_net", num_classes=7, bias=False)
    assert net.out_channels == 7 and net.bias is None
    with pytest.raises(ValueError):
        register_model("tiny_test_net")(_tiny)


def test_normalize_image_layouts_and_range():
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    nhwc[0, 0, 0] = [0, 255, 0]
    a = normalize_image(torch.from_numpy(nhwc))
    b = normalize_image(torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    assert a.shape == (2, 3, 5, 6) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a[0, :, 0, 0].tolist() == [-1.0, 1.0, -1.0]
    assert a.min() >= -1 and a.max() <= 1
    assert torch.allclose(a, torch.from_numpy(nhwc).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert normalize_image(nhwc[0]).shape == (1, 3, 5, 6)
    with pytest.raises(ValueError):
        normalize_image(torch.zeros(2, 4, 5, 6, dtype=torch.uint8))
