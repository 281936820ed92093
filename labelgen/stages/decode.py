"""Bytes to an upright 8-bit RGB array, whatever the encoding quirks.

Web-face corpora hold greyscale, palette and RGBA PNGs, 16-bit images, CMYK
JPEGs, phone photos stored sideways with an EXIF orientation tag, GIFs,
multi-page TIFFs and plain garbage; everything downstream expects upright
``uint8`` RGB ``(H, W, 3)``. OpenCV's ``IMREAD_COLOR_RGB`` decodes all of it
straight into one such array: it turns the image upright by its EXIF
orientation (all eight values; JPEG, PNG, WebP, TIFF), converts depth and
channels, and takes the first frame of an animation or the first page of a
TIFF.

Before any pixel is decoded, the image's size is read from its header, and an
image above ``max_pixels`` is refused as ``too_large``: a 110 KB PNG can
declare 30000 x 30000 pixels, 2.5 GiB of RGB and 5 GiB at the decoder's peak,
which would kill a labelling worker (and, as a Dask task, every worker it is
retried on).
Bytes whose size cannot be read from a header are not decoded either.
"""
from __future__ import annotations

import io
import struct
import warnings

import cv2
import numpy as np

from labelgen.status import StageError, Status

# Peak memory decoding adds, per pixel (benchmarks/decode_memory.py, 6000 x 6000 images): 6 bytes for
# JPEG, PNG (8- or 16-bit, RGBA), BMP, WebP and a JPEG turned by its EXIF tag; 8 for GIF; 10 for an
# uncompressed TIFF. The encoded bytes are held meanwhile: up to 3 more per pixel (BMP, uncompressed TIFF).
DECODE_BYTES_PER_PIXEL = 6
# The default limit keeps a Dask worker with a 2 GiB memory limit alive on any image under it:
#   Dask's nanny kills a worker at 95% of its limit:            0.95 x 2048 MiB = 1946 MiB
#   a labelling worker at rest (chain, teacher, distributed):   492 MiB measured, 600 MiB allowed
#   left for one image:                                         1946 - 600       = 1346 MiB
#   worst case, an uncompressed TIFF: 10 + 3 bytes per pixel:   1346 MiB / 13 B  = 108 M pixels
# so 100 M pixels (10000 x 10000; a 6000 x 4000 camera photo is 24 M): 1240 MiB at worst, 580 MiB for
# a JPEG. Tried for real (decode_memory.py --dask-check): a 10000 x 10000 uncompressed TIFF labelled on
# a Dask worker with a 2 GiB limit is ok, the worker's peak 1726 MiB. The limit is per image being
# labelled: a worker with T threads needs T times the room.
DEFAULT_MAX_PIXELS = 100_000_000


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


def image_signature(data: bytes) -> str | None:
    """The format the first bytes name, for the formats :func:`header_size` parses; ``None`` for others."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "TIFF"
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height declared by a PNG, JPEG, BMP, GIF, WebP or TIFF header.

    Only the header is read, so a forged or enormous image costs nothing to
    measure. ``None`` for other formats (see :func:`image_signature`) and for
    a header that is not laid out as its format's.
    """
    signature = image_signature(data)
    if signature == "PNG" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if signature == "JPEG":
        return _jpeg_size(data)
    # BMP and GIF start with letters a text file may start with too: the header must also be laid
    # out as one (a DIB header size BMP knows; after GIF's colour table, a block GIF knows).
    if signature == "BMP" and len(data) >= 26 and data[14:18] in _BMP_DIB_HEADER_SIZES:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)  # a negative height means top-down rows
    if signature == "GIF" and len(data) >= 14:
        flags = data[10]
        first_block = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        if data[first_block:first_block + 1] in (b"!", b",", b";"):  # extension, image, trailer
            return struct.unpack("<HH", data[6:10])
    if signature == "WebP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
    if signature == "TIFF":
        return _tiff_size(data)
    return None


