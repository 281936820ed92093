"""The face region: the filled convex hull of the projected contour."""
from __future__ import annotations

import cv2
import numpy as np


def fill_convex_hull(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the filled convex hull of ``(n, 2)`` ``x, y`` points.

    Points may lie outside the image; the hull is clipped to it. Coordinates
    are rounded to the nearest pixel centre.

    Example:
        >>> mask = fill_convex_hull(np.array([[1, 1], [5, 1], [5, 5], [1, 5]]), (8, 8))
        >>> int(mask.sum())
        25
    """
    mask = np.zeros(shape[:2], np.uint8)
    finite = points[np.all(np.isfinite(points), axis=1)]
    if len(finite) >= 3:
        # Sub-pixel precision (4 bits) keeps the hull stable under small pose changes.
        shift = 4
        fixed = np.round(np.asarray(finite, np.float64) * (1 << shift)).astype(np.int64)
        limit = np.int64(1 << 28)  # keep far-away points inside OpenCV's int32 range
        hull = cv2.convexHull(np.clip(fixed, -limit, limit).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)
