"""Reader for LFW Part Labels (background / face / hair), the evaluation set.

The data lives outside the project, in ``$SVC_LFW_PARTS`` if set, else at
``<project root>/../shared/data/lfw_parts``:
``images/<stem>.jpg`` (250x250 RGB), ``labels/<stem>.png`` (uint8, 0 background,
1 face, 2 hair) and ``splits/{train,val,test}.txt`` (one stem per line).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from labelgen.eval.lfw_parts import CLASS_NAMES, SPLITS, default_lfw_parts_root, load_pair, read_split
from train.metrics import resize_nearest
from train.models import image_to_tensor

__all__ = ["CLASS_NAMES", "NATIVE_SIZE", "SPLITS", "LFWParts", "default_lfw_parts_root", "load_pair", "read_split"]

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
