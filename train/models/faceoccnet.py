"""FaceOccNet: the encoder / dilated-context / pixel-shuffle decoder of Masi et al.

Layout at a 128x128 input and ``width=1`` (C x H x W after each stage):

    encoder   3 -> 64 (no BN) -> 128 /2 -> 128 -> 128 -> 256 /2      256x32x32
    context   256 -> 256 (dilation 4) -> 256 (dilation 3)           256x32x32
    concat    encoder || context, Dropout2d(0.2)                     512x32x32
    decoder   512 -> 512, PixelShuffle(2)                            128x64x64
              128 -> 128 -> 128, PixelShuffle(2)                     32x128x128
              32 -> 32 -> 32 (no BN)
    classify  plain 3x3 conv 32 -> K                                 Kx128x128

Every block is ReflectionPad2d(dilation) + 3x3 conv (with bias) -> ELU -> BatchNorm2d.
With K=3 this is 4,524,323 parameters: 4,518,432 conv weights + 2,048 conv biases
of the 12 blocks + 3,840 BatchNorm affine parameters + 3 classifier biases.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from train.models.registry import register_model

# Dropout2d probability on the concatenated encoder and context features (svc-train --dropout).
DEFAULT_DROPOUT = 0.2


def faceoccnet_channels(width: float = 1.0) -> dict[str, int]:
    """Channel counts of every FaceOccNet stage for a width multiplier.

    All counts are multiples of one unit ``u = round(32 * width)`` (the channel
    count of the last decoder stage), so the pixel-shuffle relation "conv output
    = 4 x next stage channels" holds exactly for any width instead of breaking on
    independent rounding. ``width=1`` gives the published 64/128/256/32.

    Args:
        width: Channel multiplier, > 0.

    Returns:
        Dict with keys ``c64``, ``c128``, ``c256`` (encoder/context stages),
        ``dec1`` (channels after the first PixelShuffle) and ``dec2`` (after the
        second PixelShuffle).

    Raises:
        ValueError: If ``width`` is not positive.
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    unit = max(1, int(round(32 * width)))
    return {"c64": 2 * unit, "c128": 4 * unit, "c256": 8 * unit, "dec1": 4 * unit, "dec2": unit}


class ConvBlock(nn.Sequential):
    """ReflectionPad2d(dilation) + 3x3 conv -> ELU -> optional BatchNorm2d.

    Reflection padding by ``dilation`` keeps the spatial size (up to the stride)
    without the dark border zero padding puts around a face crop.

    Args:
        in_ch: Input channels.
        out_ch: Output channels.
        stride: Convolution stride.
        dilation: Convolution dilation (also the padding).
        bn: Append BatchNorm2d after the activation (the published order).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1, bn: bool = True):
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(dilation),
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, dilation=dilation, bias=True),
            nn.ELU(inplace=True),
        ]
        if bn:
            layers.append(nn.BatchNorm2d(out_ch))
        super().__init__(*layers)


class FaceOccNet(nn.Module):
    """Encoder-decoder face segmenter returning per-pixel logits.

    Input is RGB scaled to [-1, 1] (see :func:`normalize_image`), N x 3 x H x W with
    H and W divisible by 4; output is N x K x H x W logits (no softmax).

    Args:
        num_classes: Number of output classes K.
        width: Channel multiplier (see :func:`faceoccnet_channels`); e.g. 0.25 for a
            slim variant that trains quickly on CPU.
        in_channels: Input channels.
        dropout: Dropout2d probability applied to the concatenated features; 0 turns it off.
    """

    def __init__(self, num_classes: int = 3, width: float = 1.0, in_channels: int = 3,
                 dropout: float = DEFAULT_DROPOUT):
        super().__init__()
        ch = faceoccnet_channels(width)
        c64, c128, c256, d1, d2 = ch["c64"], ch["c128"], ch["c256"], ch["dec1"], ch["dec2"]
        self.num_classes = num_classes
        self.width = width
        self.encoder = nn.Sequential(
            ConvBlock(in_channels, c64, bn=False),
            ConvBlock(c64, c128, stride=2),
            ConvBlock(c128, c128),
            ConvBlock(c128, c128),
            ConvBlock(c128, c256, stride=2),
        )
        # Dilations 4 then 3 widen the receptive field at 1/4 resolution so the
        # decoder sees whole-face context, which occlusion reasoning needs.
        self.context = nn.Sequential(
            ConvBlock(c256, c256, dilation=4),
            ConvBlock(c256, c256, dilation=3),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.decoder = nn.Sequential(
            ConvBlock(2 * c256, 4 * d1),
            nn.PixelShuffle(2),
            ConvBlock(d1, d1),
            ConvBlock(d1, 4 * d2),
            nn.PixelShuffle(2),
            ConvBlock(d2, d2, bn=False),
            ConvBlock(d2, d2, bn=False),
        )
        self.classifier = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(d2, num_classes, 3, bias=True))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal (gain sqrt 2, for the ELUs) convs with zero bias; BN weight ~ N(1, 0.02)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight, gain=math.sqrt(2.0))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, mean=1.0, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Computes logits.

        Args:
            x: N x 3 x H x W float tensor in [-1, 1]; H, W divisible by 4.

        Returns:
            N x K x H x W logits.
        """
        feat = self.encoder(x)
        feat = torch.cat([feat, self.context(feat)], dim=1)
        return self.classifier(self.decoder(self.dropout(feat)))


@register_model("faceoccnet")
def faceoccnet(num_classes: int = 3, width: float = 1.0, **kw) -> FaceOccNet:
    """Registry constructor for :class:`FaceOccNet`."""
    return FaceOccNet(num_classes=num_classes, width=width, **kw)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """One ``H x W x 3`` RGB array (any strides, e.g. a flipped view) as a contiguous ``3 x H x W`` tensor.

    The dtype is kept: the data sets hand out uint8 images, which
    :func:`normalize_image` turns into network input.

    Example:
        >>> image_to_tensor(np.zeros((4, 5, 3), np.uint8)[:, ::-1]).shape
        torch.Size([3, 4, 5])
    """
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def normalize_image(images: torch.Tensor | np.ndarray, layout: str | None = None) -> torch.Tensor:
    """Converts 0..255 RGB images to the network's float input in [-1, 1].

    Args:
        images: uint8 (or any numeric dtype on the 0..255 scale) tensor or array,
            N x 3 x H x W, N x H x W x 3, or one unbatched image (3-D).
        layout: ``"NCHW"`` or ``"NHWC"``; ``None`` infers it from which axis has
            size 3 (channel axis 1 wins when both do).

    Returns:
        float32 N x 3 x H x W tensor, ``x / 127.5 - 1``, on the input's device.

    Raises:
        ValueError: On an unsupported rank or when the layout cannot be inferred.
    """
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"expected a 3-D or 4-D image tensor, got shape {tuple(x.shape)}")
    if layout is None:
        if x.shape[1] == 3:
            layout = "NCHW"
        elif x.shape[-1] == 3:
            layout = "NHWC"
        else:
            raise ValueError(f"cannot infer the channel axis of shape {tuple(x.shape)}; pass layout=")
    layout = layout.upper()
    if layout == "NHWC":
        x = x.permute(0, 3, 1, 2)
    elif layout != "NCHW":
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    return x.to(torch.float32).div(127.5).sub(1.0).contiguous()
