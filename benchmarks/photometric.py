"""Photometric augmentation's cost on the teacher's data path, off vs on, side by side in one run.

Usage: python benchmarks/photometric.py [--rounds 5] [--batches 4] [--faces 256]

The data path of ``svc-train --lfw-parts --occlude``: LFW Part Labels train faces
with fresh synthetic occluders (``OccludedLFWTrain``, faces cached as in training),
batched by a DataLoader, then ``Photometric`` on each batch as ``TrainingData.augment``
does it, in this process on one torch thread. Two layouts:

* serial (``num_workers=0``): occluders and augmentation one after the other in one
  process, which charges the augmentation in full to the loader (a worst case);
* one loader worker (``--num-workers 1``, as ``pipelines/train_teacher.sh`` trains):
  the worker pastes occluders while this process augments, as in training (where
  this process also runs the training step).

Rounds alternate off / on over the same batches (same sampler seed), and medians
are reported, so drift in machine load hits both sides alike. Needs LFW Part
Labels (``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.data import seeded_generator  # noqa: E402
from train.occluded import OccludedLFWTrain  # noqa: E402
from train.photometric import DEFAULT_PROBABILITY, DEFAULT_STRENGTH, Photometric  # noqa: E402

BATCH = 32


def images_per_second(data: OccludedLFWTrain, augment: Photometric | None, batches: int, seed: int,
                      workers: int) -> float:
    """Draws ``batches`` batches (and augments them here) and returns images per second."""
    loader = DataLoader(data, batch_size=BATCH, sampler=RandomSampler(data, generator=seeded_generator(seed)),
                        drop_last=True, num_workers=workers)
    start = time.perf_counter()
    for index, (images, _labels) in zip(range(batches), loader):
        if augment is not None:
            augment(images, (0, 0, 0, index))
    return batches * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="Off / on pairs.")
    parser.add_argument("--batches", type=int, default=4, help=f"Batches of {BATCH} per measurement.")
    parser.add_argument("--faces", type=int, default=256, help="Train faces to draw from.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = OccludedLFWTrain(split="train", size=128, limit=args.faces)
    sides = {"off": None,
             f"on (p {DEFAULT_PROBABILITY}, strength {DEFAULT_STRENGTH})": Photometric(),
             "on (p 1.0: every image)": Photometric(probability=1.0)}
    images_per_second(data, sides["off"], 1, seed=99, workers=0)  # warm-up
    rates = {(workers, name): [] for workers in (0, 1) for name in sides}
    for round_index in range(args.rounds):
        for workers, name in rates:
            rates[workers, name].append(images_per_second(data, sides[name], args.batches, round_index, workers))

    print(f"# {platform.machine()}, 1 torch thread, torch {torch.__version__}; occluded LFW train faces at 128 px, "
          f"batch {BATCH}, {args.rounds} rounds of {args.batches} batches, median")
    print(f"{'layout':<12}{'photometric augmentation':<32}{'images/s':>10}{'vs off':>9}")
    for (workers, name), values in rates.items():
        rate, off = statistics.median(values), statistics.median(rates[workers, "off"])
        print(f"{['serial', '1 worker'][workers]:<12}{name:<32}{rate:>10.1f}{rate / off:>9.3f}")


if __name__ == "__main__":
    main()
