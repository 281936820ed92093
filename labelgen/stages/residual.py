"""The occlusion residual: face region minus visible face, cleaned as in the paper.

The paper erodes the residual twice with a 25x7 rectangle (25 wide, 7 high)
and dilates it once with a 45x45 ellipse, on its face crops. We take those
sizes as meant for a face (forehead top to chin) of ``REFERENCE_FACE_HEIGHT``
pixels and scale the kernels linearly with the face height actually seen, so
the same cleaning happens at any crop size.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

REFERENCE_FACE_HEIGHT = 300.0  # pixels; the face height the paper's kernel sizes are meant for


@dataclass(frozen=True)
class MorphologyConfig:
    """The paper's residual cleaning, sizes at ``reference_face_height``."""

    erode_size: tuple[int, int] = (25, 7)  # (width, height) of the rectangle
    erode_iterations: int = 2
    dilate_size: int = 45  # ellipse diameter
    reference_face_height: float = REFERENCE_FACE_HEIGHT


def _odd(length: float) -> int:
    """``length`` rounded to an odd integer (odd sizes keep the kernel centred): 3.5 -> 3, 14 -> 15."""
    return 2 * int(max(length, 0) // 2) + 1


def scaled_kernels(face_height: float, config: MorphologyConfig = MorphologyConfig()):
    """``(erode_kernel, dilate_kernel)`` for a face ``face_height`` pixels tall.

    Example:
        >>> erode, dilate = scaled_kernels(150.0)
        >>> erode.shape, dilate.shape   # half the reference face: half-size kernels
        ((3, 13), (23, 23))
    """
    factor = face_height / config.reference_face_height
    width, height = config.erode_size
    erode = cv2.getStructuringElement(cv2.MORPH_RECT, (_odd(width * factor), _odd(height * factor)))
    side = _odd(config.dilate_size * factor)
    dilate = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return erode, dilate


def occlusion_residual(hull: np.ndarray, visible_face: np.ndarray, face_height: float,
                       config: MorphologyConfig = MorphologyConfig()) -> np.ndarray:
    """Cleaned occlusion mask: ``hull & ~visible_face``, eroded, dilated, kept inside the hull.

    Args:
        hull: boolean face-region mask.
        visible_face: boolean teacher mask of the visible face.
        face_height: face height in the pixels of these masks.
    """
    residual = (hull & ~visible_face).astype(np.uint8)
    erode, dilate = scaled_kernels(face_height, config)
    residual = cv2.erode(residual, erode, iterations=config.erode_iterations)
    residual = cv2.dilate(residual, dilate)
    return residual.astype(bool) & hull
