"""LFW Part Labels (background / face / hair) as torch datasets: evaluation, validation, training.

The data lives outside the project, in ``$SVC_LFW_PARTS`` if set, else at
``<project root>/../shared/data/lfw_parts``:
``images/<stem>.jpg`` (250x250 RGB), ``labels/<stem>.png`` (uint8, 0 background,
1 face, 2 hair) and ``splits/{train,val,test}.txt`` (one stem per line).

:class:`LFWParts` reads the pairs (with their stems); :class:`LFWPartsEval` is the
validation view, :class:`LFWPartsTrain` the supervised training set: its blobs are
the connected components of each class (:func:`train.losses.blobs_from_class_map`)
or the whole class masks (:func:`train.losses.class_blobs_from_class_map`),
computed in the workers and padded into a batch table by :func:`collate_blobs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from labelgen.eval.lfw_parts import CLASS_NAMES, SPLITS, default_lfw_parts_root, load_pair, read_split
from train.evaluation.metrics import resize_nearest
from train.losses import BLOB_KINDS, blobs_from_class_map, class_blobs_from_class_map
from train.models import image_to_tensor

__all__ = ["CLASS_NAMES", "NATIVE_SIZE", "SPLITS", "LFWParts", "LFWPartsEval", "LFWPartsTrain", "collate_blobs",
           "default_lfw_parts_root", "load_pair", "read_split"]

NATIVE_SIZE = 250


class LFWParts(Dataset):
    """LFW Part Labels as a torch Dataset.

    Items are ``(image, label, stem)``:

    * ``image``: **uint8** tensor 3 x S x S, RGB on the 0..255 scale (resized with
      area interpolation). Keeping uint8 makes batches 4x smaller to move; turn
      them into network input with :func:`train.models.normalize_image`.
    * ``label``: int64 tensor S x S with 0 background, 1 face, 2 hair (resized
      nearest-neighbour, pixel-centre aligned).
    * ``stem``: the file stem, e.g. ``"Jen_Schefft_0001"``.

    Args:
        root: Dataset folder; ``None`` uses :func:`default_lfw_parts_root`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: Output side S; ``None`` keeps the native 250.
        hflip: Randomly mirror image and label with probability 0.5 (the classes
            have no left/right distinction, so labels need no remapping). Uses
            torch's RNG so DataLoader worker seeding applies.
    """

    def __init__(self, root: str | Path | None = None, split: str = "test", size: int | None = 128, hflip: bool = False):
        self.root = Path(root) if root is not None else default_lfw_parts_root()
        self.split = split
        self.size = size
        self.hflip = hflip
        self.stems = read_split(self.root, split)

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        stem = self.stems[index]
        image, label = load_pair(self.root, stem)
        if self.size is not None and image.shape[:2] != (self.size, self.size):
            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
            label = resize_nearest(label, self.size)
        if self.hflip and torch.rand(()) < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        image_t = image_to_tensor(image)
        label_t = torch.from_numpy(np.ascontiguousarray(label)).long()
        return image_t, label_t, stem


class LFWPartsTrain(Dataset):
    """LFW Part Labels as blob-labelled training data.

    Items are ``(image, blob_ids, blob_class)``: uint8 3 x S x S image, int64 S x S
    per-image blob ids and the int64 class of each blob. Flips use a generator seeded
    by ``(seed, epoch, index)``, so the augmentation is reproducible with any number
    of workers.

    Args:
        root: Dataset folder; ``None`` for the default location.
        split: Split to read (``"train"`` for training).
        size: Side S of the network input.
        hflip: Random horizontal flips.
        seed: Base seed of the flips.
        blobs: ``"components"``: the 8-connected components of each class, numbered per
            image; ``"classes"``: each whole class mask is one blob, its id the class id.
        cache: Decode and resize the whole split once, here, into two uint8 arrays
            (1,500 pairs at 128 px: about 100 MB). Workers are forked per epoch, so a
            cache filled lazily inside them would be thrown away every epoch.
    """

    def __init__(self, root=None, split: str = "train", size: int = 128, hflip: bool = True, seed: int = 0,
                 blobs: str = "components", cache: bool = False):
        if blobs not in BLOB_KINDS:
            raise ValueError(f"blobs must be one of {', '.join(BLOB_KINDS)}; got {blobs!r}")
        self.base = LFWParts(root, split=split, size=size, hflip=False)
        self.hflip = hflip
        self.seed = seed
        self.blobs = blobs
        self.epoch = 0
        self.images: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        if cache:
            pairs = [self.base[i][:2] for i in range(len(self.base))]
            self.images = np.stack([p[0].numpy() for p in pairs])
            self.labels = np.stack([p[1].numpy().astype(np.uint8) for p in pairs])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.images is not None:
            image, label = torch.from_numpy(self.images[index]), torch.from_numpy(self.labels[index]).long()
        else:
            image, label, _ = self.base[index]
        if self.hflip:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index, 0xF1]))
            if rng.random() < 0.5:
                image, label = image.flip(-1), label.flip(-1)
        if self.blobs == "classes":
            blob_ids, blob_class = class_blobs_from_class_map(label.numpy(), len(CLASS_NAMES))
        else:
            blob_ids, blob_class = blobs_from_class_map(label.numpy())
        return image.contiguous(), torch.from_numpy(blob_ids), torch.from_numpy(blob_class)


def collate_blobs(batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Stacks :class:`LFWPartsTrain` items; blob class tables are padded with -1 to N x B."""
    images = torch.stack([item[0] for item in batch])
    blob_ids = torch.stack([item[1] for item in batch])
    width = max(1, max(len(item[2]) for item in batch))
    table = torch.full((len(batch), width), -1, dtype=torch.long)
    for row, item in zip(table, batch):
        row[: len(item[2])] = item[2]
    return images, blob_ids, table


class LFWPartsEval(Dataset):
    """LFW Part Labels for validation: ``(image, class map)`` pairs without stems."""

    def __init__(self, root=None, split: str = "val", size: int = 128):
        self.base = LFWParts(root, split=split, size=size, hflip=False)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label, _ = self.base[index]
        return image, label
