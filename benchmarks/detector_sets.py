"""The image sets the detector benchmarks compare ``--detector`` choices on (encoded JPEG bytes).

- ``sample``: the embedded sample (34 images, 512-600 px).
- ``lfw``: LFW Part Labels test images (250 px, one large face each).
- ``occluded``: the synthetic occluded test split, as ``labelgen synth --split test
  --photos`` writes it (occluders hide parts of the face).
- ``small``: LFW test images pasted at 25% scale into a 1024 px grey canvas, at a
  seeded position: a face of about 30 px in a large frame, the case ``auto``
  hands to CenterFace.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgen.eval.lfw_parts import lfw_parts_location  # noqa: E402
from labelgen.sample import sample_jpeg, sample_keys  # noqa: E402

LFW = lfw_parts_location()  # $SVC_LFW_PARTS or ../shared/data/lfw_parts
SMALL_SCALE, SMALL_CANVAS = 0.25, 1024


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def small_face_canvas(rgb: np.ndarray, seed: int, scale: float = SMALL_SCALE, side: int = SMALL_CANVAS) -> np.ndarray:
    """``rgb`` shrunk by ``scale`` and pasted into a ``side`` px grey canvas at a position drawn from ``seed``."""
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((side, side, 3), 128, np.uint8)
    rng = np.random.default_rng(seed)
    y, x = (int(rng.integers(0, side - extent + 1)) for extent in small.shape[:2])
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def lfw_test_stems(limit: int | None = None) -> list[str]:
    return (LFW / "splits" / "test.txt").read_text().split()[:limit]


def sample_set() -> list[bytes]:
    return [sample_jpeg(key) for key in sample_keys()]


def lfw_set(limit: int | None = None) -> list[bytes]:
    return [(LFW / "images" / f"{stem}.jpg").read_bytes() for stem in lfw_test_stems(limit)]


def occluded_set(folder: Path, limit: int | None = None) -> list[bytes]:
    """The occluded test photos, written to ``folder`` first when missing (``labelgen synth --photos`` does the same)."""
    from labelgen.eval.synth import write_synthetic_photos

    write_synthetic_photos(folder, "test", limit=limit, progress=False)
    return [(folder / f"{stem}#0.jpg").read_bytes() for stem in lfw_test_stems(limit)]


def small_set(limit: int | None = None) -> list[bytes]:
    from labelgen.stages.decode import decode_image

    return [encode_jpeg(small_face_canvas(decode_image(data), seed)) for seed, data in enumerate(lfw_set(limit))]
