"""From the cleaned residual to the label map: one id per occlusion blob."""
from __future__ import annotations

import cv2
import numpy as np

BACKGROUND, FACE, FIRST_BLOB = 0, 1, 2
MAX_BLOBS = 255 - FIRST_BLOB + 1  # ids must fit in uint8
MIN_BLOB_FRACTION = 0.01  # blobs under 1% of the face region are dropped (noise, not occluders)


def label_occlusions(hull: np.ndarray, residual: np.ndarray, min_area: int = 1) -> np.ndarray:
    """Label map: 0 outside the hull, 1 face, 2, 3, ... one id per 8-connected residual blob.

    Blobs smaller than ``min_area`` pixels become face again. Blob ids are
    assigned in raster order of each blob's first pixel (as
    ``skimage.measure.label`` does), then compacted. At most ``MAX_BLOBS``
    blobs are kept, the largest ones.

    Example:
        >>> hull = np.ones((4, 6), bool)
        >>> residual = np.zeros((4, 6), bool); residual[0, 0] = residual[3, 5] = True
        >>> label_occlusions(hull, residual)[[0, 3, 1], [0, 5, 1]].tolist()
        [2, 3, 1]
    """
    labels = np.where(hull, FACE, BACKGROUND).astype(np.uint8)
    count, blobs, stats, _ = cv2.connectedComponentsWithStats(
        (residual & hull).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_area) + 1
    if len(keep) > MAX_BLOBS:
        keep = np.sort(keep[np.argsort(-areas[keep - 1], kind="stable")[:MAX_BLOBS]])
    new_ids = np.zeros(count, np.uint8)
    new_ids[keep] = np.arange(FIRST_BLOB, FIRST_BLOB + len(keep))
    occluded = new_ids[blobs]
    labels[occluded > 0] = occluded[occluded > 0]
    return labels


def min_blob_area(hull_area: int, fraction: float = MIN_BLOB_FRACTION) -> int:
    """The documented minimum blob area: ``fraction`` of the face region, at least 1 pixel."""
    return max(1, int(round(fraction * hull_area)))
