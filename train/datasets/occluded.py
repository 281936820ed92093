"""LFW Part Labels with synthetic occluders pasted on the fly: teacher training data.

The paper's teacher was trained on hand-labelled faces "+ occlusion augmentation".
:class:`OccludedLFWTrain` is that augmentation: every time an image is drawn, new
occluders from :mod:`labelgen.eval.occluders` are pasted onto it
(:func:`labelgen.eval.synth.synthesize`), so the network never sees the same occlusion
twice. Items use the label-store convention (0 background, 1 visible face,
2.. one id per occluder blob), so the same losses and collate as a store apply.

Randomness is a function of ``(seed, epoch, index)`` only, so a run is
reproducible with any number of DataLoader workers and resumes exactly.

:class:`SyntheticLFWEval` is the matching validation set: the fixed synthetic
pairs of :func:`labelgen.eval.synth.synthetic_pair` (the same pixels ``labelgen synth
--split val`` writes), scored as class maps (0 background, 1 face, 2 occlusion).

Example (needs LFW Part Labels: ``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``):
    >>> data = OccludedLFWTrain(split="val", size=64, limit=2)
    >>> image, label = data[0]
    >>> image.shape, image.dtype, label.shape, label.dtype
    (torch.Size([3, 64, 64]), torch.uint8, torch.Size([64, 64]), torch.uint8)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from labelgen.eval.occluders import TRAIN_FAMILIES, kinds_of
from labelgen.eval.synth import load_face, lfw_parts_root, split_stems, synthesize, synthetic_pair, to_store_size
from train.losses import class_map_from_label_map
from train.models import image_to_tensor


def _to_tensors(image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H x W x 3, H x W)`` numpy -> ``(3 x H x W uint8, H x W uint8)`` contiguous tensors."""
    return image_to_tensor(image), torch.from_numpy(np.ascontiguousarray(label))


class OccludedLFWTrain(Dataset):
    """LFW Part Labels faces with fresh random occluders on every draw.

    Items are ``(image, label_map)``: uint8 3 x S x S RGB and uint8 S x S store
    labels. The occluders are pasted at the native 250 px, then the pair is
    resized to S exactly as ``labelgen synth`` resizes its stores.

    Args:
        root: LFW Part Labels folder; ``None`` for ``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``.
        split: Official split whose faces are used (``train`` or ``train+val``; never ``test``).
        size: Side S of the network input.
        families: Occluder families to draw from (the training families by default,
            so the test split's held-out families stay unseen).
        max_occluders: Up to this many occluders per image (0 is drawn too: clean faces).
        hflip: Random horizontal flips.
        seed: Base seed of occluders and flips.
        limit: Use only the first ``limit`` stems of the split (tests, smoke runs).
        cache: Decode the split's images and face masks once, here (1,500 images:
            about 375 MB), instead of reading two files per draw.
    """

    def __init__(self, root: str | Path | None = None, split: str = "train", size: int = 128,
                 families: Sequence[str] = TRAIN_FAMILIES, max_occluders: int = 2, hflip: bool = True,
                 seed: int = 0, limit: int | None = None, cache: bool = True):
        if "test" in split.split("+"):
            raise ValueError("the test split is for evaluation only; train on 'train' (or 'train+val')")
        kinds_of(families)  # fail on a typo now, not inside a worker
        self.root = lfw_parts_root(root)
        self.stems = split_stems(split, self.root)[:limit]
        self.size = size
        self.families = tuple(families)
        self.max_occluders = max_occluders
        self.hflip = hflip
        self.seed = seed
        self.epoch = 0
        self.faces: list[tuple[np.ndarray, np.ndarray]] | None = None
        if cache:
            self.faces = [load_face(stem, self.root) for stem in self.stems]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, face_mask = self.faces[index] if self.faces is not None else load_face(self.stems[index], self.root)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index, 0x0CC]))
        image, label = synthesize(image, face_mask, rng, self.families, self.max_occluders)
        image, label, _ = to_store_size(image, label, self.size)
        if self.hflip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]  # blob ids need no change under a flip
        return _to_tensors(image, label)


class SyntheticLFWEval(Dataset):
    """The fixed synthetic pairs of one split as ``(image, class map)`` for validation.

    Pixel for pixel the rows of ``labelgen synth --split SPLIT --copies 1 --seed SEED``
    at crop size S (class = min(label id, 2): 0 background, 1 face, 2 occlusion).

    Args:
        root: LFW Part Labels folder; ``None`` for the default.
        split: ``val`` for validation during training.
        size: Side S.
        seed: Seed of the synthetic set.
        families: Occluder families; ``None`` for the split's default.
        limit: Use only the first ``limit`` stems.

    The pairs are made once, here (500 at 128 px: 33 MB), since validation runs every epoch.
    """

    def __init__(self, root: str | Path | None = None, split: str = "val", size: int = 128, seed: int = 0,
                 families: Sequence[str] | None = None, limit: int | None = None):
        root = lfw_parts_root(root)
        self.pairs = []
        for stem in split_stems(split, root)[:limit]:
            image, label, _ = to_store_size(*synthetic_pair(split, stem, 0, seed, families, root=root), size)
            image, label = _to_tensors(image, label)
            self.pairs.append((image, class_map_from_label_map(label)[0]))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pairs[index]
