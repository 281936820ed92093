"""Horizontal-flip test-time averaging: a function and a Module.

A face mirrored left-right is still a face with the same classes (background,
face, occlusion have no sides), so a segmenter's logits for an image and the
mirrored logits of its mirror image are two estimates of the same map; their
mean is a cheap ensemble. It costs a second forward pass. Do not use it for
parsers with sided classes (left eye / right eye).

Example:
    >>> import torch
    >>> from train.models import create_model
    >>> net = create_model("faceoccnet", num_classes=3, width=0.25).eval()
    >>> x = torch.rand(1, 3, 64, 64) * 2 - 1
    >>> averaged = FlipAveraged(net)
    >>> with torch.no_grad():
    ...     torch.allclose(averaged(x), averaged(x.flip(-1)).flip(-1), atol=1e-5)
    True
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn


def flip_averaged_logits(logits_of: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """Mean of ``logits_of(images)`` and the mirrored ``logits_of(mirrored images)``.

    Args:
        logits_of: N x C x H x W images -> N x K x H x W logits (any image dtype).
        images: The batch; the last axis is the image width.

    Returns:
        N x K x H x W logits, mirror-symmetric: the result for the mirrored batch is
        the mirrored result.
    """
    return (logits_of(images) + logits_of(images.flip(-1)).flip(-1)) / 2


class FlipAveraged(nn.Module):
    """Wraps a segmenter so that ``forward`` returns :func:`flip_averaged_logits`.

    ``svc-export --flip-average`` writes this wrapper, so every runtime that loads
    the file (labelgen teachers, ``svc-eval``, onnxruntime, ``cv2.dnn``) averages.

    Args:
        model: N x 3 x H x W -> N x K x H x W logits.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return flip_averaged_logits(self.model, images)
