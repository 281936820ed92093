"""Reader for LFW Part Labels (background / face / hair), the evaluation set.

The data lives outside the project, at ``<project root>/../shared/data/lfw_parts``:
``images/<stem>.jpg`` (250x250 RGB), ``labels/<stem>.png`` (uint8, 0 background,
1 face, 2 hair) and ``splits/{train,val,test}.txt`` (one stem per line).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from train.metrics import resize_nearest

SPLITS = ("train", "val", "test")
CLASS_NAMES = ("background", "face", "hair")
NATIVE_SIZE = 250


def default_lfw_parts_root(project_root: str | Path | None = None) -> Path:
    """Returns ``<project root>/../shared/data/lfw_parts``.

    Args:
        project_root: Override of the project root (the folder holding ``train/``).

    Raises:
        FileNotFoundError: If that folder does not exist (the message names the path).
    """
    if project_root is None:
        project_root = Path(__file__).resolve().parents[1]
    root = (Path(project_root).resolve().parent / "shared" / "data" / "lfw_parts").resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"LFW Part Labels not found at {root} (expected ../shared/data/lfw_parts)")
    return root


def read_split(root: str | Path, split: str) -> list[str]:
    """Stems of one split, in the official order.

    Raises:
        ValueError: For a split name other than train / val / test.
        FileNotFoundError: If the split file is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(root) / "splits" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_pair(root: str | Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads one native-size pair.

    Returns:
        ``(image, label)``: uint8 H x W x 3 RGB and uint8 H x W classes.

    Raises:
        FileNotFoundError: If either file is missing or unreadable.
    """
    root = Path(root)
    image_path, label_path = root / "images" / f"{stem}.jpg", root / "labels" / f"{stem}.png"
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {image_path}")
    if label is None:
        raise FileNotFoundError(f"cannot read label {label_path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), label


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
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        label_t = torch.from_numpy(np.ascontiguousarray(label)).long()
        return image_t, label_t, stem
