"""Pixel-wise cross-entropy losses with the consensus loss's call interface.

* :func:`cross_entropy_loss`: the baseline, a mean over pixels, so a large blob
  (the background) outweighs a small one (an occluder).
* :func:`blob_cross_entropy_loss`: the paper's Eq. 5, the same per-pixel
  cross-entropy averaged within each blob and then over blobs, so every blob
  counts once whatever its size. It is the consensus loss without its consensus
  term and with per-pixel (not per-blob-mean) log-probabilities: the control that
  tells "weighting blobs equally" apart from "asking pixels to agree".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from train.losses.blobs import blob_ids_from_label_map, blob_statistics, class_map_from_blobs, class_map_from_label_map


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


def blob_cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor | np.ndarray,
    blob_class: torch.Tensor | None = None,
    ignore_index: int = -1,
) -> torch.Tensor:
    """Cross-entropy with every blob weighted equally (Masi et al., Eq. 5).

    For blobs b with pixels S_b and class c(b):
    ``mean_b (1/|S_b|) sum_{s in S_b} -log p_{c(b)}(s)``.

    Args:
        logits: N x C x H x W raw scores.
        target: Store label map (every id its own blob, class ``min(id, 2)``), or
            per-image blob ids when ``blob_class`` is given.
        blob_class: Optional N x B or B class table for blob-id targets.
        ignore_index: Extra blob id to ignore (negatives always are).

    Returns:
        Scalar loss; ``0 * logits.sum()`` (keeps the graph) when there is no blob.

    Example:
        >>> logits = torch.zeros(1, 3, 2, 2)  # uniform predictions: -log(1/3) everywhere
        >>> ids = torch.tensor([[[0, 0], [0, 1]]])  # a 3-pixel blob and a 1-pixel blob
        >>> round(blob_cross_entropy_loss(logits, ids, torch.tensor([0, 2])).item(), 4)
        1.0986
    """
    if blob_class is None:
        target, blob_class = blob_ids_from_label_map(target)
    stats = blob_statistics(logits, target, blob_class, ignore_index)
    if stats is None:
        return logits.sum() * 0.0
    per_blob = -stats["mean_log_p"].gather(1, stats["cls"].unsqueeze(1)).squeeze(1)
    return per_blob.mean().to(logits.dtype)


class BlobCrossEntropyLoss(nn.Module):
    """Module form of :func:`blob_cross_entropy_loss`; call as ``loss(logits, label_map)``.

    Args:
        ignore_index: Extra blob id to ignore.
    """

    def __init__(self, ignore_index: int = -1):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, blob_class: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Computes the loss (see :func:`blob_cross_entropy_loss`)."""
        return blob_cross_entropy_loss(logits, target, blob_class, self.ignore_index)
