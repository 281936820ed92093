"""The data of one training run: the datasets its config names, and their loaders.

:class:`TrainingData` checks the config's data options, builds the training and
validation sets (a label store split by :func:`~train.datasets.store.split_store`,
LFW Part Labels, or LFW Part Labels with occluders pasted on the fly) and hands
out one DataLoader per epoch, shared out over the DDP ranks. Each epoch's order
is a function of ``(seed, epoch, rank)`` only, so a resumed run replays it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from labelgen.eval.occluders import TRAIN_FAMILIES
from labelgen.store import LabelStore
from train.config import LFW_TRAIN_SPLITS, TrainConfig, resolve_defaults, store_paths
from train.datasets.lfw_parts import LFWPartsEval, LFWPartsTrain, collate_blobs
from train.datasets.occluded import OccludedLFWTrain, SyntheticLFWEval
from train.datasets.photometric import Photometric
from train.datasets.store import StoreDataset, StoreInfo, collate_class_maps, split_store
from train.distributed import DistEnv
from train.engine.stopping import ignore_stop_signals


class TrainingData:
    """Loaders for one run; ``train_loader(epoch)`` gives the epoch's batches.

    Training batches are ``(uint8 images, *loss targets)``: a store label map, or
    LFW blob ids and blob classes. Validation batches are ``(uint8 images, class map)``.
    """

    def __init__(self, config: TrainConfig, env: DistEnv):
        self.config = config
        self.env = env
        if config.batch_size % env.world_size:
            raise ValueError(f"batch size {config.batch_size} is not divisible by {env.world_size} processes")
        self.batch_size = config.batch_size // env.world_size
        if config.lfw_parts == bool(config.labels):
            raise ValueError("give exactly one training source: a label store, or LFW Part Labels")
        if config.occlude and not config.lfw_parts:
            raise ValueError("occlude pastes occluders on LFW Part Labels faces: it needs lfw_parts")
        if config.occluder_families and not config.occlude:
            raise ValueError("occluder families choose what occlude pastes: they need occlude")
        if config.lfw_split not in LFW_TRAIN_SPLITS:
            raise ValueError(f"lfw_split must be one of {LFW_TRAIN_SPLITS}, got {config.lfw_split!r}")
        if config.lfw_split != "train" and not config.lfw_parts:
            raise ValueError("lfw_split chooses LFW Part Labels faces: it needs lfw_parts")
        resolve_defaults(config, None)  # a no-op after Trainer's (which knows about resuming)
        _check_blobs(config)
        # Checked before anything is read: training on a half-labelled store is refused unless
        # asked for, and how complete each store was goes into config.json either way.
        self.stores = [LabelStore(path, mode="r").check_complete(config.allow_incomplete)
                       for path in store_paths(config.labels or []) + ([config.val_labels] if config.val_labels else [])]
        photometric = Photometric(config.photometric, config.photometric_strength)  # checks the options
        self.photometric = photometric if config.photometric > 0 else None
        if config.labels:
            self._init_store()
        else:
            self._init_lfw()

    def _init_store(self) -> None:
        config, env = self.config, self.env
        info = StoreInfo.read(*store_paths(config.labels))
        self.image_size = info.crop_size
        if config.val_labels:
            train_chunks, val_info, val_chunks = None, StoreInfo.read(config.val_labels), None
        else:
            train_chunks, val_chunks = split_store(info, config.val_fraction)
            val_info = info if len(val_chunks) else None
        self.train_set = StoreDataset(info, train_chunks, shuffle=True, buffer_size=config.buffer_size,
                                      hflip=config.flip, seed=config.seed, rank=env.rank, world_size=env.world_size)
        self.train_collate = None  # default collate: (images, label maps)
        self.val_set = None
        if val_info is not None and validation_needed(config):
            val_set = StoreDataset(val_info, val_chunks, shuffle=False, hflip=False, rank=env.rank,
                                   world_size=env.world_size)
            if config.val_max_images:
                val_set = _limit_store_chunks(val_set, config.val_max_images)
            self.val_set = val_set
        self.val_collate = collate_class_maps
        if self.train_set.num_full_batches(self.batch_size, config.num_workers, 0) == 0:
            raise ValueError(f"the store's training split has fewer OK images than one batch of "
                             f"{self.batch_size} per process and worker; lower --batch-size or --num-workers")

    def _init_lfw(self) -> None:
        config, env = self.config, self.env
        self.image_size = config.image_size
        if config.occlude:
            families = config.occluder_families or TRAIN_FAMILIES
            self.train_set = OccludedLFWTrain(config.lfw_root, config.lfw_split, size=config.image_size,
                                              families=families, hflip=config.flip, seed=config.seed,
                                              cache=config.cache_lfw)
            self.train_collate = None  # (images, store label maps), as from a store
        else:
            self.train_set = LFWPartsTrain(config.lfw_root, config.lfw_split, size=config.image_size,
                                           hflip=config.flip, seed=config.seed, blobs=config.blobs,
                                           cache=config.cache_lfw)
            self.train_collate = collate_blobs
        self.sampler = DistributedSampler(self.train_set, num_replicas=env.world_size, rank=env.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        self.val_set, self.val_collate = self._lfw_validation()

    def _lfw_validation(self) -> tuple[Dataset | None, Callable | None]:
        """Validation set and collate for LFW training: LFW val, its synthetic copy, or ``val_labels``
        (none when nothing reads it)."""
        config, env = self.config, self.env
        if not validation_needed(config):
            return None, None
        if config.occlude and config.val_labels:
            val_set = StoreDataset(StoreInfo.read(config.val_labels), None, shuffle=False, hflip=False,
                                   rank=env.rank, world_size=env.world_size)
            if config.val_max_images:
                val_set = _limit_store_chunks(val_set, config.val_max_images)
            return val_set, collate_class_maps
        if config.occlude:
            val_set = SyntheticLFWEval(config.lfw_root, "val", size=config.image_size, seed=config.seed,
                                       limit=config.val_max_images)
        else:
            val_set = LFWPartsEval(config.lfw_root, "val", size=config.image_size)
        indices = list(range(len(val_set)))[: config.val_max_images or None]
        # Disjoint shards without DistributedSampler's padding, so no image counts twice.
        return Subset(val_set, indices[env.rank :: env.world_size]), None

    def steps_in_epoch(self, epoch: int) -> int:
        """Optimiser steps of ``epoch``, equal on every rank."""
        if isinstance(self.train_set, StoreDataset):
            return self.train_set.num_full_batches(self.batch_size, self.config.num_workers, epoch)
        return len(self.sampler) // self.batch_size

    def train_loader(self, epoch: int) -> DataLoader:
        """A fresh loader for ``epoch`` (workers see the epoch through the pickled dataset)."""
        self.train_set.set_epoch(epoch)
        sampler = None
        if not isinstance(self.train_set, StoreDataset):
            self.sampler.set_epoch(epoch)
            sampler = self.sampler
        return DataLoader(
            self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True,
            num_workers=self.config.num_workers, collate_fn=self.train_collate,
            pin_memory=torch.cuda.is_available(),
            # An explicit generator keeps the global RNG (which dropout uses) untouched.
            generator=seeded_generator(self.config.seed, epoch, self.env.rank),
            persistent_workers=False, worker_init_fn=ignore_stop_signals)

    def augment(self, batch: tuple, epoch: int, batch_index: int) -> tuple:
        """A training batch with photometric augmentation on its images (targets unchanged).

        The draws are a function of ``(seed, epoch, rank, batch_index)``, so a resumed
        run augments the batches it replays exactly as the first run did.
        """
        if self.photometric is None:
            return batch
        images, *targets = batch
        return (self.photometric(images, (self.config.seed, epoch, self.env.rank, batch_index)), *targets)

    def val_loader(self) -> DataLoader | None:
        if self.val_set is None:
            return None
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.config.num_workers,
                          collate_fn=self.val_collate, generator=seeded_generator(self.config.seed, 99),
                          worker_init_fn=ignore_stop_signals)


def validation_needed(config: TrainConfig) -> bool:
    """Whether anything reads the validation scores: the plateau schedule, or picking the best epoch.

    A run with a flat learning rate that keeps its last epoch (``select="last"``) validates on
    nothing, so that all of LFW Part Labels' train and val faces can train it.
    """
    return config.schedule == "plateau" or config.select == "best"


def _check_blobs(config: TrainConfig) -> None:
    """Refuses blob settings that cannot hold (after :func:`~train.config.resolve_defaults`).

    Raises:
        ValueError: ``blobs="classes"`` without plain LFW Part Labels, ``official`` reductions
            with component blobs (their raw ids mean other classes in other images, and the
            official mode groups blobs by raw id over the batch), or a consensus mode for another loss.
    """
    plain_lfw = config.lfw_parts and not config.occlude
    if config.blobs != "components" and not plain_lfw:
        raise ValueError("blobs=classes chooses LFW Part Labels blobs: it needs lfw_parts without occlude "
                         "(a label store's ids are its blobs)")
    if config.consensus_mode != "default" and config.loss != "consensus":
        raise ValueError(f"consensus_mode={config.consensus_mode} sets the consensus loss's reductions; "
                         f"this run's loss is {config.loss}")
    if config.consensus_mode == "official" and plain_lfw and config.blobs != "classes":
        raise ValueError("--consensus-mode official needs --blobs classes on LFW Part Labels: it groups blobs by "
                         "their raw id over the batch, and component ids mean other classes in other images "
                         "(id 1 is a background piece in one, the face in another)")


def _limit_store_chunks(dataset: StoreDataset, max_images: int) -> StoreDataset:
    """Keeps the leading validation chunks that hold about ``max_images`` OK images."""
    counts = dataset.info.ok_per_chunk[dataset.chunks]
    keep = int(np.searchsorted(np.cumsum(counts), max_images) + 1)
    dataset.chunks = dataset.chunks[:keep]
    return dataset


def seeded_generator(*parts: int) -> torch.Generator:
    """A torch generator seeded from integers (DataLoader shuffles and worker seeds)."""
    seed = int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)
