"""Bytes to an 8-bit RGB array, whatever the encoding quirks.

Web-face corpora hold greyscale, RGBA/palette PNGs, 16-bit images, CMYK JPEGs
and plain garbage; everything downstream expects ``uint8`` RGB ``(H, W, 3)``.
"""
from __future__ import annotations

import struct

import cv2
import numpy as np

from labelgen.status import StageError, Status

# OpenCV refuses larger images anyway (CV_IO_MAX_IMAGE_PIXELS, an uncaught
# cv2.error); the size is read from the header first, so such a file gets a
# clear status before any pixel memory is allocated.
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


def header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height declared by a PNG, JPEG, BMP, GIF or WebP header; ``None`` if unknown.

    Only the header is read, so a forged or enormous image costs nothing to
    measure. Formats not recognised here are left to the decoder.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)  # a negative height means top-down rows
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG marker segments to the first start-of-frame marker."""
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
    return None


def decode_image(data: bytes) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, WebP, TIFF) to ``uint8`` RGB.

    Raises:
        StageError: with ``Status.DECODE_ERROR`` for empty, truncated or
            non-image bytes, ``Status.TOO_LARGE`` for images of more than
            :data:`MAX_PIXELS` pixels.
    """
    if not data:
        raise StageError(Status.DECODE_ERROR, "empty file (0 bytes)")
    if is_truncated_jpeg(data):
        raise StageError(Status.DECODE_ERROR, "truncated JPEG: no end-of-image marker after the last scan")
    size = header_size(data)
    if size is not None:
        _check_pixels(*size)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        # IMREAD_UNCHANGED keeps 16-bit depth and alpha; OpenCV turns CMYK JPEGs into BGR.
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # e.g. a header this module does not parse, over OpenCV's own limit
        raise StageError(Status.DECODE_ERROR, f"OpenCV cannot decode it: {str(error).strip()[-200:]}") from None
    if image is None or image.size == 0:
        raise StageError(Status.DECODE_ERROR,
                         f"not a decodable image ({len(data)} bytes, starts with {data[:8].hex()})")
    _check_pixels(image.shape[1], image.shape[0])
    if image.ndim == 3 and image.shape[2] >= 3:
        image = image[:, :, [2, 1, 0] + list(range(3, image.shape[2]))]  # BGR(A) -> RGB(A)
    return to_rgb8(image)


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise StageError(Status.TOO_LARGE, f"image of {width}x{height} = {width * height} pixels is above "
                                           f"the limit of {MAX_PIXELS} pixels")
