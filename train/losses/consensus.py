"""Structure-via-consensus loss (Masi et al., CVPR 2020, Eq. 8).

For a blob b of class c(b) with pixels S_b, softmax p(s) at pixel s and the
blob's mean prediction m_b = (1/|S_b|) sum_{s in S_b} p(s):

    label(b)     = -log m_b[c(b)]
    consensus(b) = (1/|S_b|) sum_{s in S_b} KL(m_b || p(s))
                 = (1/|S_b|) sum_s sum_c m_b[c] (log m_b[c] - log p_c(s))
    loss         = alpha * mean_b label(b) + beta * mean_b consensus(b)

with both means over all blobs of the batch. The label term only asks the blob
*on average* to predict its class, which tolerates noisy pseudo-label edges; the
consensus term asks every pixel to agree with that average, which yields
connected, blob-shaped predictions.

Inputs use the blob format of :mod:`train.losses.blobs`: ``blob_ids`` N x H x W
per-image ids (negative or ``ignore_index`` = no blob) and ``blob_class`` N x B
or B (negative = drop the blob). For the pseudo-label store, whose label map is
already a blob id map, use :func:`consensus_loss_from_label_map`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from train.losses.blobs import (
    _as_long_maps,
    _expand_table,
    blob_ids_from_label_map,
    blob_statistics,
    blobs_from_class_map,
    blobs_from_class_maps,
    class_map_from_blobs,
)

__all__ = [
    "ConsensusLoss",
    "blob_ids_from_label_map",
    "blobs_from_class_map",
    "blobs_from_class_maps",
    "class_map_from_blobs",
    "consensus_loss",
    "consensus_loss_from_label_map",
    "consensus_loss_reference",
]

MODES = ("default", "official")


def consensus_loss(
    logits: torch.Tensor,
    blob_ids: torch.Tensor,
    blob_class: torch.Tensor,
    alpha: float = 10.0,
    beta: float = 5.0,
    ignore_index: int = -1,
    mode: str = "default",
) -> torch.Tensor:
    """Structure-via-consensus loss, vectorized over all blobs of the batch.

    Args:
        logits: N x C x H x W raw scores.
        blob_ids: N x H x W integer per-image blob ids in ``[0, B)``; pixels with a
            negative id or ``ignore_index`` are ignored. Ids may repeat across
            images: each (image, id) pair is its own blob.
        blob_class: N x B (per image, pad with -1) or B (shared) integer class of
            each blob id; blobs with a negative class are ignored.
        alpha: Weight of the label term.
        beta: Weight of the consensus term.
        ignore_index: Extra blob id to ignore (negatives always are).
        mode: ``"default"`` is the formula in the module docstring.
            ``"official"`` reproduces the reductions of the authors' released
            ``StructureConsensuLossFunction`` (reduce_pixel='idx'):

            1. Blobs are grouped by their *raw id over the batch* (the release
               loops over ``torch.unique`` of the whole batch's blob map), so id v
               in every image is one group and the final mean is over groups,
               not over (image, blob) pairs.
            2. The label term of group v is summed over the images holding v
               and divided by the batch size N (images without v count as 0).
            3. The consensus term of group v pools the KL sums of all its pixels
               across images and divides by C x (its pixel count), i.e. an
               extra 1/C compared with the default mean over pixels.
            4. The release takes ``log`` of the mean probability with no epsilon;
               here log m_b comes from a logsumexp, which is the same value
               without the underflow, so no epsilon is needed in either mode.

            Per-image blob means m_b are the same in both modes.

    Returns:
        Scalar loss; ``0 * logits.sum()`` (keeps the graph) when there is no blob.

    Raises:
        ValueError: On shape mismatches, ids outside the class table, classes >= C
            or an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    stats = blob_statistics(logits, blob_ids, blob_class, ignore_index)
    if stats is None:
        return logits.sum() * 0.0
    log_m = stats["log_m"]
    m = torch.exp(log_m)
    label = -log_m.gather(1, stats["cls"].unsqueeze(1)).squeeze(1)
    consensus = (m * (log_m - stats["mean_log_p"])).sum(dim=1)
    if mode == "default":
        loss = alpha * label.mean() + beta * consensus.mean()
    else:
        n, c = logits.shape[:2]
        groups, group_of_blob = torch.unique(stats["raw_id"], return_inverse=True)
        size = stats["size"].to(consensus.dtype)
        zeros = consensus.new_zeros(groups.numel())
        label_g = zeros.index_add(0, group_of_blob, label) / n
        kl_sum_g = zeros.index_add(0, group_of_blob, consensus * size)
        pixels_g = zeros.index_add(0, group_of_blob, size)
        loss = (alpha * label_g + beta * kl_sum_g / (c * pixels_g)).mean()
    return loss.to(logits.dtype)


def consensus_loss_from_label_map(
    logits: torch.Tensor,
    label_map: torch.Tensor | np.ndarray,
    alpha: float = 10.0,
    beta: float = 5.0,
    mode: str = "default",
) -> torch.Tensor:
    """:func:`consensus_loss` on a pseudo-label store label map (class = min(id, 2)).

    Args:
        logits: N x C x H x W raw scores, C >= 3.
        label_map: N x H x W (or N x 1 x H x W) store label map; negative = ignored.
        alpha: Weight of the label term.
        beta: Weight of the consensus term.
        mode: ``"default"`` or ``"official"`` (see :func:`consensus_loss`).

    Returns:
        Scalar loss.
    """
    blob_ids, blob_class = blob_ids_from_label_map(label_map)
    return consensus_loss(logits, blob_ids, blob_class, alpha=alpha, beta=beta, mode=mode)


def consensus_loss_reference(
    logits: torch.Tensor,
    blob_ids: torch.Tensor,
    blob_class: torch.Tensor,
    alpha: float = 10.0,
    beta: float = 5.0,
    ignore_index: int = -1,
    mode: str = "default",
) -> torch.Tensor:
    """Slow float64 per-blob loop computing :func:`consensus_loss`, for tests.

    Works in probability space (mean of softmax, then log), independently of the
    log-space vectorized path; differentiable. Same arguments as
    :func:`consensus_loss`.

    Returns:
        float64 scalar tensor.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    prob = torch.softmax(logits.double(), dim=1)
    n, c = prob.shape[:2]
    ids = _as_long_maps(blob_ids)
    table = _expand_table(blob_class, n)
    blobs = []  # (raw id, |S_b|, label term, KL summed over the blob's pixels)
    for i in range(n):
        for b in torch.unique(ids[i]).tolist():
            if b < 0 or b == ignore_index or int(table[i, b]) < 0:
                continue
            p = prob[i][:, ids[i] == b].T  # |S_b| x C
            m = p.mean(dim=0)
            label = -torch.log(m[int(table[i, b])])
            kl_sum = (m * (torch.log(m) - torch.log(p))).sum()
            blobs.append((b, p.shape[0], label, kl_sum))
    if not blobs:
        return prob.sum() * 0.0
    if mode == "default":
        label = sum(lb for _, _, lb, _ in blobs) / len(blobs)
        consensus = sum(kl / size for _, size, _, kl in blobs) / len(blobs)
        return alpha * label + beta * consensus
    total = 0.0
    groups = sorted({b for b, _, _, _ in blobs})
    for g in groups:
        members = [blob for blob in blobs if blob[0] == g]
        label = sum(lb for _, _, lb, _ in members) / n
        kl = sum(k for _, _, _, k in members) / (c * sum(size for _, size, _, _ in members))
        total = total + alpha * label + beta * kl
    return total / len(groups)


class ConsensusLoss(nn.Module):
    """Module form of the structure-via-consensus loss.

    Called as ``loss(logits, label_map)`` with a store label map, or as
    ``loss(logits, blob_ids, blob_class)`` with explicit blobs (e.g. from
    :func:`blobs_from_class_maps`).

    Args:
        alpha: Weight of the label term.
        beta: Weight of the consensus term.
        ignore_index: Extra blob id to ignore.
        mode: ``"default"`` or ``"official"`` (see :func:`consensus_loss`).
    """

    def __init__(self, alpha: float = 10.0, beta: float = 5.0, ignore_index: int = -1, mode: str = "default"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.alpha, self.beta, self.ignore_index, self.mode = alpha, beta, ignore_index, mode

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, blob_class: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Computes the loss.

        Args:
            logits: N x C x H x W raw scores.
            target: Store label map, or per-image blob ids when ``blob_class`` is given.
            blob_class: Optional N x B or B class table of ``target``'s ids.

        Returns:
            Scalar loss.
        """
        if blob_class is None:
            target, blob_class = blob_ids_from_label_map(target)
        return consensus_loss(logits, target, blob_class, self.alpha, self.beta, self.ignore_index, self.mode)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, mode={self.mode!r}"
