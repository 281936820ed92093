"""The embedded sample: real face photographs that ship inside packages, plus
deterministic synthetic variants, so ``labelgen`` runs on a fresh machine with
no data at all.

Base photographs (public domain): scikit-image's ``astronaut`` (Eileen
Collins, NASA) and ``camera`` (the cameraman, greyscale), and Matplotlib's
``grace_hopper.jpg`` (US Navy). Variants: horizontal flip, half scale,
rotations, greyscale, and pasted occluders drawn by the evaluation kit's
:mod:`labelgen.eval.occluders` (a coffee cup cut from scikit-image's
``coffee``, sunglasses, a skin-toned hand, a textured scarf), each in its
canonical, fixed form.
One photo without a face (scikit-image's ``coffee``) shows the ``no_face``
status. Everything is generated in memory from a fixed seed.
"""
from __future__ import annotations

import os
import zlib
from functools import lru_cache

import cv2
import numpy as np

from labelgen.stages.decode import to_rgb8

# Face boxes (x0, y0, x1, y1) of the base photographs, as CenterFace finds them;
# occluders are placed relative to them.
FACE_BOXES = {
    "astronaut": (182, 58, 270, 178),
    "cameraman": (202, 119, 258, 197),
    "hopper": (174, 128, 358, 334),
}
VARIANTS = ("original", "flip", "half", "rot20", "rot-25", "grey", "cup", "sunglasses", "hand", "scarf",
            "hand_rot15")
NO_FACE_KEY = "coffee/original.jpg"


def _base_photo(name: str) -> np.ndarray:
    import skimage.data

    # scikit-image's bundled PNGs, read by OpenCV rather than skimage.data's loaders: those go through
    # imageio, whose reader, cut off by a Ctrl-C mid-read, prints a traceback when it is collected.
    files = {"astronaut": "astronaut.png", "cameraman": "camera.png", "coffee": "coffee.png"}
    if name in files:
        image = cv2.imread(os.path.join(os.path.dirname(skimage.data.__file__), files[name]), cv2.IMREAD_UNCHANGED)
        return to_rgb8(image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if name == "hopper":
        import matplotlib

        path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
        return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    raise KeyError(name)


def sample_keys() -> list[str]:
    """Keys of the sample images, ``<photo>/<variant>.jpg``, in a fixed order."""
    return [f"{name}/{variant}.jpg" for name in FACE_BOXES for variant in VARIANTS] + [NO_FACE_KEY]


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def sample_image(key: str) -> np.ndarray:
    """The ``uint8`` RGB sample image for ``key`` (read-only; deterministic)."""
    return _render(key)[0]


def sample_occluder_mask(key: str) -> np.ndarray:
    """Boolean mask of the occluder pasted into sample ``key`` (all False for clean variants)."""
    return _render(key)[1]


@lru_cache(maxsize=64)
def _render(key: str) -> tuple[np.ndarray, np.ndarray]:
    name, variant = key.removesuffix(".jpg").split("/")
    if key == NO_FACE_KEY:
        image = _base_photo("coffee")
        return _frozen(image), _frozen(np.zeros(image.shape[:2], bool))
    if name not in FACE_BOXES or variant not in VARIANTS:
        raise KeyError(f"no sample image {key!r}; known: {', '.join(sample_keys())}")
    # The occluders are drawn by the evaluation kit, imported only when a sample image is made.
    from labelgen.eval.occluders import coffee_cup, hand, paste, scarf, sunglasses

    image = _base_photo(name)
    occluder = np.zeros(image.shape[:2], bool)
    rng = np.random.default_rng(zlib.crc32(key.encode()))  # hash() is salted per process
    x0, y0, x1, y1 = FACE_BOXES[name]
    fw, fh = x1 - x0, y1 - y0
    if variant == "flip":
        image = image[:, ::-1]
    elif variant == "half":
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    elif variant.startswith("rot"):
        image = _rotate(image, float(variant[3:]))
    elif variant == "grey":
        image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    elif variant == "cup":
        patch, alpha = coffee_cup(int(fw * 0.9))
        image, occluder = paste(image, patch, alpha, x0 + fw // 3, y0 + int(fh * 0.6))
    elif variant == "sunglasses":
        patch, alpha = sunglasses(int(fw * 0.95))
        image, occluder = paste(image, patch, alpha, x0 + int(fw * 0.03), y0 + int(fh * 0.28))
    elif variant.startswith("hand"):
        patch, alpha = hand(int(fw * 0.6), np.array([200, 150, 120], np.float32) * rng.uniform(0.8, 1.05))
        image, occluder = paste(image, patch, alpha, x0 - int(fw * 0.05), y0 + int(fh * 0.35))
        if variant.endswith("rot15"):
            image = _rotate(image, 15.0)
            occluder = _rotate(occluder.astype(np.uint8) * 255, 15.0) >= 128
    elif variant == "scarf":
        patch, alpha = scarf(int(fw * 1.2), rng.integers(40, 220, size=(2, 3)).astype(np.uint8))
        image, occluder = paste(image, patch, alpha, x0 - int(fw * 0.1), y0 + int(fh * 0.72))
    return _frozen(image), _frozen(occluder)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def sample_jpeg(key: str, quality: int = 95) -> bytes:
    """The sample image for ``key`` encoded as JPEG bytes (what a real corpus would hold)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(sample_image(key), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode sample {key}")
    return data.tobytes()
