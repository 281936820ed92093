"""Small assertion helpers shared by the tests."""
from __future__ import annotations

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def box_iou(a, b) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    def area(r):
        return (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)
