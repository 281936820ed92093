"""Segmentation metrics: one confusion matrix per dataset, and the sparsity error.

Per-image IoUs averaged over a dataset over-weight small or empty images, so
:class:`ConfusionMatrix` accumulates a single matrix over every pixel of the
dataset and derives all scores from it at the end (as the published evaluation
does). The sparsity error of the paper is the absolute difference between the
numbers of connected components in ground truth and prediction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import skimage.measure
import torch

ArrayLike = np.ndarray | torch.Tensor


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class ConfusionMatrix:
    """Confusion matrix accumulated over a whole dataset.

    Rows are ground-truth classes, columns predicted classes.

    Args:
        num_classes: Number of classes K (background is class 0 and is scored).
        ignore_index: Ground-truth value excluded from scoring; ground-truth
            values outside ``[0, K)`` are excluded as well.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def reset(self) -> None:
        """Clears the accumulated counts."""
        self.matrix[:] = 0

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Adds a prediction / ground-truth pair of any (equal) shape.

        Args:
            pred: Integer predicted class map(s), numpy or torch.
            target: Integer ground-truth class map(s) of the same shape.

        Raises:
            ValueError: On a shape mismatch or a predicted class outside ``[0, K)``.
        """
        p = _to_numpy(pred).astype(np.int64).ravel()
        t = _to_numpy(target).astype(np.int64).ravel()
        if p.shape != t.shape:
            raise ValueError(f"pred and target sizes differ: {p.size} vs {t.size}")
        keep = (t >= 0) & (t < self.num_classes)
        if self.ignore_index is not None:
            keep &= t != self.ignore_index
        p, t = p[keep], t[keep]
        if p.size and (p.min() < 0 or p.max() >= self.num_classes):
            raise ValueError(f"predicted classes must lie in [0, {self.num_classes})")
        k = self.num_classes
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)

    def compute(self) -> dict[str, np.ndarray | float]:
        """Scores of the accumulated matrix.

        A class absent from both ground truth and prediction has an undefined
        (NaN) IoU and recall and is left out of the means.

        Returns:
            Dict with ``confusion`` (K x K copy), ``iou`` (K,), ``miou``,
            ``pixel_acc``, ``recall`` (K,) and ``mean_recall``.
        """
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt = m.sum(axis=1)
        union = gt + m.sum(axis=0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / union
            recall = np.where(gt > 0, tp / gt, np.nan)
            pixel_acc = tp.sum() / m.sum() if m.sum() else float("nan")
        return {
            "confusion": self.matrix.copy(),
            "iou": iou,
            "miou": _nanmean(iou),
            "pixel_acc": float(pixel_acc),
            "recall": recall,
            "mean_recall": _nanmean(recall),
        }


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def component_count(class_map: ArrayLike, background: int = 0) -> int:
    """Number of 8-connected components summed over all non-background classes.

    Args:
        class_map: H x W integer class map.
        background: Class whose components are not counted.

    Returns:
        Total component count.
    """
    cm = _to_numpy(class_map)
    if cm.ndim != 2:
        raise ValueError(f"expected an H x W class map, got shape {cm.shape}")
    total = 0
    for c in np.unique(cm):
        if c != background:
            # connectivity=2 is skimage's name for 8-connectivity in 2-D.
            total += int(skimage.measure.label(cm == c, connectivity=2, background=0).max())
    return total


def sparsity_error(pred: ArrayLike, gt: ArrayLike, background: int = 0) -> int:
    """|#components(gt) - #components(pred)| for one H x W image (see :func:`component_count`)."""
    return abs(component_count(gt, background) - component_count(pred, background))


class SparsityMeter:
    """Mean sparsity error over images.

    Args:
        background: Class whose components are not counted.
    """

    def __init__(self, background: int = 0):
        self.background = background
        self.total = 0
        self.count = 0

    def update(self, pred: ArrayLike, gt: ArrayLike) -> None:
        """Adds one H x W image pair or an N x H x W batch."""
        p, g = _to_numpy(pred), _to_numpy(gt)
        if p.shape != g.shape:
            raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
        if p.ndim == 2:
            p, g = p[None], g[None]
        for pi, gi in zip(p, g):
            self.total += sparsity_error(pi, gi, self.background)
            self.count += 1

    def compute(self) -> float:
        """Mean error per image (NaN before any update)."""
        return self.total / self.count if self.count else float("nan")


def resize_nearest(pred: ArrayLike, size: int | Sequence[int]) -> ArrayLike:
    """Nearest-neighbour resize of label maps with pixel-centre alignment.

    Output pixel i samples input pixel ``floor((i + 0.5) * in / out)``, which
    matches ``F.interpolate(mode="nearest-exact")`` and, unlike plain "nearest",
    does not shift the map by half a pixel; used to score 128x128 predictions
    on 250x250 ground truth.

    Args:
        pred: H x W or N x H x W label map(s), numpy or torch.
        size: Output size, an int (square) or (height, width).

    Returns:
        The resized map(s), same type, dtype and leading dims as ``pred``.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else tuple(size)
    in_h, in_w = pred.shape[-2:]
    rows = np.minimum(((np.arange(out_h) + 0.5) * in_h / out_h).astype(np.int64), in_h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * in_w / out_w).astype(np.int64), in_w - 1)
    if isinstance(pred, torch.Tensor):
        r = torch.from_numpy(rows).to(pred.device)
        c = torch.from_numpy(cols).to(pred.device)
        return pred.index_select(-2, r).index_select(-1, c)
    return np.asarray(pred)[..., rows[:, None], cols[None, :]]
