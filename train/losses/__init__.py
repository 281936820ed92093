"""Losses: structure via consensus, a pixel-wise cross-entropy baseline, the
blob-weighted cross-entropy control (the paper's Eq. 5, ``"ce-blob"``), and the
distillation term that ``svc-train --distill`` adds to any of them.

Both modules share one call interface: ``loss(logits, label_map)`` for the
pseudo-label store, or ``loss(logits, blob_ids, blob_class)`` for explicit blobs.
"""

from __future__ import annotations

import torch.nn as nn

from train.losses.blobs import (
    BLOB_KINDS,
    blob_ids_from_label_map,
    blobs_from_class_map,
    blobs_from_class_maps,
    class_blobs_from_class_map,
    class_map_from_blobs,
    class_map_from_label_map,
)
from train.losses.ce import BlobCrossEntropyLoss, CrossEntropyLoss, blob_cross_entropy_loss, cross_entropy_loss
from train.losses.consensus import (
    ConsensusLoss,
    consensus_loss,
    consensus_loss_from_label_map,
    consensus_loss_reference,
)
from train.losses.distillation import distillation_loss

_LOSSES = {"consensus": ConsensusLoss, "ce": CrossEntropyLoss, "ce-blob": BlobCrossEntropyLoss}


def create_loss(name: str, **kw) -> nn.Module:
    """Builds a loss module by name.

    Args:
        name: ``"consensus"``, ``"ce"`` or ``"ce-blob"``.
        **kw: Constructor arguments (e.g. ``alpha``, ``beta``, ``mode`` for consensus).

    Returns:
        The loss module.

    Raises:
        KeyError: For an unknown name.
    """
    key = name.lower()
    if key not in _LOSSES:
        raise KeyError(f"unknown loss {name!r}; available: {', '.join(sorted(_LOSSES))}")
    return _LOSSES[key](**kw)


__all__ = [
    "BLOB_KINDS",
    "BlobCrossEntropyLoss",
    "ConsensusLoss",
    "CrossEntropyLoss",
    "blob_ids_from_label_map",
    "blobs_from_class_map",
    "blobs_from_class_maps",
    "blob_cross_entropy_loss",
    "class_blobs_from_class_map",
    "class_map_from_blobs",
    "class_map_from_label_map",
    "consensus_loss",
    "consensus_loss_from_label_map",
    "consensus_loss_reference",
    "create_loss",
    "cross_entropy_loss",
    "distillation_loss",
]
