"""How well the projected face region covers a ground-truth face (LFW Part Labels).

The hull is meant to be "jawlines plus forehead": all face skin down to the
chin, hair over the forehead allowed, the neck left out. So we score:

- recall: the fraction of ground-truth face pixels above the chin that lie
  inside the hull (the chin row is MediaPipe's chin landmark, 152, which
  is detected independently of the projected contour);
- precision: the fraction of hull pixels that are ground-truth face or hair.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHIN_LANDMARK = 152
GT_FACE, GT_HAIR = 1, 2


@dataclass(frozen=True)
class Coverage:
    recall: float
    precision: float


def hull_coverage(hull: np.ndarray, ground_truth: np.ndarray, chin_row: float) -> Coverage:
    """Score a boolean hull against an LFW Part Labels map (0 bg, 1 face, 2 hair).

    Example:
        >>> gt = np.zeros((4, 4), np.uint8); gt[:3, 1:3] = 1
        >>> hull = np.zeros((4, 4), bool); hull[:2, 1:3] = True
        >>> hull_coverage(hull, gt, chin_row=1.0)
        Coverage(recall=1.0, precision=1.0)
    """
    face_above_chin = ground_truth == GT_FACE
    face_above_chin[int(np.floor(chin_row)) + 1:] = False
    recall = (hull & face_above_chin).sum() / max(int(face_above_chin.sum()), 1)
    precision = (hull & (ground_truth > 0)).sum() / max(int(hull.sum()), 1)
    return Coverage(float(recall), float(precision))