_BMP_DIB_HEADER_SIZES = {struct.pack("<I", size) for size in (12, 40, 52, 56, 64, 108, 124)}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG marker segments to the first start-of-frame marker."""
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:  # stray bytes between segments: skipped, as libjpeg does
            position += 1
            continue
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


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth and ImageLength (tags 256, 257) of the first IFD (the page OpenCV decodes), TIFF or BigTIFF."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\0", b"\0+")
    # Classic TIFF: 4-byte offsets, 2-byte entry count, 12-byte entries (value at +8);
    # BigTIFF: 8-byte offsets and counts, 20-byte entries (value at +12).
    offset_format, count_format, entry_size, value_at = ("Q", "Q", 20, 12) if big else ("I", "H", 12, 8)
    value_formats = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8; a value is left-justified in its field
    try:
        (ifd,) = struct.unpack_from(order + offset_format, data, 8 if big else 4)
        (entries,) = struct.unpack_from(order + count_format, data, ifd)
        first = ifd + struct.calcsize(count_format)
        size = {}
        for entry in range(entries):
            position = first + entry * entry_size
            tag, kind = struct.unpack_from(order + "HH", data, position)
            if tag in (256, 257) and kind in value_formats:
                (size[tag],) = struct.unpack_from(order + value_formats[kind], data, position + value_at)
            if len(size) == 2:
                return size[256], size[257]
    except struct.error:  # the header ends early: the decoder will say so
        return None
    return None


def _pillow_size(data: bytes) -> tuple[tuple[int, int], str] | None:
    """Size and format name of an image Pillow recognises from its header (lazily: no pixel is decoded).

    For the formats :func:`header_size` does not parse (JPEG 2000, AVIF, PPM, ...).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            with Image.open(io.BytesIO(data)) as image:
                return image.size, image.format or "unknown"
    except Image.DecompressionBombError as error:  # only above 2 x Image.MAX_IMAGE_PIXELS
        raise StageError(Status.TOO_LARGE, f"Pillow refuses its header: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, EOFError):
        return None


def decode_image(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes to upright ``uint8`` RGB, refusing huge images before decoding.

    Reads JPEG, PNG, BMP, WebP, GIF, TIFF, JPEG 2000, AVIF and PPM; the first
    frame of an animation or multi-page file; honours the EXIF orientation.

    Args:
        data: the encoded image.
        max_pixels: most pixels (width x height, read from the header) an
            image may have; default :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        StageError: with ``Status.DECODE_ERROR`` for empty, truncated or
            non-image bytes and formats whose size cannot be read from a
            header; ``Status.TOO_LARGE`` for images above ``max_pixels``.
    """
    max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if not data:
        raise StageError(Status.DECODE_ERROR, "empty file (0 bytes)")
    if is_truncated_jpeg(data):
        raise StageError(Status.DECODE_ERROR, "truncated JPEG: no end-of-image marker after the last scan")
    size, image_format, signature = header_size(data), None, image_signature(data)
    if size is None and signature is not None:
        raise StageError(Status.DECODE_ERROR, f"not a decodable image ({len(data)} bytes, starts with "
                                              f"{data[:8].hex()}): a {signature} signature without a "
                                              f"{signature} header")
    if size is None:
        recognised = _pillow_size(data)
        if recognised is None:
            raise StageError(Status.DECODE_ERROR, f"not a decodable image ({len(data)} bytes, starts with "
                                                  f"{data[:8].hex()}): no image header recognised")
        size, image_format = recognised
    check_pixels(*size, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)
    except cv2.error as error:
        raise StageError(Status.DECODE_ERROR, f"OpenCV cannot decode it: {str(error).strip()[-200:]}") from None
    if image is None or image.size == 0:
        what = f"a {image_format} image OpenCV cannot decode" if image_format else "not a decodable image"
        raise StageError(Status.DECODE_ERROR, f"{what} ({len(data)} bytes, starts with {data[:8].hex()})")
    check_pixels(image.shape[1], image.shape[0], max_pixels)  # a header that understated the size
    return image


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image of ``width`` x ``height`` pixels as ``too_large`` when above ``max_pixels``.

    Raises:
        StageError: ``Status.TOO_LARGE``, the size and the memory decoding would need in the message.
    """
    pixels = width * height
    if pixels > max_pixels:
        raise StageError(Status.TOO_LARGE, f"image of {width}x{height} = {pixels:,} pixels is above the limit "
                                           f"of {max_pixels:,} (--max-pixels); decoding it would take at least "
                                           f"{pixels * DECODE_BYTES_PER_PIXEL / 2**30:.1f} GiB")
