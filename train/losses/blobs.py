"""Blob conventions shared by the losses.

A *blob* is a set of pixels that must agree on one class (a connected occlusion,
the face region, the background, ...). The losses take blobs in one format:

* ``blob_ids``: integer tensor N x H x W of **per-image** blob ids in
  ``[0, B)``; pixels with a negative id (or ``ignore_index``) belong to no blob.
* ``blob_class``: integer tensor N x B (one row per image, padded with -1) or
  B (shared by every image) giving the class of each blob id; a negative class
  drops the blob.

Two sources produce that format:

* The pseudo-label store's label map: 0 = background, 1 = face, and every id
  >= 2 one occlusion blob, so the label map *is* the blob id map and a blob's
  class is ``min(id, 2)`` (:func:`blob_ids_from_label_map`).
* Part-labelled data such as LFW Part Labels, where blobs are the connected
  components of each class (:func:`blobs_from_class_map`), or each whole class
  mask (:func:`class_blobs_from_class_map`; the paper's LFW fine-tuning).

The reductions of the consensus loss's ``official`` mode group blobs by their raw id
over the batch, so they need ids that mean the same class in every image: the store's
(0 background, 1 face, every id >= 2 an occlusion) and class blobs' (id = class) do;
components' ids do not (id 1 is a second background piece in one image, the face in another).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

OCCLUSION_CLASS = 2  # class of every store id >= 2
# What a blob of a part-labelled image is: a connected component of a class, or a whole class mask.
BLOB_KINDS = ("components", "classes")


def _as_long_maps(label_map: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Returns ``label_map`` as an int64 N x H x W tensor (accepts H x W and N x 1 x H x W)."""
    x = torch.as_tensor(label_map)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected an H x W, N x H x W or N x 1 x H x W map, got shape {tuple(x.shape)}")
    return x.long()


def class_map_from_label_map(label_map: torch.Tensor | np.ndarray, ignore_index: int = -1) -> torch.Tensor:
    """Per-pixel classes of a store label map: ``min(id, 2)``; negative ids -> ``ignore_index``.

    Args:
        label_map: Store label map, H x W, N x H x W or N x 1 x H x W.
        ignore_index: Class written for ignored (negative) pixels.

    Returns:
        int64 N x H x W class map.
    """
    ids = _as_long_maps(label_map)
    cls = ids.clamp(max=OCCLUSION_CLASS)
    return torch.where(ids < 0, torch.full_like(cls, ignore_index), cls)


def blob_ids_from_label_map(label_map: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Blobs of a store label map.

    The store's ids are already per-image blob ids: 0 (all background pixels of
    the image) and 1 (all face pixels) are one blob each, and each occlusion has
    its own id >= 2. Negative values mark ignored pixels.

    Args:
        label_map: Store label map, H x W, N x H x W or N x 1 x H x W, any integer dtype.

    Returns:
        ``(blob_ids, blob_class)``: int64 N x H x W (negatives mapped to -1) and
        the shared int64 table ``min(arange(B), 2)`` with ``B = max id + 1``.
    """
    ids = _as_long_maps(label_map)
    ids = ids.clamp(min=-1)
    num_ids = int(ids.max().item()) + 1 if ids.numel() else 0
    table = torch.arange(max(num_ids, 1), device=ids.device).clamp(max=OCCLUSION_CLASS)
    return ids, table


def _structure(connectivity: int) -> np.ndarray:
    if connectivity == 8:
        return np.ones((3, 3), dtype=bool)
    if connectivity == 4:
        return ndi.generate_binary_structure(2, 1)
    raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")


def blobs_from_class_map(
    class_map: np.ndarray | torch.Tensor, connectivity: int = 8, ignore_index: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Blobs of a part-labelled image: the connected components of each class.

    Every class, background included, is split into its connected components so
    that e.g. two separate hair regions must each agree internally but not with
    each other.

    Args:
        class_map: H x W integer class map (numpy or CPU tensor).
        connectivity: 8 (diagonal neighbours connect) or 4.
        ignore_index: Pixels with this value, or any negative value, get blob id -1.

    Returns:
        ``(blob_ids, blob_class)``: int64 H x W ids in ``[0, B)`` (-1 where
        ignored), numbered class by class in increasing class order, and the int64
        B-vector of their classes.
    """
    cm = np.asarray(torch.as_tensor(class_map).cpu()).astype(np.int64)
    if cm.ndim != 2:
        raise ValueError(f"expected an H x W class map, got shape {cm.shape}")
    structure = _structure(connectivity)
    blob_ids = np.full(cm.shape, -1, dtype=np.int64)
    classes: list[np.ndarray] = []
    next_id = 0
    ignored = (cm < 0) | (cm == ignore_index)
    for c in np.unique(cm[~ignored]):
        comp, count = ndi.label(cm == c, structure=structure)
        inside = comp > 0
        blob_ids[inside] = comp[inside] - 1 + next_id
        classes.append(np.full(count, c, dtype=np.int64))
        next_id += count
    blob_class = np.concatenate(classes) if classes else np.zeros(0, dtype=np.int64)
    return blob_ids, blob_class


