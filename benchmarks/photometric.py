"""Photometric augmentation's cost on the teacher's training path, off vs on, side by side in one run.

Usage: python benchmarks/photometric.py [--rounds 7] [--batches 8] [--steps 2] [--faces 256]

The path of ``svc-train --lfw-parts --occlude``: LFW Part Labels train faces with
fresh synthetic occluders (``OccludedLFWTrain``, faces cached as in training),
batches of 32 from a DataLoader, then ``Photometric`` on each batch as
``TrainingData.augment`` does it, in the training process. Two tables, everything
on one torch thread:

1. **data path, serial**: occluders and augmentation one after the other in this
   process (``num_workers=0``). In training the occluders are pasted in a loader
   worker, which does exactly what it did before; this layout charges the
   augmentation in full to the loader, a worst case.
2. **training process**: augmentation plus one training step of the teacher's
   recipe (FaceOccNet width 0.5, consensus loss, Adam, bfloat16 autocast) on the
   same batches: what the augmentation adds where it runs.

Rates are images per wall-clock second and images per CPU second of this process
(``time.process_time``), which other jobs on a shared machine disturb far less.
Rounds alternate off / on over the same batches (same sampler seed), and medians
are reported, so drift in machine load hits both sides alike. Needs LFW Part Labels
(``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.datasets.occluded import OccludedLFWTrain  # noqa: E402
from train.datasets.photometric import DEFAULT_PROBABILITY, DEFAULT_STRENGTH, Photometric  # noqa: E402
from train.engine.training_data import seeded_generator  # noqa: E402
from train.losses import create_loss  # noqa: E402
from train.models import create_model, normalize_image  # noqa: E402

BATCH = 32


def batches_of(data: OccludedLFWTrain, count: int, seed: int):
    loader = DataLoader(data, batch_size=BATCH, sampler=RandomSampler(data, generator=seeded_generator(seed)),
                        drop_last=True, num_workers=0)
    return zip(range(count), loader)


def rates(work: Callable[[], int]) -> tuple[float, float]:
    """Runs ``work`` (which returns the images it handled): images per wall-clock and per CPU second."""
    wall, cpu = time.perf_counter(), time.process_time()
    images = work()
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def data_path(data: OccludedLFWTrain, augment: Photometric | None, batches: int, seed: int) -> int:
    for index, (images, _labels) in batches_of(data, batches, seed):
        if augment is not None:
            augment(images, (0, 0, 0, index))
    return batches * BATCH


class TeacherStep:
    """One training step of the teacher recipe (as ``Trainer.train_step`` with ``--amp`` on a CPU)."""

    def __init__(self):
        self.model = create_model("faceoccnet", num_classes=3, width=0.5).train()
        self.loss = create_loss("consensus", alpha=10.0, beta=5.0)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=3e-4)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            logits = self.model(normalize_image(images))
        loss = self.loss(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def table(title: str, results: dict[str, list[tuple[float, float]]]) -> None:
    print(f"## {title}")
    print(f"{'photometric augmentation':<32}{'images/s':>10}{'vs off':>8}{'images/CPU-s':>14}{'vs off':>8}")
    medians = {name: [statistics.median(column) for column in zip(*values)] for name, values in results.items()}
    off_wall, off_cpu = medians["off"]
    for name, (wall, cpu) in medians.items():
        print(f"{name:<32}{wall:>10.1f}{wall / off_wall:>8.3f}{cpu:>14.1f}{cpu / off_cpu:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="Off / on rounds.")
    parser.add_argument("--batches", type=int, default=8, help=f"Batches of {BATCH} per data-path measurement.")
    parser.add_argument("--steps", type=int, default=2, help="Training steps per training-process measurement.")
    parser.add_argument("--faces", type=int, default=256, help="Train faces to draw from.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = OccludedLFWTrain(split="train", size=128, limit=args.faces)
    sides = {"off": None,
             f"on (p {DEFAULT_PROBABILITY}, strength {DEFAULT_STRENGTH})": Photometric(),
             "on (p 1.0: every image)": Photometric(probability=1.0)}
    step = TeacherStep()
    step_batches = [batch for _, batch in batches_of(data, args.steps, seed=99)]
    step(*step_batches[0])  # warm-up
    serial = {name: [] for name in sides}
    training = {name: [] for name in sides}
    for round_index in range(args.rounds):
        for name, augment in sides.items():
            serial[name].append(rates(lambda: data_path(data, augment, args.batches, round_index)))

            def train_steps() -> int:
                for index, (images, labels) in enumerate(step_batches):
                    step(augment(images, (0, 0, 0, index)) if augment is not None else images, labels)
                return len(step_batches) * BATCH

            training[name].append(rates(train_steps))

    print(f"# {platform.machine()}, 1 torch thread, torch {torch.__version__}; occluded LFW train faces at 128 px, "
          f"batch {BATCH}; {args.rounds} rounds of {args.batches} batches / {args.steps} steps, median")
    table("data path, serial (occluders + augmentation in one process: the worst case)", serial)
    table("training process (augmentation + a width-0.5 bfloat16 training step)", training)


if __name__ == "__main__":
    main()
