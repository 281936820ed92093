"""Bytes to an 8-bit RGB array, whatever the encoding quirks.

Web-face corpora hold greyscale, RGBA/palette PNGs, 16-bit images, CMYK JPEGs
and plain garbage; everything downstream expects ``uint8`` RGB ``(H, W, 3)``.
"""
from __future__ import annotations

import cv2
import numpy as np

from labelgen.status import StageError, Status

# OpenCV refuses larger images anyway (CV_IO_MAX_IMAGE_PIXELS); say so clearly.
MAX_PIXELS = 1 << 30


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Convert grey, grey+alpha, RGB, RGBA, 16-bit or float images to ``uint8`` RGB.

    Args:
        image: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)``, ``(H, W, 3)`` or ``(H, W, 4)``
            array in RGB channel order, of any integer or float dtype (floats
            are taken to lie in ``[0, 1]``).

    Returns:
        Contiguous ``uint8`` array of shape ``(H, W, 3)``.

    Example:
        >>> to_rgb8(np.full((2, 2), 65535, np.uint16))[0, 0].tolist()
        [255, 255, 255]
    """
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels in (1, 2):  # grey, grey + alpha
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif channels == 4:  # alpha is dropped, not composited: faces are opaque
        image = image[:, :, :3]
    elif channels != 3:
        raise StageError(Status.DECODE_ERROR, f"unsupported number of channels: {channels}")
    return np.ascontiguousarray(image)


def is_truncated_jpeg(data: bytes) -> bool:
    """True for a JPEG whose last scan has no end-of-image marker after it.

    OpenCV decodes truncated JPEGs without complaint, filling the missing
    rows with grey; a label made from such an image is silently wrong.
    Inside entropy-coded data a 0xFF byte is always stuffed, so the EOI marker
    ``FF D9`` cannot appear there by accident.
    """
    if not data.startswith(b"\xff\xd8"):
        return False
    last_scan = data.rfind(b"\xff\xda")
    return data.find(b"\xff\xd9", max(last_scan, 0)) < 0


def decode_image(data: bytes) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, WebP, TIFF) to ``uint8`` RGB.

    Raises:
        StageError: with ``Status.DECODE_ERROR`` for empty, truncated,
            oversized or non-image bytes.
    """
    if not data:
        raise StageError(Status.DECODE_ERROR, "empty file (0 bytes)")
    if is_truncated_jpeg(data):
        raise StageError(Status.DECODE_ERROR, "truncated JPEG: no end-of-image marker after the last scan")
    buffer = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_UNCHANGED keeps 16-bit depth and alpha; OpenCV turns CMYK JPEGs into BGR.
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise StageError(Status.DECODE_ERROR,
                         f"not a decodable image ({len(data)} bytes, starts with {data[:8].hex()})")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise StageError(Status.DECODE_ERROR, f"image of {image.shape[1]}x{image.shape[0]} is too large")
    if image.ndim == 3 and image.shape[2] >= 3:
        image = image[:, :, [2, 1, 0] + list(range(3, image.shape[2]))]  # BGR(A) -> RGB(A)
    return to_rgb8(image)
