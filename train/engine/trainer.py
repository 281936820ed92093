"""The training loop: model, optimisation, validation, checkpoints and logs of one run.

``train(TrainConfig(...))`` runs in one process, or in each process started by
``torchrun`` (DDP; :mod:`train.distributed`). Published settings: Adam at lr
1e-3, batch 128, ReduceLROnPlateau on the validation mean recall (mode max,
factor 0.1, down to 1e-5).

Reproducibility: each epoch's data order and augmentation are functions of
``(seed, epoch)`` only, and checkpoints carry the RNG states of every rank, so
a resumed run continues exactly where the checkpoint was taken, mid-epoch
included (the batches already used in that epoch are read and skipped).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

from dask.system import CPU_COUNT  # the cores this process may use (affinity, cgroup quotas)
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from labelgen.run_lock import FolderLock
from train.checkpoint import (CheckpointError, describe_model, first_sentence, load_checkpoint,
                              load_start_checkpoint, load_start_weights, load_weights, resolve_checkpoint,
                              restore_failure, rng_state, save_checkpoint, set_rng_state)
from train.config import TrainConfig, check_compatible, default_loader_workers, resolve_defaults
from train.distributed import (DistEnv, any_rank, autocast_dtype, gather_objects, init_distributed, reduce_mean,
                               select_device)
from train.engine.logs import MetricsLog, plot_metrics
from train.engine.stopping import StopRequest, TrainingInterrupted
from train.engine.training_data import TrainingData
from train.engine.validation import validate
from train.evaluation.inference import Segmenter
from train.losses import create_loss, distillation_loss
from train.models import create_model, normalize_image


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, leave=False)


class LogWindow:
    """The steps since the last training record: their losses, and images per second."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.losses: list[float] = []
        self.images = 0
        self.start = time.perf_counter()

    def add(self, loss: float, images: int) -> None:
        self.losses.append(loss)
        self.images += images

    def images_per_s(self) -> float:
        return self.images / max(time.perf_counter() - self.start, 1e-9)


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
        self.max_steps = config.max_steps if config.max_steps is not None else math.inf

        self.resume_path = resolve_checkpoint(resume) if resume else None
        payload = load_checkpoint(self.resume_path) if resume else None
        if payload is not None:
            try:
                check_compatible(payload["config"], config)
            except ValueError as error:
                raise CheckpointError(self.resume_path, str(error).removeprefix("cannot resume: "),
                                      action="resume from") from None
        start = None  # --init-weights: checked before any data is read, put into the model once it is made
        if config.init_weights and not resume:
            start = load_start_checkpoint(config.init_weights, config.to_dict())
        loaders = default_loader_workers(self.device.type, CPU_COUNT, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        resolve_defaults(config, payload["config"] if payload is not None else None, {"num_workers": loaders})
        seed_everything(config.seed + self.env.rank)  # ranks differ in dropout, agree in init (DDP broadcasts)
        self.data = TrainingData(config, self.env)
        self.model = create_model(config.model, num_classes=config.num_classes, width=config.width,
                                  dropout=config.dropout).to(self.device)
        self.net: nn.Module = self.model
        if self.env.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        loss_options = ({"alpha": config.alpha, "beta": config.beta, "mode": config.consensus_mode}
                        if config.loss == "consensus" else {})
        self.loss_fn = create_loss(config.loss, **loss_options)
        # --distill: the reference model whose answers on the un-augmented images the student also learns.
        self.reference = distillation_reference(config, self.device, self.data.image_size)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp and autocast_dtype(self.device) == torch.float16)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best = -math.inf
        self.window = LogWindow()
        if payload is not None:
            self._restore(payload)
        elif start is not None:  # fine-tuning: another run's weights, a fresh optimiser and schedule
            load_start_weights(self.model, start, config.to_dict())
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps({**config.to_dict(), "label_stores": self.data.stores},
                                                             indent=1))
            self.log = MetricsLog(self.out / "metrics.jsonl", resume_step=self.step if payload else None)

    # -- state ----------------------------------------------------------------------------
    def _restore(self, payload: dict) -> None:
        load_weights(self.model, payload["model"], self.resume_path, f"this run's {describe_model(payload['config'])}")
        try:
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
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            raise restore_failure(self.resume_path, error) from None

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
            "rng": gather_objects(rng_state(), self.env),
            "config": self.config.to_dict(),
            "world_size": self.env.world_size,
        }

    def save(self, epoch_end: bool, improved: bool = False) -> None:
        """Writes the best / epoch copies, then last.ckpt; every rank joins the RNG gather.

        last.ckpt comes last: if a copy cannot be written (a full disk), last.ckpt still
        holds the state before, and ``--resume`` redoes the steps since and writes them all.
        """
        payload = self._payload()
        if not self.env.is_main:
            return
        if improved:
            save_checkpoint(self.ckpt_dir / "best.ckpt", payload)
        if epoch_end:
            save_checkpoint(self.ckpt_dir / f"epoch_{self.epoch:03d}.ckpt", payload)
            old = sorted(self.ckpt_dir.glob("epoch_*.ckpt"))[: -self.config.keep_checkpoints or None]
            for path in old if self.config.keep_checkpoints > 0 else []:
                path.unlink()
        save_checkpoint(self.ckpt_dir / "last.ckpt", payload)

    # -- loop -----------------------------------------------------------------------------
    def fit(self, stop: StopRequest | None = None) -> dict:
        """Trains until ``epochs`` or ``max_steps``; returns a summary of the last state.

        Each pass of the loop trains the rest of an epoch (:meth:`_train_epoch`), then
        validates, steps the schedule and checkpoints (:meth:`_end_epoch`); a run cut
        by ``max_steps`` does the latter mid-epoch too.

        Args:
            stop: When its signal comes, the run stops after the current step and
                saves ``last.ckpt`` (see :mod:`train.engine.stopping`).

        Raises:
            TrainingInterrupted: ``stop`` got a signal; every step done is in ``last.ckpt``.
        """
        last_val = None
        while self.epoch < self.config.epochs and self.step < self.max_steps:
            if self._stop_requested(stop):  # the last step done is already saved
                raise self._interrupted(stop)
            steps = self.data.steps_in_epoch(self.epoch)
            if steps == 0:
                raise RuntimeError("an epoch has no full batch; lower --batch-size or --num-workers")
            if not self._train_epoch(steps, stop):  # mid-epoch: save the steps done, skip validation
                self.save(epoch_end=False)
                raise self._interrupted(stop)
            last_val = self._end_epoch(steps)
        return {"step": self.step, "epoch": self.epoch, "validation": last_val, "out": str(self.out)}

    def _train_epoch(self, steps: int, stop: StopRequest | None) -> bool:
        """Trains the epoch's remaining steps (up to ``max_steps``); ``False`` when a stop signal cut it short."""
        config = self.config
        bar = _progress(steps, self.batch_in_epoch, f"epoch {self.epoch + 1}/{config.epochs}",
                        config.progress and self.env.is_main)
        batches = iter(self.data.train_loader(self.epoch))
        for _ in range(self.batch_in_epoch):  # mid-epoch resume: replay the epoch's order
            next(batches)
        self.net.train()
        self.window.restart()
        stopping = False
        while self.batch_in_epoch < steps and self.step < self.max_steps:
            stopping = self._stop_requested(stop)
            if stopping:
                break
            loss, images_per_s = self._train_batch(next(batches))
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.1f}")
            if self.step % config.log_every == 0 or self.batch_in_epoch == steps:
                self._log_training(images_per_s)
        bar.close()
        del batches  # stops this epoch's workers before validation starts its own
        return not stopping

    def _train_batch(self, batch: tuple) -> tuple[float, float]:
        """One optimiser step on an augmented batch; returns its loss and the window's images per second."""
        reference = self._reference_probs(batch[0])  # on the images before photometric augmentation
        batch = self.data.augment(batch, self.epoch, self.batch_in_epoch)
        loss = self.train_step(batch, reference)
        self.step += 1
        self.batch_in_epoch += 1
        self.window.add(loss, len(batch[0]) * self.env.world_size)
        return loss, self.window.images_per_s()

    def _reference_probs(self, images: torch.Tensor) -> torch.Tensor | None:
        """The ``--distill`` reference's class probabilities on uint8 ``images`` (``None`` without one)."""
        if self.reference is None:
            return None
        return torch.softmax(self.reference.logits(images), dim=1)

    def train_step(self, batch: tuple, reference: torch.Tensor | None = None) -> float:
        """One optimiser step; ``reference``: the ``--distill`` model's probabilities on the batch, or ``None``."""
        images, *targets = batch
        images = normalize_image(images.to(self.device, non_blocking=True))
        targets = [t.to(self.device, non_blocking=True) for t in targets]
        with torch.autocast(device_type=self.device.type, dtype=autocast_dtype(self.device), enabled=self.amp):
            logits = self.net(images)
        # The losses run in float32: the consensus KL terms are too small for half precision.
        logits = logits.float()
        loss = self.loss_fn(logits, *targets)
        if reference is not None:
            loss = loss + self.config.distill_weight * distillation_loss(logits, reference.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def _log_training(self, images_per_s: float) -> None:
        """Writes a training record (loss averaged over the window and the ranks) and opens a new window."""
        mean_loss = reduce_mean(float(np.mean(self.window.losses)), self.env, self.device)
        if self.env.is_main:
            self.log.write({"kind": "train", "step": self.step, "epoch": self.epoch, "loss": mean_loss,
                            "lr": self.optimizer.param_groups[0]["lr"], "images_per_s": images_per_s})
        self.window.restart()

    def _end_epoch(self, steps: int) -> dict | None:
        """After the epoch's steps (all of them, or up to ``max_steps``): validate, schedule, checkpoint, plot.

        Returns:
            The validation scores, or ``None`` without a validation set.
        """
        epoch_done = self.batch_in_epoch >= steps
        scores = self.run_validation()
        if scores is not None and self.env.is_main:
            self.log.write({"kind": "val", "step": self.step, "epoch": self.epoch,
                            "complete_epoch": epoch_done, **scores})
        improved = self._next_epoch(scores) if epoch_done else False
        self.save(epoch_end=epoch_done, improved=improved)
        if self.env.is_main:
            plot_metrics(self.out / "metrics.jsonl", self.out / "curves.png")
            if scores is not None:
                _echo_validation(self.epoch if epoch_done else self.epoch + 1, self.step, scores)
        return scores

    def _next_epoch(self, scores: dict | None) -> bool:
        """Closes a whole epoch: the schedule follows its validation; returns whether it becomes best.ckpt
        (the best so far, or with ``select="last"`` every whole epoch)."""
        improved = False
        if scores is not None and math.isfinite(scores["mean_recall"]):
            # Only whole epochs step the schedule, so a run cut by --max-steps and
            # resumed follows the same schedule as one that never stopped.
            if self.config.schedule == "plateau":
                self.scheduler.step(scores["mean_recall"])
            improved = scores["mean_recall"] > self.best
            self.best = max(self.best, scores["mean_recall"])
        if self.config.select == "last":
            improved = True
        self.epoch += 1
        self.batch_in_epoch = 0
        return improved

    def run_validation(self) -> dict | None:
        loader = self.data.val_loader()
        if loader is None:
            return None
        # The bare module, not the DDP wrapper: DDP syncs buffers on every forward, which
        # deadlocks when ranks hold different numbers of validation batches.
        return validate(self.model, loader, self.config.num_classes, self.device, self.amp, self.env)

    # -- stopping ---------------------------------------------------------------------------
    def _stop_requested(self, stop: StopRequest | None) -> bool:
        """Whether any rank got a stop signal (every rank calls this at the same steps)."""
        return any_rank(stop is not None and stop.signum is not None, self.env, self.device)

    def _interrupted(self, stop: StopRequest | None) -> TrainingInterrupted:
        signum = stop.signum if stop is not None and stop.signum is not None else signal.SIGTERM  # another rank's
        checkpoint = self.ckpt_dir / "last.ckpt"
        return TrainingInterrupted(signum, self.step, str(checkpoint) if checkpoint.is_file() else None)


def distillation_reference(config: TrainConfig, device: torch.device, image_size: int) -> Segmenter | None:
    """The ``--distill`` model, checked on one blank image before any training step (``None`` without one).

    Raises:
        FileNotFoundError, CheckpointError: As :class:`~train.evaluation.inference.Segmenter`.
        ValueError: It cannot score this run's images, or answers with another number of classes.
    """
    if not config.distill:
        return None
    reference = Segmenter(config.distill, device)
    try:
        shape = tuple(reference.logits(torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8)).shape)
    except Exception as error:  # onnxruntime and TorchScript raise their own types for a wrong input size
        raise ValueError(f"--distill {config.distill}: it cannot score this run's {image_size}x{image_size} images "
                         f"({first_sentence(error)})") from None
    if shape != (1, config.num_classes, image_size, image_size):
        raise ValueError(f"--distill {config.distill}: it answers {shape[1]} classes at {shape[2]}x{shape[3]}; "
                         f"this run trains {config.num_classes} classes at {image_size}x{image_size}")
    return reference


def _echo_validation(epoch: int, step: int, scores: dict) -> None:
    iou = " / ".join(f"{100 * v:.2f}" for v in scores["iou"])
    print(f"epoch {epoch} step {step}: val mean recall {100 * scores['mean_recall']:.2f}, "
          f"mIoU {100 * scores['miou']:.2f} (per class {iou}), pixel acc {100 * scores['pixel_acc']:.2f}",
          file=sys.stderr, flush=True)


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
