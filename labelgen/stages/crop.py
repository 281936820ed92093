"""Aligned square face crops, and the transform to map labels back.

The crop is a similarity transform of the original image: centred on the
projected contour, rotated so the face axis (chin to forehead top) is
vertical, and scaled so the face height is ``1 / scale`` of the crop side.
The default ``scale`` frames faces like LFW-funneled images (the evaluation
data), so a network trained on our crops sees faces at the size it is
tested on.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropTransform:
    """Affine map from original image pixels to a ``size`` x ``size`` crop.

    Attributes:
        matrix: ``(2, 3)`` float64, ``crop_xy = matrix @ [x, y, 1]``.
        size: crop side in pixels.
    """

    matrix: np.ndarray
    size: int

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(n, 2)`` original-image points into the crop."""
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def inverse_matrix(self) -> np.ndarray:
        return cv2.invertAffineTransform(self.matrix)

    def resized(self, size: int) -> "CropTransform":
        """The same image region sampled at another crop size."""
        factor = size / self.size
        return CropTransform(self.matrix * factor, size)


def aligned_crop_transform(contour: np.ndarray, size: int, scale: float = 2.2) -> CropTransform:
    """Similarity transform that centres and uprights the face outlined by ``contour``.

    Args:
        contour: ``(n, 2)`` projected contour whose first vertex is the forehead
            top and whose vertex ``n // 2`` is the chin (as produced by
            :func:`labelgen.stages.contour.project_face_contour`).
        size: crop side in pixels.
        scale: crop side as a multiple of the face height (forehead top to chin).
    """
    top, chin = contour[0].astype(np.float64), contour[len(contour) // 2].astype(np.float64)
    axis = top - chin
    face_height = max(float(np.hypot(*axis)), 1e-3)
    roll = np.degrees(np.arctan2(axis[0], -axis[1]))  # 0 when the forehead is straight above the chin
    centre = contour.mean(axis=0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll, size / (scale * face_height))
    matrix[:, 2] += size / 2 - centre
    return CropTransform(matrix, size)


def crop_image(image: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Resample an image into the crop: area-averaging when shrinking, bilinear otherwise."""
    shrink = abs(np.linalg.det(transform.matrix[:, :2])) < 1.0
    return cv2.warpAffine(image, transform.matrix, (transform.size, transform.size),
                          flags=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def crop_labels(labels: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Resample a label map into the crop with nearest-neighbour sampling (ids stay ids)."""
    return cv2.warpAffine(labels, transform.matrix, (transform.size, transform.size),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    shrink = size < image.shape[0]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def labels_to_image(labels: np.ndarray, transform: CropTransform, image_shape: tuple[int, ...]) -> np.ndarray:
    """Map a crop's label map back onto the original image (0 outside the crop)."""
    height, width = image_shape[:2]
    return cv2.warpAffine(labels, transform.matrix, (width, height),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
