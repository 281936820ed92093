"""Pixel-wise cross-entropy baseline with the consensus loss's call interface."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from train.losses.blobs import class_map_from_blobs, class_map_from_label_map


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor | np.ndarray,
    blob_class: torch.Tensor | None = None,
    ignore_index: int = -1,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean pixel-wise cross-entropy against the classes implied by the target.

    Args:
        logits: N x C x H x W raw scores.
        target: Store label map (class = ``min(id, 2)``, negative = ignored), or
            per-image blob ids when ``blob_class`` is given.
        blob_class: Optional N x B or B class table for blob-id targets.
        ignore_index: Class value excluded from the mean; ignored pixels are
            mapped to it, so it must not be a real class.
        weight: Optional per-class weights (C,), as in ``F.cross_entropy``.

    Returns:
        Scalar loss, the mean over non-ignored pixels.
    """
    if blob_class is None:
        classes = class_map_from_label_map(target, ignore_index=ignore_index)
    else:
        classes = class_map_from_blobs(torch.as_tensor(target), blob_class, ignore_index=ignore_index)
    return F.cross_entropy(logits, classes.to(logits.device), weight=weight, ignore_index=ignore_index)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy_loss`; call as ``loss(logits, label_map)``.

    Args:
        ignore_index: Class value excluded from the mean.
        weight: Optional per-class weights (C,), stored as a buffer so it follows ``.to()``.
    """

    def __init__(self, ignore_index: int = -1, weight: torch.Tensor | None = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, blob_class: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Computes the loss (see :func:`cross_entropy_loss`)."""
        return cross_entropy_loss(logits, target, blob_class, self.ignore_index, self.weight)
