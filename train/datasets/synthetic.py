"""Small synthetic label stores for tests, benchmarks and smoke runs.

Each image is a noisy background with a skin-coloured ellipse (the face, label 1)
and sometimes a grey rectangle over it (an occlusion blob, label 2), written with
the real store API (:func:`labelgen.store.create_store`), so the training reader
is exercised on exactly the layout ``labelgen`` writes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from labelgen.status import Status
from labelgen.store import LabelStore, ManifestEntry, create_store


def synthetic_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image, label)`` pair: uint8 S x S x 3 RGB and uint8 S x S store label map."""
    image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    label = np.zeros((size, size), np.uint8)
    centre = (int(size * rng.uniform(0.4, 0.6)), int(size * rng.uniform(0.4, 0.6)))
    axes = (int(size * rng.uniform(0.2, 0.3)), int(size * rng.uniform(0.28, 0.38)))
    cv2.ellipse(label, centre, axes, 0, 0, 360, 1, -1)
    image[label == 1] = (np.array([200, 150, 120]) + rng.integers(-20, 20, 3)).astype(np.uint8)
    if rng.random() < 0.6:
        x0, y0 = int(rng.integers(0, size // 2)), int(rng.integers(size // 3, size // 2))
        x1, y1 = x0 + size // 3, y0 + size // 4
        occluder = np.zeros_like(label)
        occluder[y0:y1, x0:x1] = 1
        occluder &= label == 1
        image[occluder == 1] = 128
        label[occluder == 1] = 2
    return image, label


def make_synthetic_store(
    path: str | Path,
    count: int = 48,
    size: int = 32,
    shard_size: int = 64,
    bad_rows: list[int] | None = None,
    seed: int = 0,
    mark_ids: bool = False,
) -> LabelStore:
    """Creates a filled store of ``count`` synthetic crops.

    Args:
        path: New store folder (must not exist or be empty).
        count: Number of rows.
        size: Crop side.
        shard_size: Rows per shard.
        bad_rows: Rows written with a non-OK status (``no_face``); ``None`` marks every 7th row.
        seed: Image seed.
        mark_ids: Write each row's index into pixel (0, 0) channels 0-1 (low / high
            byte) and the label's top-left corner, so tests can identify samples
            and check that flips move image and label together.

    Returns:
        The store, opened read/write.
    """
    rng = np.random.default_rng(seed)
    entries = [ManifestEntry(f"img{i:05d}", i % 5, f"synthetic/{i}") for i in range(count)]
    store = create_store(path, entries, crop_size=size, shard_size=shard_size, attributes={"source": "synthetic"})
    bad = set(range(0, count, 7)) if bad_rows is None else set(bad_rows)
    for shard in range(store.shard_count):
        rows = store.shard_rows(shard)
        pairs = [synthetic_sample(rng, size) for _ in range(rows.start, rows.stop)]
        images = np.stack([p[0] for p in pairs])
        labels = np.stack([p[1] for p in pairs])
        if mark_ids:
            index = np.arange(rows.start, rows.stop)
            images[:, 0, 0, 0] = index % 256
            images[:, 0, 0, 1] = index // 256
            labels[:, 0, 0] = 7  # a lone corner id: after a flip it sits in the top-right corner
        status = np.array([Status.NO_FACE if i in bad else Status.OK for i in range(rows.start, rows.stop)], np.uint8)
        store.write_rows(rows, {"image": images, "label": labels, "status": status})
        store.mark_shard_done(shard, {})
    return store


def make_synthetic_lfw(root: str | Path, counts: dict[str, int] | None = None, size: int = 250,
                       seed: int = 0) -> Path:
    """A folder laid out like LFW Part Labels (images/, labels/, splits/) with synthetic faces.

    Labels use the LFW classes (0 background, 1 face, 2 hair): the ellipse is the
    face, a band over its top is hair (coloured violet, unlike anything else), and
    occluders are background, as in LFW Part Labels.

    Args:
        root: Folder to create.
        counts: Images per split; default 6 / 4 / 4 for train / val / test.
        size: Image side (LFW is 250).
        seed: Image seed.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    counts = counts or {"train": 6, "val": 4, "test": 4}
    rng = np.random.default_rng(seed)
    for folder in ("images", "labels", "splits"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, count in counts.items():
        stems = [f"Synthetic_{split}_{i:04d}" for i in range(count)]
        for stem in stems:
            image, label = synthetic_sample(rng, size)
            label = np.where(label == 1, 1, 0).astype(np.uint8)
            rows = np.nonzero(label.any(axis=1))[0]
            hair = np.zeros_like(label, dtype=bool)
            hair[rows.min(): rows.min() + (rows.max() - rows.min()) // 4] = True
            label[hair & (label == 1)] = 2
            image[label == 2] = (110, 50, 190)
            cv2.imwrite(str(root / "images" / f"{stem}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / "labels" / f"{stem}.png"), label)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    return root
