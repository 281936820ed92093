"""Photometric variants of a photo, for evaluation: what web photos look like, at fixed settings.

A teacher that scores well on clean, colour, well-exposed LFW faces can still
fail on the photos web-face corpora are full of. Each variant here turns a
``uint8`` RGB photo into one fixed, deterministic version of it, so a teacher
can be scored on the same faces clean and under each condition (``labelgen
synth --variant``, ``labelgen eval-labels --variant``):

=============  ===========================================================================
variant        what it does
=============  ===========================================================================
greyscale      luma (ITU-R BT.601 weights), copied into all three channels
jpeg           re-encoded by libjpeg at quality :data:`JPEG_QUALITY` (blocks, ringing)
low-res        shrunk to :data:`LOW_RES_SCALE` of each side (area) and enlarged back (bicubic)
colour-cast    a cool cast in linear light: red x0.70, green x0.95, blue x1.40
dark           under-exposed by :data:`DARK_STOPS` stops in linear light
bright         over-exposed by :data:`BRIGHT_STOPS` stops in linear light (highlights burn out)
=============  ===========================================================================

These settings are the evaluation's own and are written down here on purpose:
they do not go through the training augmentation's code
(:mod:`train.datasets.photometric`), so a mistake in one cannot hide in the other.
Exposure and casts act in linear light (the sRGB curve undone, scaled, redone),
as a camera's exposure and white balance do.

The variants are applied to the whole photo before anything else (the chain
then detects, crops and labels it; ``labelgen synth`` resizes it to the
store's size), and never move a pixel, so the exact labels stay as they are.

Example:
    >>> image = np.full((8, 8, 3), (200, 120, 90), np.uint8)
    >>> grey = apply_variant("greyscale", image)
    >>> grey.shape, grey.dtype, bool((grey[..., 0] == grey[..., 2]).all())
    ((8, 8, 3), dtype('uint8'), True)
    >>> bool(apply_variant("dark", image).mean() < image.mean() < apply_variant("bright", image).mean())
    True
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

JPEG_QUALITY = 12
LOW_RES_SCALE = 0.28
CAST_GAINS = (0.70, 0.95, 1.40)  # red, green, blue, in linear light
DARK_STOPS = -2.0
BRIGHT_STOPS = 1.25

_BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def _to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB ``uint8`` to linear light in ``[0, 1]`` (the sRGB transfer curve undone)."""
    x = image.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light to sRGB ``uint8``; values outside ``[0, 1]`` clip, as a sensor and a file do."""
    x = np.clip(linear, 0.0, 1.0)
    x = np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def greyscale(image: np.ndarray) -> np.ndarray:
    """The photo's luma in all three channels."""
    luma = np.clip(np.rint(image.astype(np.float32) @ _BT601), 0, 255).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=2)


def jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """The photo re-encoded as a JPEG at ``quality`` and decoded again.

    Raises:
        RuntimeError: libjpeg refused to encode the image.
    """
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def low_resolution(image: np.ndarray, scale: float = LOW_RES_SCALE) -> np.ndarray:
    """The photo shrunk to ``scale`` of each side (area averaging) and enlarged back to its size (bicubic)."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def colour_cast(image: np.ndarray, gains: tuple[float, float, float] = CAST_GAINS) -> np.ndarray:
    """The photo with per-channel gains in linear light (a wrong white balance)."""
    return _to_srgb(_to_linear(image) * np.asarray(gains, np.float32))


def exposure(image: np.ndarray, stops: float) -> np.ndarray:
    """The photo exposed ``stops`` stops more (negative: less), in linear light."""
    return _to_srgb(_to_linear(image) * np.float32(2.0 ** stops))


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "greyscale": greyscale,
    "jpeg": jpeg,
    "low-res": low_resolution,
    "colour-cast": colour_cast,
    "dark": lambda image: exposure(image, DARK_STOPS),
    "bright": lambda image: exposure(image, BRIGHT_STOPS),
}
"""Every variant by name, in the order the tables show them."""


CLEAN = "clean"
"""The name of the photo as it is (no variant)."""


def check_variant(name: str | None) -> None:
    """Raise ``ValueError`` unless ``name`` is a variant, ``"clean"`` or ``None`` (before any work starts)."""
    if name not in (None, CLEAN) and name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def apply_variant(name: str | None, image: np.ndarray) -> np.ndarray:
    """``image`` (``uint8`` RGB ``H x W x 3``) under the variant ``name``; ``None`` or ``"clean"`` returns it as is.

    Raises:
        ValueError: ``name`` is not a variant, or ``image`` is not ``uint8`` RGB.
    """
    check_variant(name)
    if name in (None, CLEAN):
        return image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a variant needs a uint8 RGB image (H x W x 3), got {image.dtype} {image.shape}")
    return VARIANTS[name](image)
