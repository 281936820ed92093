"""Synthetic occlusions with exact labels: occluders pasted onto LFW Part Labels faces.

The labelling chain can only be scored against ground truth it did not make.
Here the truth is known by construction: occluders from
:mod:`labelgen.eval.occluders` are pasted onto real faces whose visible-face mask
is hand-labelled (LFW Part Labels, ``label == 1``), and the label map follows
from the pasted pixels:

- 0: background (LFW background and hair, and occluder pixels off the face);
- 1: visible face (face pixels no occluder covers);
- 2, 3, ...: one id per 8-connected blob of occluder pixels on the face.

Occluder pixels are those the pasted alpha dominates (``alpha >= 0.5``).
Hair covered by an occluder stays background, and LFW's own occluders (hands,
microphones) are already background in its labels, so the map is exact.

Everything is a function of ``(split, stem, copy, seed)``: the same arguments
give the same arrays in any process, in any order. Use the ``test`` split for
evaluation only; ``train`` and ``val`` are for training and tuning. By default
``train``/``val`` get :data:`~labelgen.eval.occluders.TRAIN_FAMILIES` and ``test``
gets the unlike :data:`~labelgen.eval.occluders.HELDOUT_FAMILIES`.

Example:
    >>> import numpy as np
    >>> face = np.zeros((100, 100), bool); face[20:90, 25:75] = True
    >>> image = np.full((100, 100, 3), 128, np.uint8)
    >>> out, label = synthesize(image, face, np.random.default_rng(3), ["glasses"], max_occluders=2)
    >>> out.shape, label.dtype, set(np.unique(label)) <= set(range(0, 5)), bool((label[~face] == 0).all())
    ((100, 100, 3), dtype('uint8'), True, True)
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from labelgen.eval.lfw_parts import FACE as LFW_FACE
from labelgen.eval.lfw_parts import SPLITS, default_lfw_parts_root, load_pair, read_split
from labelgen.eval.occluders import HELDOUT_FAMILIES, TRAIN_FAMILIES, OccluderKind, kinds_of, make_occluder, paste
from labelgen.eval.variants import apply_variant, check_variant
from labelgen.stages.components import BACKGROUND, FACE, label_occlusions

BLUR_SIGMAS = (0.0, 0.6, 0.9, 1.3, 1.8)


# -- the data -------------------------------------------------------------------------------------
def lfw_parts_root(root: str | Path | None = None) -> Path:
    """The LFW Part Labels folder: ``root`` if given, else ``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``."""
    return Path(root) if root is not None else default_lfw_parts_root()


def split_stems(split: str, root: str | Path | None = None) -> list[str]:
    """Stems of an official split (``train`` 1500, ``val`` 500, ``test`` 927), in the official order."""
    return read_split(lfw_parts_root(root), split)


def load_face(stem: str, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(image, face_mask)`` of an LFW Part Labels image: ``uint8`` RGB and boolean ``label == 1``."""
    image, label = load_pair(lfw_parts_root(root), stem)
    return image, label == LFW_FACE


def default_families(split: str) -> tuple[str, ...]:
    """Held-out occluder families for ``test``, training families otherwise."""
    return HELDOUT_FAMILIES if split == "test" else TRAIN_FAMILIES


