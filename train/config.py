"""The settings of a training run, saved in every checkpoint and in the run's ``config.json``.

:class:`TrainConfig` holds everything a run depends on; :func:`resolve_defaults`
fills the options left unset (a resumed run keeps its checkpoint's values, a new run
gets today's defaults), and :func:`check_compatible` refuses to resume a checkpoint
into another network or data source.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from train.datasets.photometric import DEFAULT_PROBABILITY, DEFAULT_STRENGTH
from train.datasets.store import DEFAULT_BUFFER
from train.losses.blobs import BLOB_KINDS
from train.losses.consensus import MODES as CONSENSUS_MODES
from train.models.faceoccnet import DEFAULT_DROPOUT

# LFW Part Labels faces a run may train on; the test split never.
LFW_TRAIN_SPLITS = ("train", "train+val")
# How the learning rate moves: down 10x when validation stops improving, or not at all.
SCHEDULES = ("plateau", "flat")
# Which checkpoint is the run's result (best.ckpt): the best by validation mean recall, or the last whole epoch.
SELECTIONS = ("best", "last")

# Weight of the distillation term (--distill): the consensus loss's label term has alpha = 10 on a per-pixel
# mean log-loss, and the distillation term is a per-pixel mean log-loss too, so 10 weighs them alike.
DEFAULT_DISTILL_WEIGHT = 10.0

# DataLoader workers per process when --num-workers is not given. On a CPU the loaders share the cores with
# the training step, so few; on a GPU the step is fast and the loaders are the limit (an H200 with 16 cores:
# 837 images/s with 4, 1,147 with 12, docs/benchmarks.md), so one per core, up to 12 (the most measured).
CPU_LOADER_WORKERS = 2
GPU_LOADER_WORKERS_MAX = 12


def default_loader_workers(device_type: str, cores: int, processes: int = 1) -> int:
    """DataLoader workers per training process: ``CPU_LOADER_WORKERS`` off CUDA; on CUDA, the cores per process.

    Example:
        >>> default_loader_workers("cpu", 16), default_loader_workers("cuda", 16), default_loader_workers("cuda", 16, 4)
        (2, 12, 4)
    """
    if device_type != "cuda":
        return CPU_LOADER_WORKERS
    return max(CPU_LOADER_WORKERS, min(GPU_LOADER_WORKERS_MAX, cores // max(1, processes)))


# The options a run records and ``--resume`` keeps: ``(default of a new run, value for a run
# saved before the option existed)``. The second is what such a run did, so it resumes unchanged.
RESUMED_OPTIONS = {
    "photometric": (DEFAULT_PROBABILITY, 0.0),  # older runs trained without augmentation
    "photometric_strength": (DEFAULT_STRENGTH, DEFAULT_STRENGTH),
    "consensus_mode": ("default", "default"),
    "blobs": ("components", "components"),
    "dropout": (DEFAULT_DROPOUT, DEFAULT_DROPOUT),
    "flip": (True, True),
    "schedule": ("plateau", "plateau"),
    "select": ("best", "best"),
    "distill": (None, None),
    "distill_weight": (DEFAULT_DISTILL_WEIGHT, DEFAULT_DISTILL_WEIGHT),
    # A store's data order depends on the loader count. A new run's default depends on the device, so the
    # trainer passes it (default_loader_workers); without one, the CPU's.
    "num_workers": (CPU_LOADER_WORKERS, CPU_LOADER_WORKERS),
}


@dataclass
class TrainConfig:
    """Everything a run depends on; saved in every checkpoint and in ``config.json``.

    Attributes:
        out: Run folder (checkpoints, metrics.jsonl, curves.png, config.json).
        labels: Label store(s) to train on, mixed chunk by chunk (exclusive with ``lfw_parts``).
        lfw_parts: Train on LFW Part Labels' train split instead (validated on its val split).
        occlude: With ``lfw_parts``: paste fresh synthetic occluders on every draw and train
            background / face / occlusion (:mod:`train.datasets.occluded`); validation is then the
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
        loss: ``"consensus"``, ``"ce"`` or ``"ce-blob"`` (cross-entropy with every blob weighted
            equally, the paper's Eq. 5: the control between the two).
        alpha: Label-term weight of the consensus loss.
        beta: Consensus-term weight of the consensus loss.
        consensus_mode: The consensus loss's reductions (:func:`train.losses.consensus_loss`):
            ``"default"``, or ``"official"`` as the authors' release computes them (blobs grouped by
            their raw id over the batch; with LFW Part Labels it needs ``blobs="classes"``).
        blobs: LFW Part Labels blobs (without ``occlude``): ``"components"``, the connected
            components of each class, or ``"classes"``, each whole class mask one blob whose id is
            the class id (the paper's "separate mask classes as the blobs").
        dropout: Dropout2d probability of FaceOccNet's concatenated features; 0 turns it off.
        flip: Mirror training images (and labels) with probability 0.5.
        epochs: Epochs to train (counting from 0, also when resuming).
        batch_size: Global batch size (split evenly over DDP processes).
        max_steps: Stop after this many optimiser steps in total (short runs).
        lr: Initial Adam learning rate.
        min_lr: Floor of the plateau schedule.
        lr_factor: Factor of each plateau reduction.
        lr_patience: Validations without improvement before a reduction.
        schedule: ``"plateau"`` (ReduceLROnPlateau on validation mean recall) or ``"flat"``
            (``lr`` throughout).
        select: The run's result, ``best.ckpt``: ``"best"`` validation mean recall, or ``"last"``
            whole epoch (no selection on validation). With ``"last"`` and a flat schedule nothing
            reads validation, so none is run.
        image_size: Network input side for LFW Part Labels (the store's crop size otherwise).
        num_workers: DataLoader workers per process; ``None``: a resumed run's own, else the device's
            (:func:`default_loader_workers`, which the trainer passes to :func:`resolve_defaults`).
        buffer_size: Shuffle buffer of the store reader, in samples.
        seed: Seed of the initialisation, data order and augmentation.
        device: ``"auto"`` (cuda > mps > cpu) or a torch device string.
        amp: Mixed precision (:func:`train.distributed.autocast_dtype`); ``None`` enables it exactly on CUDA.
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
            (:mod:`train.datasets.photometric`: greyscale, colour casts, exposure, JPEG, low
            resolution, blur, noise), applied to each batch after the data set made it
            (occluders pasted); 0 is off.
        photometric_strength: Scales the augmentation's ranges, in (0, 1].
        distill: A reference model (checkpoint, run folder, TorchScript or ONNX file, as
            :class:`~train.evaluation.inference.Segmenter` reads them) whose class probabilities on
            each training image, before photometric augmentation, the student also learns
            (:func:`~train.losses.distillation_loss`, added to the loss). ``None``: no distillation.
        distill_weight: Weight of that term.

    The options of :data:`RESUMED_OPTIONS` may be left ``None``: :func:`resolve_defaults`
    gives a new run its default and a resumed run its checkpoint's value.
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
    consensus_mode: str | None = None
    blobs: str | None = None
    dropout: float | None = None
    flip: bool | None = None
    epochs: int = 30
    batch_size: int = 128
    max_steps: int | None = None
    lr: float = 1e-3
    min_lr: float = 1e-5
    lr_factor: float = 0.1
    lr_patience: int = 2
    schedule: str | None = None
    select: str | None = None
    image_size: int = 128
    num_workers: int | None = None
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
    distill: str | None = None
    distill_weight: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def store_paths(labels: str | Sequence[str]) -> list[str]:
    """``labels`` as a list of store paths (one path or several)."""
    return [labels] if isinstance(labels, (str, Path)) else [str(p) for p in labels]


def resolve_defaults(config: TrainConfig, saved: dict | None, new_run_defaults: dict | None = None) -> None:
    """Fills the options of :data:`RESUMED_OPTIONS` left ``None``.

    A new run (``saved`` is ``None``) gets each option's default (``new_run_defaults`` first: the ones
    that depend on the machine, such as ``num_workers``); a resumed run keeps its
    checkpoint's value, and a checkpoint from before an option existed resumes as it was
    trained (no augmentation, component blobs, the plateau schedule, ...). Options given
    again (not ``None``) win. Unknown choices are refused.

    Args:
        config: The run's settings, changed in place.
        saved: The resumed checkpoint's config, or ``None`` for a new run.
        new_run_defaults: Defaults of a new run that replace :data:`RESUMED_OPTIONS`' own.

    Raises:
        ValueError: A choice that is not one of its option's.
    """
    for key, (new_run, old_run) in RESUMED_OPTIONS.items():
        if getattr(config, key) is None:
            value = (new_run_defaults or {}).get(key, new_run) if saved is None else saved.get(key)
            setattr(config, key, old_run if value is None else value)
    for key, choices in (("consensus_mode", CONSENSUS_MODES), ("blobs", BLOB_KINDS), ("schedule", SCHEDULES),
                         ("select", SELECTIONS)):
        if getattr(config, key) not in choices:
            raise ValueError(f"{key} must be one of {', '.join(choices)}; got {getattr(config, key)!r}")


def check_compatible(saved: dict, config: TrainConfig) -> None:
    """Refuses to resume into a different architecture or data source."""
    for key in ("model", "width", "num_classes", "lfw_parts", "occlude"):
        if saved.get(key, getattr(TrainConfig, key, None)) != getattr(config, key):
            raise ValueError(f"cannot resume: checkpoint has {key}={saved.get(key)!r}, "
                             f"this run asks for {getattr(config, key)!r}")