def class_blobs_from_class_map(
    class_map: np.ndarray | torch.Tensor, num_classes: int, ignore_index: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Blobs of a part-labelled image taken as whole class masks: blob id = class id.

    All pixels of a class are one blob, however many pieces they form ("we simply
    treat the separate mask classes as the blobs", Masi et al., Sec. 5). Since the id
    is the class, id v means class v in every image of a batch.

    Args:
        class_map: H x W integer class map with classes in ``[0, num_classes)``.
        num_classes: Classes of the data; the class table is ``arange(num_classes)``.
        ignore_index: Pixels with this value, or any negative value, get blob id -1.

    Returns:
        ``(blob_ids, blob_class)`` as :func:`blobs_from_class_map` returns them.

    Raises:
        ValueError: For a map that is not H x W, or a class outside ``[0, num_classes)``.

    Example:
        >>> ids, table = class_blobs_from_class_map(np.array([[2, 0, 2], [1, 0, 255]]), 3, ignore_index=255)
        >>> ids.tolist(), table.tolist()
        ([[2, 0, 2], [1, 0, -1]], [0, 1, 2])
    """
    cm = np.asarray(torch.as_tensor(class_map).cpu()).astype(np.int64)
    if cm.ndim != 2:
        raise ValueError(f"expected an H x W class map, got shape {cm.shape}")
    ignored = (cm < 0) | (cm == ignore_index)
    if (cm[~ignored] >= num_classes).any():
        raise ValueError(f"class {int(cm[~ignored].max())} is outside the {num_classes} classes")
    return np.where(ignored, -1, cm), np.arange(num_classes, dtype=np.int64)


def blobs_from_class_maps(
    class_maps: Sequence[np.ndarray] | np.ndarray | torch.Tensor, connectivity: int = 8, ignore_index: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched :func:`blobs_from_class_map` producing the losses' input format.

    Args:
        class_maps: N x H x W class maps (array, tensor or sequence of H x W maps).
        connectivity: 8 or 4.
        ignore_index: Ignored class value (negatives are always ignored).

    Returns:
        ``(blob_ids, blob_class)``: int64 N x H x W tensor and int64 N x B tensor,
        rows padded with -1 to the largest blob count B of the batch.
    """
    per_image = [blobs_from_class_map(cm, connectivity, ignore_index) for cm in class_maps]
    num_blobs = max((len(cls) for _, cls in per_image), default=0)
    table = np.full((len(per_image), max(num_blobs, 1)), -1, dtype=np.int64)
    for row, (_, cls) in zip(table, per_image):
        row[: len(cls)] = cls
    ids = np.stack([ids for ids, _ in per_image]) if per_image else np.zeros((0, 0, 0), np.int64)
    return torch.from_numpy(ids), torch.from_numpy(table)


def class_map_from_blobs(
    blob_ids: torch.Tensor, blob_class: torch.Tensor, ignore_index: int = -1
) -> torch.Tensor:
    """Per-pixel classes from blob ids and their class table.

    Args:
        blob_ids: N x H x W per-image blob ids (negative = no blob).
        blob_class: N x B or B class table (negative = dropped blob).
        ignore_index: Class written where the pixel has no blob or a dropped blob.

    Returns:
        int64 N x H x W class map.

    Raises:
        ValueError: If an id has no entry in the class table.
    """
    ids = _as_long_maps(blob_ids)
    table = _expand_table(blob_class, ids.shape[0]).to(ids.device)
    flat = ids.reshape(ids.shape[0], -1)
    _check_ids(flat[flat >= 0], table)
    cls = torch.gather(table, 1, flat.clamp(0, table.shape[1] - 1))
    cls = torch.where((flat < 0) | (cls < 0), torch.full_like(cls, ignore_index), cls)
    return cls.reshape(ids.shape)


def _expand_table(blob_class: torch.Tensor | np.ndarray, n: int) -> torch.Tensor:
    """Returns the class table as int64 N x B (broadcasting a shared B-vector)."""
    table = torch.as_tensor(blob_class).long()
    if table.ndim == 1:
        return table.unsqueeze(0).expand(n, -1)
    if table.ndim != 2 or table.shape[0] != n:
        raise ValueError(f"blob_class must be B or N x B with N={n}, got shape {tuple(table.shape)}")
    return table


def _check_ids(ids: torch.Tensor, table: torch.Tensor) -> None:
    """Raises ValueError if any (non-ignored) id is past the end of the class table."""
    if ids.numel() and int(ids.max()) >= table.shape[1]:
        raise ValueError(f"blob id {int(ids.max())} has no entry in a blob_class table of size {table.shape[1]}")


def _prepare(
    logits: torch.Tensor, blob_ids: torch.Tensor, blob_class: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validates inputs; returns (ids N x HW, table N x B, valid-pixel mask N x HW)."""
    if logits.ndim != 4:
        raise ValueError(f"logits must be N x C x H x W, got shape {tuple(logits.shape)}")
    n, _, h, w = logits.shape
    ids = _as_long_maps(blob_ids).to(logits.device)
    if ids.shape != (n, h, w):
        raise ValueError(f"blob_ids shape {tuple(ids.shape)} does not match logits {(n, h, w)}")
    table = _expand_table(blob_class, n).to(logits.device)
    ids = ids.reshape(n, -1)
    in_blob = (ids >= 0) & (ids != ignore_index)
    _check_ids(ids[in_blob], table)
    if table.numel() and int(table.max()) >= logits.shape[1]:
        raise ValueError(f"blob class {int(table.max())} >= number of classes {logits.shape[1]}")
    pixel_class = torch.gather(table, 1, ids.clamp(0, table.shape[1] - 1))
    valid = in_blob & (pixel_class >= 0)
    return ids, table, valid


def blob_statistics(logits: torch.Tensor, blob_ids: torch.Tensor, blob_class: torch.Tensor, ignore_index: int):
    """Per-blob sufficient statistics of the predictions, all blobs of the batch at once.

    Shared by the consensus loss and the blob-weighted cross-entropy control.

    Returns:
        Dict with ``log_m`` (nb x C, log of the blob mean prediction),
        ``mean_log_p`` (nb x C, mean log-probability over the blob), ``size``
        (nb, pixels), ``cls`` (nb, class), ``raw_id`` (nb, the per-image id),
        or ``None`` when the batch holds no blob.
    """
    n, c = logits.shape[:2]
    ids, table, valid = _prepare(logits, blob_ids, blob_class, ignore_index)
    num_ids = table.shape[1]
    # Offsetting by image index makes ids unique across the batch, and the offset
    # key also indexes the flattened class table directly.
    key = ids + torch.arange(n, device=ids.device).unsqueeze(1) * num_ids
    valid = valid.reshape(-1)
    key = key.reshape(-1)[valid]
    if key.numel() == 0:
        return None
    blob_key, blob_of_pixel, size = torch.unique(key, return_inverse=True, return_counts=True)
    nb = blob_key.numel()

    # Half precision would lose the small KL values; work in at least float32.
    work = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    log_p = F.log_softmax(work, dim=1).permute(0, 2, 3, 1).reshape(-1, c)[valid]

    # log m_b = logsumexp_{s in S_b} log p(s) - log |S_b|. The per-blob max is only a
    # shift for stability (the result does not depend on it), so it is detached.
    index = blob_of_pixel.unsqueeze(1).expand(-1, c)
    shift = torch.full((nb, c), -math.inf, dtype=log_p.dtype, device=log_p.device)
    shift = shift.scatter_reduce(0, index, log_p.detach(), reduce="amax", include_self=True)
    # Each blob's arg-max pixel contributes exp(0) = 1, so the sum is >= 1: no log(0).
    sum_exp = torch.zeros_like(shift).index_add(0, blob_of_pixel, torch.exp(log_p - shift[blob_of_pixel]))
    size_f = size.to(log_p.dtype).unsqueeze(1)
    log_m = torch.log(sum_exp) + shift - torch.log(size_f)
    mean_log_p = torch.zeros_like(shift).index_add(0, blob_of_pixel, log_p) / size_f
    return {
        "log_m": log_m,
        "mean_log_p": mean_log_p,
        "size": size,
        "cls": table.reshape(-1)[blob_key],
        "raw_id": blob_key % num_ids,
    }
