"""The training loop: data, model, optimisation, validation, checkpoints and logs.

``train(TrainConfig(...))`` runs in one process, or in each process started by
``torchrun`` (DDP; process group initialised from the environment, NCCL on
CUDA, gloo on CPU). Published settings: Adam at lr 1e-3, batch 128,
ReduceLROnPlateau on the validation mean recall (mode max, factor 0.1, down
to 1e-5).

Reproducibility: each epoch's data order and augmentation are functions of
``(seed, epoch)`` only, and checkpoints carry the RNG states of every rank, so
a resumed run continues exactly where the checkpoint was taken, mid-epoch
included (the batches already used in that epoch are read and skipped).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from labelgen.eval.occluders import TRAIN_FAMILIES
from labelgen.run_lock import FolderLock
from labelgen.store import LabelStore
from train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from train.data import (
    DEFAULT_BUFFER,
    LFWPartsEval,
    LFWPartsTrain,
    StoreDataset,
    StoreInfo,
    collate_blobs,
    collate_class_maps,
    seeded_generator,
    split_store,
)
from train.logs import MetricsLog, plot_metrics
from train.losses import create_loss
from train.metrics import ConfusionMatrix
from train.models import create_model, normalize_image
from train.occluded import OccludedLFWTrain, SyntheticLFWEval
from train.photometric import DEFAULT_PROBABILITY, DEFAULT_STRENGTH, Photometric
from train.stopping import StopRequest, TrainingInterrupted, ignore_stop_signals

# LFW Part Labels faces a run may train on; the test split never.
LFW_TRAIN_SPLITS = ("train", "train+val")


@dataclass
class TrainConfig:
    """Everything a run depends on; saved in every checkpoint and in ``config.json``.

    Attributes:
        out: Run folder (checkpoints, metrics.jsonl, curves.png, config.json).
        labels: Label store(s) to train on, mixed chunk by chunk (exclusive with ``lfw_parts``).
        lfw_parts: Train on LFW Part Labels' train split instead (validated on its val split).
        occlude: With ``lfw_parts``: paste fresh synthetic occluders on every draw and train
            background / face / occlusion (:mod:`train.occluded`); validation is then the
            synthetic val split, or ``val_labels`` if given.
        occluder_families: With ``occlude``: the occluder families pasted in training
            (``None``: :data:`labelgen.eval.occluders.TRAIN_FAMILIES`). Validation keeps the
            fixed synthetic val split of the default families, so runs stay comparable.
        lfw_root: LFW Part Labels folder; ``None`` for ``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``.
        lfw_split: LFW Part Labels faces trained on: ``"train"``, or ``"train+val"`` for a
            final phase on all 2,000 labelled faces (validation still reads the val split,
            whose faces are then seen in training: its scores become optimistic).
        val_labels: Separate validation store (then all of ``labels`` is trained on).
        val_fraction: Fraction of the store's OK images held out for validation.
        model: Registered model name.
        width: Channel multiplier of the model.
        num_classes: Output classes (3: background, face, occlusion / hair).
        loss: ``"consensus"`` or ``"ce"``.
        alpha: Label-term weight of the consensus loss.
        beta: Consensus-term weight of the consensus loss.
        epochs: Epochs to train (counting from 0, also when resuming).
        batch_size: Global batch size (split evenly over DDP processes).
        max_steps: Stop after this many optimiser steps in total (short runs).
        lr: Initial Adam learning rate.
        min_lr: Floor of the plateau schedule.
        lr_factor: Factor of each plateau reduction.
        lr_patience: Validations without improvement before a reduction.
        image_size: Network input side for LFW Part Labels (the store's crop size otherwise).
        num_workers: DataLoader workers per process.
        buffer_size: Shuffle buffer of the store reader, in samples.
        seed: Seed of the initialisation, data order and augmentation.
        device: ``"auto"`` (cuda > mps > cpu) or a torch device string.
        amp: Mixed precision (:func:`autocast_dtype`); ``None`` enables it exactly on CUDA.
        log_every: Steps between training records in metrics.jsonl.
        keep_checkpoints: Per-epoch checkpoints kept (``last.ckpt`` and ``best.ckpt`` always are).
        val_max_images: Validate on at most this many images (``None``: all).
        cache_lfw: Keep decoded LFW training pairs in memory.
        progress: Show a tqdm progress bar.
        init_weights: Start from the model weights of this checkpoint (file or run folder)
            with a fresh optimiser and schedule: fine-tuning, or a second phase at a lower
            ``lr``. Model, width and classes must match. Ignored when resuming.
        allow_incomplete: Train on stores that still have pending shards (only
            their labelled rows); refused otherwise. Either way ``config.json``
            records each store's completeness under ``label_stores``.
        photometric: Chance that a training image gets photometric augmentation
            (:mod:`train.photometric`: greyscale, colour casts, exposure, JPEG, low
            resolution, blur, noise), applied to each batch after the data set made it
            (occluders pasted); 0 is off. ``None``: a new run takes
            :data:`train.photometric.DEFAULT_PROBABILITY`, a resumed run its checkpoint's
            value (0 for checkpoints from before the option).
        photometric_strength: Scales the augmentation's ranges, in (0, 1]; ``None`` as
            for ``photometric`` (default :data:`train.photometric.DEFAULT_STRENGTH`).
    """

    out: str
    labels: str | list[str] | None = None
    lfw_parts: bool = False
    occlude: bool = False
    occluder_families: list[str] | None = None
    lfw_root: str | None = None
    lfw_split: str = "train"
    val_labels: str | None = None
    val_fraction: float = 0.05
    model: str = "faceoccnet"
    width: float = 1.0
    num_classes: int = 3
    loss: str = "consensus"
    alpha: float = 10.0
    beta: float = 5.0
    epochs: int = 30
    batch_size: int = 128
    max_steps: int | None = None
    lr: float = 1e-3
    min_lr: float = 1e-5
    lr_factor: float = 0.1
    lr_patience: int = 2
    image_size: int = 128
    num_workers: int = 2
    buffer_size: int = DEFAULT_BUFFER
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    log_every: int = 10
    keep_checkpoints: int = 2
    val_max_images: int | None = None
    cache_lfw: bool = True
    progress: bool = True
    init_weights: str | None = None
    allow_incomplete: bool = False
    photometric: float | None = None
    photometric_strength: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- environment
def store_paths(labels: str | Sequence[str]) -> list[str]:
    """``labels`` as a list of store paths (one path or several)."""
    return [labels] if isinstance(labels, (str, Path)) else [str(p) for p in labels]


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` picks CUDA (this process's local GPU), then Apple MPS, then the CPU."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str = "auto") -> DistEnv:
    """Joins the torchrun process group when ``WORLD_SIZE`` > 1 (env:// rendezvous).

    NCCL needs GPUs; gloo also runs on CPU, which is how the DDP path is tested.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistEnv()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = device_preference.startswith("cuda") or (device_preference == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistEnv(rank, world_size, local_rank)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The mixed-precision type: float16 on GPUs (with a GradScaler), bfloat16 on CPUs.

    bfloat16 keeps float32's exponent range, so it needs no loss scaling; CPUs
    with AMX or AVX-512 BF16 run FaceOccNet's training step about twice as fast
    in it (``benchmarks/train.py``).
    """
    return torch.bfloat16 if device.type == "cpu" else torch.float16


def resolve_photometric(config: TrainConfig, saved: dict | None) -> None:
    """Fills the photometric options left ``None``: a resumed run keeps its checkpoint's, a new run gets the defaults.

    Checkpoints from before the option trained without augmentation, so resuming
    one continues without it unless asked.
    """
    if config.photometric is None:
        config.photometric = DEFAULT_PROBABILITY if saved is None else saved.get("photometric", 0.0)
    if config.photometric_strength is None:
        config.photometric_strength = (saved or {}).get("photometric_strength") or DEFAULT_STRENGTH


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- data
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
        # Checked before anything is read: training on a half-labelled store is refused unless
        # asked for, and how complete each store was goes into config.json either way.
        self.stores = [LabelStore(path, mode="r").check_complete(config.allow_incomplete)
                       for path in store_paths(config.labels or []) + ([config.val_labels] if config.val_labels else [])]
        resolve_photometric(config, None)  # a no-op after Trainer's (which knows about resuming)
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
                                      hflip=True, seed=config.seed, rank=env.rank, world_size=env.world_size)
        self.train_collate = None  # default collate: (images, label maps)
        self.val_set = None
        if val_info is not None:
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
                                              families=families, hflip=True, seed=config.seed, cache=config.cache_lfw)
            self.train_collate = None  # (images, store label maps), as from a store
        else:
            self.train_set = LFWPartsTrain(config.lfw_root, config.lfw_split, size=config.image_size, hflip=True,
                                           seed=config.seed, cache=config.cache_lfw)
            self.train_collate = collate_blobs
        self.sampler = DistributedSampler(self.train_set, num_replicas=env.world_size, rank=env.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        self.val_set, self.val_collate = self._lfw_validation()

    def _lfw_validation(self) -> tuple[Dataset, Callable | None]:
        """Validation set and collate for LFW training: LFW val, its synthetic copy, or ``val_labels``."""
        config, env = self.config, self.env
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


def _limit_store_chunks(dataset: StoreDataset, max_images: int) -> StoreDataset:
    """Keeps the leading validation chunks that hold about ``max_images`` OK images."""
    counts = dataset.info.ok_per_chunk[dataset.chunks]
    keep = int(np.searchsorted(np.cumsum(counts), max_images) + 1)
    dataset.chunks = dataset.chunks[:keep]
    return dataset


# --------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(model: nn.Module, loader: Iterable, num_classes: int, device: torch.device, amp: bool,
             env: DistEnv = DistEnv()) -> dict:
    """Scores the model on a loader of ``(images, class maps)`` with one confusion matrix.

    In DDP each rank scores its shard and the matrices are summed.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=None)
    for images, classes in loader:
        with torch.autocast(device_type=device.type, dtype=autocast_dtype(device), enabled=amp):
            logits = model(normalize_image(images.to(device, non_blocking=True)))
        cm.update(logits.argmax(1).cpu(), classes)
    if env.distributed:
        matrix = torch.from_numpy(cm.matrix).to(device)
        dist.all_reduce(matrix)
        cm.matrix = matrix.cpu().numpy()
    model.train(was_training)
    scores = cm.compute()
    return {
        "mean_recall": scores["mean_recall"],
        "miou": scores["miou"],
        "pixel_acc": scores["pixel_acc"],
        "iou": scores["iou"].tolist(),
        "recall": scores["recall"].tolist(),
        "pixels": int(cm.matrix.sum()),
    }


# --------------------------------------------------------------------------- training
def _gather_rng(env: DistEnv) -> list[dict]:
    state = rng_state()
    if not env.distributed:
        return [state]
    states: list = [None] * env.world_size
    dist.all_gather_object(states, state)
    return states


def _reduce_mean(value: float, env: DistEnv, device: torch.device) -> float:
    if not env.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / env.world_size


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, leave=False)


class Trainer:
    """One training run; :meth:`fit` trains, validates, logs and checkpoints.

    Args:
        config: The run's settings.
        env: Distributed position (``None``: initialise from the environment).
        resume: Checkpoint file or run folder to continue from.
    """

    def __init__(self, config: TrainConfig, env: DistEnv | None = None, resume: str | Path | None = None):
        self.config = config
        self.env = env if env is not None else init_distributed(config.device)
        self.device = select_device(config.device, self.env.local_rank)
        # Mixed precision where it is tested: float16 on CUDA, bfloat16 on CPU (not on MPS).
        self.amp = (self.device.type == "cuda") if config.amp is None else bool(
            config.amp and self.device.type in ("cuda", "cpu"))
        self.out = Path(config.out)
        self.ckpt_dir = self.out / "checkpoints"

        payload = load_checkpoint(resume) if resume else None
        if payload is not None:
            _check_compatible(payload["config"], config)
        resolve_photometric(config, payload["config"] if payload is not None else None)
        seed_everything(config.seed + self.env.rank)  # ranks differ in dropout, agree in init (DDP broadcasts)
        self.data = TrainingData(config, self.env)
        self.model = create_model(config.model, num_classes=config.num_classes, width=config.width).to(self.device)
        self.net: nn.Module = self.model
        if self.env.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.loss_fn = create_loss(config.loss, **({"alpha": config.alpha, "beta": config.beta}
                                                   if config.loss == "consensus" else {}))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp and autocast_dtype(self.device) == torch.float16)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best = -math.inf
        if payload is not None:
            self._restore(payload)
        elif config.init_weights:
            start = load_checkpoint(config.init_weights)
            for key in ("model", "width", "num_classes"):
                if start["config"].get(key) != getattr(config, key):
                    raise ValueError(f"cannot start from {config.init_weights}: it has {key}="
                                     f"{start['config'].get(key)!r}, this run asks for {getattr(config, key)!r}")
            self.model.load_state_dict(start["model"])
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps({**config.to_dict(), "label_stores": self.data.stores},
                                                             indent=1))
            self.log = MetricsLog(self.out / "metrics.jsonl", resume_step=self.step if payload else None)

    # -- state ----------------------------------------------------------------------------
    def _restore(self, payload: dict) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        self.step, self.epoch = int(payload["step"]), int(payload["epoch"])
        self.batch_in_epoch = int(payload["batch_in_epoch"])
        self.best = float(payload.get("best", -math.inf))
        states = payload["rng"]
        if self.env.rank < len(states):
            set_rng_state(states[self.env.rank])
        else:  # more processes than when saved: a fresh, distinct stream for the new ranks
            seed_everything(self.config.seed + self.env.rank + 7919 * self.step)

    def _payload(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "best": self.best,
            "rng": _gather_rng(self.env),
            "config": self.config.to_dict(),
            "world_size": self.env.world_size,
        }

    def save(self, epoch_end: bool, improved: bool = False) -> None:
        """Writes last.ckpt (and epoch / best copies); every rank joins the RNG gather."""
        payload = self._payload()
        if not self.env.is_main:
            return
        save_checkpoint(self.ckpt_dir / "last.ckpt", payload)
        if improved:
            save_checkpoint(self.ckpt_dir / "best.ckpt", payload)
        if epoch_end:
            save_checkpoint(self.ckpt_dir / f"epoch_{self.epoch:03d}.ckpt", payload)
            old = sorted(self.ckpt_dir.glob("epoch_*.ckpt"))[: -self.config.keep_checkpoints or None]
            for path in old if self.config.keep_checkpoints > 0 else []:
                path.unlink()

    # -- loop -----------------------------------------------------------------------------
    def train_step(self, batch: tuple) -> float:
        images, *targets = batch
        images = normalize_image(images.to(self.device, non_blocking=True))
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        with torch.autocast(device_type=self.device.type, dtype=autocast_dtype(self.device), enabled=self.amp):
            logits = self.net(images)
        # The loss runs in float32: the consensus KL terms are too small for half precision.
        loss = self.loss_fn(logits.float(), *targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def run_validation(self) -> dict | None:
        loader = self.data.val_loader()
        if loader is None:
            return None
        # The bare module, not the DDP wrapper: DDP syncs buffers on every forward, which
        # deadlocks when ranks hold different numbers of validation batches.
        return validate(self.model, loader, self.config.num_classes, self.device, self.amp, self.env)

    def _stop_requested(self, stop: StopRequest | None) -> bool:
        """Whether any rank got a stop signal (every rank calls this at the same steps)."""
        requested = stop is not None and stop.signum is not None
        if not self.env.distributed:
            return requested
        flag = torch.tensor([float(requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _interrupted(self, stop: StopRequest | None) -> TrainingInterrupted:
        signum = stop.signum if stop is not None and stop.signum is not None else signal.SIGTERM  # another rank's
        checkpoint = self.ckpt_dir / "last.ckpt"
        return TrainingInterrupted(signum, self.step, str(checkpoint) if checkpoint.is_file() else None)

    def fit(self, stop: StopRequest | None = None) -> dict:
        """Trains until ``epochs`` or ``max_steps``; returns a summary of the last state.

        Args:
            stop: When its signal comes, the run stops after the current step and
                saves ``last.ckpt`` (see :mod:`train.stopping`).

        Raises:
            TrainingInterrupted: ``stop`` got a signal; every step done is in ``last.ckpt``.
        """
        config, env = self.config, self.env
        max_steps = config.max_steps if config.max_steps is not None else math.inf
        last_val = None
        losses: list[float] = []
        while self.epoch < config.epochs and self.step < max_steps:
            if self._stop_requested(stop):  # the last step done is already saved
                raise self._interrupted(stop)
            steps = self.data.steps_in_epoch(self.epoch)
            if steps == 0:
                raise RuntimeError("an epoch has no full batch; lower --batch-size or --num-workers")
            bar = _progress(steps, self.batch_in_epoch, f"epoch {self.epoch + 1}/{config.epochs}", config.progress and env.is_main)
            batches = iter(self.data.train_loader(self.epoch))
            for _ in range(self.batch_in_epoch):  # mid-epoch resume: replay the epoch's order
                next(batches)
            self.net.train()
            window_start, window_images = time.perf_counter(), 0
            stopping = False
            while self.batch_in_epoch < steps and self.step < max_steps:
                stopping = self._stop_requested(stop)
                if stopping:
                    break
                batch = self.data.augment(next(batches), self.epoch, self.batch_in_epoch)
                loss = self.train_step(batch)
                losses.append(loss)
                self.step += 1
                self.batch_in_epoch += 1
                window_images += len(batch[0]) * env.world_size
                elapsed = time.perf_counter() - window_start
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{window_images / max(elapsed, 1e-9):.1f}")
                if self.step % config.log_every == 0 or self.batch_in_epoch == steps:
                    mean_loss = _reduce_mean(float(np.mean(losses)), env, self.device)
                    if env.is_main:
                        self.log.write({"kind": "train", "step": self.step, "epoch": self.epoch, "loss": mean_loss,
                                        "lr": self.optimizer.param_groups[0]["lr"],
                                        "images_per_s": window_images / max(elapsed, 1e-9)})
                    losses.clear()
                    window_start, window_images = time.perf_counter(), 0
            bar.close()
            del batches  # stops this epoch's workers before validation starts its own
            epoch_done = self.batch_in_epoch >= steps
            if stopping:  # mid-epoch: save the steps done, skip validation
                self.save(epoch_end=False)
                raise self._interrupted(stop)
            last_val = self.run_validation()
            improved = False
            if last_val is not None and env.is_main:
                self.log.write({"kind": "val", "step": self.step, "epoch": self.epoch,
                                "complete_epoch": epoch_done, **last_val})
            if epoch_done:
                if last_val is not None and math.isfinite(last_val["mean_recall"]):
                    # Only whole epochs step the schedule, so a run cut by --max-steps and
                    # resumed follows the same schedule as one that never stopped.
                    self.scheduler.step(last_val["mean_recall"])
                    improved = last_val["mean_recall"] > self.best
                    self.best = max(self.best, last_val["mean_recall"])
                self.epoch += 1
                self.batch_in_epoch = 0
            self.save(epoch_end=epoch_done, improved=improved)
            if env.is_main:
                plot_metrics(self.out / "metrics.jsonl", self.out / "curves.png")
                if last_val is not None:
                    _echo_validation(self.epoch if epoch_done else self.epoch + 1, self.step, last_val)
        return {"step": self.step, "epoch": self.epoch, "validation": last_val, "out": str(self.out)}


def _echo_validation(epoch: int, step: int, scores: dict) -> None:
    iou = " / ".join(f"{100 * v:.2f}" for v in scores["iou"])
    print(f"epoch {epoch} step {step}: val mean recall {100 * scores['mean_recall']:.2f}, "
          f"mIoU {100 * scores['miou']:.2f} (per class {iou}), pixel acc {100 * scores['pixel_acc']:.2f}",
          file=sys.stderr, flush=True)


def _check_compatible(saved: dict, config: TrainConfig) -> None:
    """Refuses to resume into a different architecture or data source."""
    for key in ("model", "width", "num_classes", "lfw_parts", "occlude"):
        if saved.get(key, getattr(TrainConfig, key, None)) != getattr(config, key):
            raise ValueError(f"cannot resume: checkpoint has {key}={saved.get(key)!r}, "
                             f"this run asks for {getattr(config, key)!r}")


def _run_folder_lock(out: str, env: DistEnv):
    """The main process locks the run folder (``run.lock``): a second training of the same folder is refused.

    Raises:
        FolderLocked: another live process trains into ``out`` (the message names it).
    """
    if not env.is_main:
        return contextlib.nullcontext()
    Path(out).mkdir(parents=True, exist_ok=True)
    return FolderLock(out, holder="svc-train")


def train(config: TrainConfig, resume: str | None = None) -> dict:
    """Runs a whole training job (any DDP setup is torn down at the end).

    Args:
        config: Run settings.
        resume: Checkpoint file or run folder to continue from.

    Returns:
        Summary dict: final ``step``, ``epoch``, last ``validation`` scores, ``out``.

    Raises:
        TrainingInterrupted: SIGINT or SIGTERM stopped it; every step done is in ``last.ckpt``.
        FolderLocked: another process trains into ``config.out``.
    """
    env = init_distributed(config.device)
    try:
        with StopRequest() as stop, _run_folder_lock(config.out, env):
            trainer = Trainer(config, env, resume)
            return trainer.fit(stop)
    finally:
        if env.distributed and dist.is_initialized():
            dist.destroy_process_group()