def pair_rng(split: str, stem: str, copy: int, seed: int = 0) -> np.random.Generator:
    """The generator of one synthetic pair; CRC32 because ``hash()`` of a string changes per process."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), zlib.crc32(stem.encode()), copy])


# -- placing occluders ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceFrame:
    """Where a face is, from its mask: left, right and top edge, width and centre column.

    The mask's bottom is not used: LFW's face class runs down the neck, so the
    face height is taken from its width.
    """

    left: int
    right: int
    top: int
    width: int
    centre: float

    @classmethod
    def from_mask(cls, face_mask: np.ndarray) -> "FaceFrame | None":
        rows, cols = np.nonzero(face_mask)
        if len(rows) == 0:
            return None
        left, right, top = int(cols.min()), int(cols.max()), int(rows.min())
        width = right - left + 1
        upper = rows < top + width  # the face without the neck
        return cls(left, right, top, width, float(cols[upper].mean()))

    def anchor(self, where: str, rng: np.random.Generator) -> tuple[float, float]:
        """A random centre point for an occluder at ``eyes``, ``mouth`` or ``any`` place on the face."""
        w = self.width
        if where == "eyes":
            return self.centre + rng.normal(0, 0.04 * w), self.top + w * (0.35 + rng.normal(0, 0.04))
        if where == "mouth":
            return self.centre + rng.normal(0, 0.12 * w), self.top + w * (0.78 + rng.normal(0, 0.08))
        return rng.uniform(self.left, self.right), self.top + w * rng.uniform(0.1, 1.0)


def rotate_patch(patch: np.ndarray, alpha: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a patch and its alpha about the centre, enlarging the canvas so nothing is cut off."""
    h, w = alpha.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    matrix[:, 2] += (new_w - w) / 2, (new_h - h) / 2
    # Replicated borders keep the patch colour under soft alpha edges (no dark fringe).
    patch = cv2.warpAffine(patch, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return patch, alpha


def sharpness(grey: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute Laplacian of ``grey`` over ``mask``: high for crisp detail, low for blur."""
    if not mask.any():
        return 0.0
    return float(np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F))[mask].mean())


def match_photo(patch: np.ndarray, alpha: np.ndarray, image: np.ndarray, region: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blur and relight a patch like the photo around the face, so edges and exposure do not give it away.

    The blur is the weakest of :data:`BLUR_SIGMAS` that makes the patch no
    sharper than the face region; it applies to the alpha too (soft edges as
    in a defocused photo). The gain moves the patch's brightness half way (in
    log terms) towards the region's.
    """
    image_grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    target = sharpness(image_grey, region)
    interior = cv2.erode((alpha > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    for sigma in BLUR_SIGMAS:
        blurred = cv2.GaussianBlur(patch, (0, 0), sigma) if sigma else patch
        if sharpness(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY), interior) <= target:
            break
    if sigma:
        patch, alpha = blurred, cv2.GaussianBlur(alpha, (0, 0), sigma)
    patch_level = float((cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY) * alpha).sum() / max(alpha.sum(), 1e-6))
    gain = np.clip(np.sqrt(max(float(image_grey[region].mean()), 1.0) / max(patch_level, 1.0)), 0.7, 1.4)
    patch = np.clip(patch.astype(np.float32) * gain * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8)
    return patch, alpha


def paste_occluder(image: np.ndarray, kind: OccluderKind, frame: FaceFrame, rng: np.random.Generator,
                   region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paste one occluder of ``kind`` on the face in ``frame``; returns the image and the occluder mask."""
    size = int(frame.width * rng.uniform(*kind.scale))
    patch, alpha = make_occluder(kind.name, size, rng)
    patch, alpha = rotate_patch(patch, alpha, rng.uniform(-kind.max_rotation, kind.max_rotation))
    patch, alpha = match_photo(patch, alpha, image, region, rng)
    x, y = frame.anchor(str(rng.choice(kind.anchors)), rng)
    h, w = alpha.shape
    return paste(image, patch, alpha, int(round(x - w / 2)), int(round(y - h / 2)))


def occlude(image: np.ndarray, face_mask: np.ndarray, rng: np.random.Generator,
            families: Sequence[str] = TRAIN_FAMILIES, max_occluders: int = 2,
            min_occluders: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``min_occluders`` to ``max_occluders`` random occluders over a face (an augmentation).

    Torch-free, for a training ``Dataset``: with LFW-style labels, set the
    label of the returned mask's pixels to background (``label[mask] = 0``).

    Args:
        image: ``uint8`` RGB ``(H, W, 3)``; not modified.
        face_mask: boolean ``(H, W)``, the face the occluders are placed on
            (scale and position follow its width and top).
        rng: the only source of randomness.
        families: occluder families to draw from (see :mod:`labelgen.eval.occluders`).
        max_occluders, min_occluders: how many occluders, drawn uniformly.

    Returns:
        ``(image, mask)``: the new image and the boolean mask of every pixel
        an occluder covers (on the face or not).

    Example:
        >>> face = np.zeros((64, 64), bool); face[10:60, 16:48] = True
        >>> out, mask = occlude(np.zeros((64, 64, 3), np.uint8), face, np.random.default_rng(0),
        ...                     ["polygons"], min_occluders=1)
        >>> out.shape, mask.dtype, bool(mask.any())
        ((64, 64, 3), dtype('bool'), True)
    """
    kinds = kinds_of(families)
    covered = np.zeros(face_mask.shape, bool)
    frame = FaceFrame.from_mask(face_mask)
    if frame is None or not kinds:
        return image.copy(), covered
    region = np.zeros(face_mask.shape, bool)
    region[frame.top:frame.top + frame.width, frame.left:frame.right + 1] = True
    for _ in range(int(rng.integers(min_occluders, max_occluders + 1))):
        image, mask = paste_occluder(image, kinds[int(rng.integers(len(kinds)))], frame, rng, region)
        covered |= mask
    return image, covered


def synthesize(image: np.ndarray, face_mask: np.ndarray, rng: np.random.Generator,
               families: Sequence[str] = TRAIN_FAMILIES, max_occluders: int = 2,
               min_occluders: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``min_occluders`` (default 0) to ``max_occluders`` occluders over a face; return the image
    and its exact label map (arguments as in :func:`occlude`).

    Returns:
        ``(image, label)``: ``uint8`` RGB and ``uint8`` labels, 0 background,
        1 visible face, 2.. one id per 8-connected blob of occluder on the
        face (ids in raster order of each blob's first pixel).
    """
    image, covered = occlude(image, face_mask, rng, families, max_occluders, min_occluders)
    return image, label_occlusions(face_mask, covered)


def synthetic_pair(split: str, stem: str, copy: int = 0, seed: int = 0, families: Sequence[str] | None = None,
                   max_occluders: int = 2, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic ``(image, label)`` for copy ``copy`` of LFW Part Labels image ``stem`` (native 250 px)."""
    image, face_mask = load_face(stem, root)
    families = default_families(split) if families is None else families
    return synthesize(image, face_mask, pair_rng(split, stem, copy, seed), families, max_occluders)


def synthetic_split(split: str, copies: int = 1, seed: int = 0, families: Sequence[str] | None = None,
                    max_occluders: int = 2, root: str | Path | None = None,
                    limit: int | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(key, image, label)`` for the first ``limit`` stems of a split, ``copies`` each.

    Keys are ``"<stem>#<copy>"``. Never train or tune on ``test``.
    """
    for stem in split_stems(split, root)[:limit]:
        for copy in range(copies):
            yield f"{stem}#{copy}", *synthetic_pair(split, stem, copy, seed, families, max_occluders, root)


def parse_key(key: str) -> tuple[str, int]:
    """``"Aaron_Peirsol_0001#2"`` -> ``("Aaron_Peirsol_0001", 2)``."""
    stem, _, copy = key.rpartition("#")
    return stem, int(copy)


# -- an unlabelled corpus of occluded photos --------------------------------------------------------
def write_synthetic_photos(folder: str | Path, split: str, copies: int = 1, seed: int = 0,
                           families: Sequence[str] | None = None, max_occluders: int = 2,
                           root: str | Path | None = None, limit: int | None = None, quality: int = 95,
                           progress: bool = True, variant: str | None = None) -> int:
    """Write the occluded photos of a split as JPEG files (native 250 px), without their labels.

    This is a corpus for ``labelgen run --source folder``: the pipeline labels
    the photos as it would any web photo, and the exact labels stay unused.
    Files are ``<stem>#<copy>.jpg``; each is written to a temporary name and
    renamed, and a file already there is kept, so a stopped call resumes.
    ``variant`` (:mod:`labelgen.eval.variants`) is applied to each photo before it is encoded.

    Returns:
        How many photos the folder holds for this call's keys.
    """
    from tqdm import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    families = tuple(default_families(split) if families is None else families)
    kinds_of(families)  # fail on a typo before anything is written
    check_variant(variant)
    keys = [(stem, copy) for stem in split_stems(split, root)[:limit] for copy in range(copies)]
    for stem, copy in tqdm(keys, unit="img", desc=f"occluding {split}", disable=not progress):
        path = folder / f"{stem}#{copy}.jpg"
        if path.exists():
            continue
        image, _ = synthetic_pair(split, stem, copy, seed, families, max_occluders, root)
        image = apply_variant(variant, image)
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {stem}#{copy}")
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data.tobytes())
        partial.rename(path)
    return len(keys)


# -- a store of synthetic pairs ---------------------------------------------------------------------
def to_store_size(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Resize a pair to the store's crop size: image by area, labels by pixel-centre nearest.

    Resampling can drop or split a blob, so blob ids are recomputed at the new
    size (8-connected, raster order), and the blob count is returned with them.
    """
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    label = cv2.resize(label, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
    label = label_occlusions(label != BACKGROUND, label > FACE)
    return image, label, max(0, int(label.max()) - 1)


def write_synthetic_store(out: str | Path, split: str, copies: int = 1, seed: int = 0,
                          families: Sequence[str] | None = None, max_occluders: int = 2, crop_size: int = 128,
                          shard_size: int = 256, root: str | Path | None = None, limit: int | None = None,
                          progress: bool = True, variant: str | None = None):
    """Write a synthetic split as a label store (the schema of :mod:`labelgen.store`), usable as training data.

    Rows are in a seeded shuffle (``seed``) of ``stem x copy``; every row is
    ``ok``. The "crop" is the whole 250 px image resized, so ``crop_matrix``
    is a plain scale. Identities are LFW's (index of the person's name, as
    :class:`labelgen.sources.lfw.LFWSource` numbers them). With ``variant``
    (:mod:`labelgen.eval.variants`) the images are that variant of each 250 px
    photo, resized after it; the labels are the clean store's (a variant moves no pixel).

    Returns:
        The :class:`~labelgen.store.LabelStore`, consolidated.
    """
    from tqdm import tqdm

    from labelgen.sources.lfw import LFWSource
    from labelgen.status import Status
    from labelgen.store import ManifestEntry, create_store, shuffled_order

    root = lfw_parts_root(root)
    families = tuple(default_families(split) if families is None else families)
    kinds_of(families)  # fail on a typo before anything is written
    check_variant(variant)
    identities = {Path(entry.key).stem: entry.identity for entry in LFWSource(root).scan()}
    entries = [ManifestEntry(f"{stem}#{copy}", identities.get(stem, -1), f"images/{stem}.jpg")
               for stem in split_stems(split, root)[:limit] for copy in range(copies)]
    entries = [entries[i] for i in shuffled_order(len(entries), seed)]
    scale = crop_size / 250.0
    store = create_store(out, entries, crop_size=crop_size, shard_size=shard_size, attributes={
        "source": {"name": "lfw_parts", "root": str(root.resolve())},
        "synthetic": {"split": split, "copies": copies, "seed": seed, "families": list(families),
                      "max_occluders": max_occluders, "limit": limit, "variant": variant or "clean", "generator":
                      "labelgen.eval.synth.synthetic_pair(split, stem, copy, seed, families, max_occluders)"},
        "manifest_order": f"numpy default_rng({seed}).permutation"})
    bar = tqdm(total=len(entries), unit="img", desc=f"synthesizing {split}", disable=not progress)
    for index in range(store.shard_count):
        started = time.perf_counter()
        rows = store.shard_rows(index)
        shard = entries[rows]
        images = np.zeros((len(shard), crop_size, crop_size, 3), np.uint8)
        labels = np.zeros((len(shard), crop_size, crop_size), np.uint8)
        blobs = np.zeros(len(shard), np.uint8)
        for row, entry in enumerate(shard):
            stem, copy = parse_key(entry.key)
            image, label = synthetic_pair(split, stem, copy, seed, families, max_occluders, root)
            images[row], labels[row], blobs[row] = to_store_size(apply_variant(variant, image), label, crop_size)
            bar.update()
        # cv2.resize maps pixel centres: crop = scale * (x + 0.5) - 0.5.
        matrix = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5]], np.float32)
        store.write_rows(rows, {"image": images, "label": labels, "blobs": blobs,
                                "status": np.full(len(shard), int(Status.OK), np.uint8),
                                "crop_matrix": np.broadcast_to(matrix, (len(shard), 2, 3))})
        store.mark_shard_done(index, {"shard": index, "rows": [rows.start, rows.stop],
                                      "counts": {Status.OK.label: len(shard)}, "errors": {},
                                      "seconds": round(time.perf_counter() - started, 3)})
    bar.close()
    store.consolidate(store.summary())
    return store
