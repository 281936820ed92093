"""Training-side speed, measured side by side in one run.

Usage: python benchmarks/train.py [--batch 8] [--steps 5] [--width 1.0]

* consensus vs cross-entropy: whole training step (forward, loss, backward,
  Adam) of FaceOccNet at 128x128; the consensus loss should cost at most 1.3x.
* float32 vs bfloat16 autocast (``svc-train --amp`` on a CPU): the same step.
* vectorized consensus loss vs the float64 per-blob reference loop (loss
  forward + backward only), on store label maps and on LFW-style blobs
  (connected components per class, many more blobs).
* loader vs trainer: samples/s the store reader delivers (2 workers, a
  temporary synthetic store) against samples/s one training step consumes.
* inference images/s at batch 1 and 64 (eval mode, no grad).

Steps are interleaved (consensus, CE, consensus, ...) and medians reported, so
drift in machine load hits both sides alike.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from train.datasets.store import StoreDataset  # noqa: E402
from train.datasets.synthetic import make_synthetic_store, synthetic_sample  # noqa: E402
from train.losses import (  # noqa: E402
    blob_ids_from_label_map,
    blobs_from_class_maps,
    consensus_loss,
    consensus_loss_reference,
    create_loss,
)
from train.models import create_model, normalize_image  # noqa: E402

SIZE = 128


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def batch_of_labels(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic uint8 images and store label maps (face ellipse, some occlusion blobs)."""
    rng = np.random.default_rng(seed)
    pairs = [synthetic_sample(rng, SIZE) for _ in range(batch)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2).copy())
    return images, torch.from_numpy(np.stack([p[1] for p in pairs])).long()


STEP_VARIANTS = {"consensus": ("consensus", False), "ce": ("ce", False), "consensus bf16": ("consensus", True)}


def step_times(width: float, batch: int, steps: int) -> dict[str, float]:
    """Median seconds of a training step per variant of :data:`STEP_VARIANTS` (loss, bfloat16), interleaved."""
    images, labels = batch_of_labels(batch)
    x = normalize_image(images)
    runs = {}
    for name, (loss, bf16) in STEP_VARIANTS.items():
        torch.manual_seed(0)
        model = create_model("faceoccnet", num_classes=3, width=width).train()
        runs[name] = (model, torch.optim.Adam(model.parameters(), 1e-3), create_loss(loss), bf16)
    times: dict[str, list[float]] = {name: [] for name in runs}

    def step(name: str) -> None:
        model, optimizer, loss_fn, bf16 = runs[name]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for name in runs:  # warm-up: allocator and oneDNN kernel selection
        step(name)
    for _ in range(steps):
        for name in runs:
            times[name].append(timed(lambda: step(name)))
    return {name: statistics.median(values) for name, values in times.items()}


def loss_times(batch: int, repeats: int) -> list[tuple[str, int, float, float]]:
    """(case, blobs, vectorized s, reference-loop s) for store maps and LFW-style blobs."""
    _, labels = batch_of_labels(batch, seed=1)
    store_ids, store_table = blob_ids_from_label_map(labels)
    # LFW-style: components of every class, including the background's speckle.
    rng = np.random.default_rng(2)
    classes = labels.clamp(max=2).numpy().copy()
    classes[rng.random(classes.shape) < 0.002] = 2
    lfw_ids, lfw_table = blobs_from_class_maps(classes)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, 3, SIZE, SIZE, generator=generator)
    rows = []
    for case, ids, table in (("store label maps", store_ids, store_table), ("LFW-style blobs", lfw_ids, lfw_table)):
        blobs = sum(len(torch.unique(image_ids[image_ids >= 0])) for image_ids in ids)

        def fast():
            leaf = logits.clone().requires_grad_()
            consensus_loss(leaf, ids, table).backward()

        def slow():
            leaf = logits.clone().requires_grad_()
            consensus_loss_reference(leaf, ids, table).backward()

        fast(), slow()
        fast_t = statistics.median(timed(fast) for _ in range(repeats))
        slow_t = statistics.median(timed(slow) for _ in range(max(1, repeats // 2)))
        rows.append((case, blobs, fast_t, slow_t))
    return rows


def loader_rate(batch: int, images: int, workers: int) -> float:
    """Samples/s the store reader delivers through a DataLoader (one epoch, after a warm-up epoch)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "labels.zarr"
        make_synthetic_store(path, count=images, size=SIZE, shard_size=256, bad_rows=list(range(0, images, 20)))
        dataset = StoreDataset(path, buffer_size=512)
        loader = DataLoader(dataset, batch_size=batch, num_workers=workers, drop_last=True)
        sum(1 for _ in loader)
        dataset.set_epoch(1)
        start, count = time.perf_counter(), 0
        for images_batch, _ in DataLoader(dataset, batch_size=batch, num_workers=workers, drop_last=True):
            count += len(images_batch)
        return count / (time.perf_counter() - start)


def inference_rate(width: float, batch: int, repeats: int) -> float:
    model = create_model("faceoccnet", num_classes=3, width=width).eval()
    x = torch.rand(batch, 3, SIZE, SIZE) * 2 - 1
    with torch.inference_mode():
        model(x)
        seconds = statistics.median(timed(lambda: model(x)) for _ in range(repeats))
    return batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=1.0, help="FaceOccNet width (1.0 = published)")
    parser.add_argument("--batch", type=int, default=8, help="training batch for the step timings")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per loss")
    parser.add_argument("--loader-images", type=int, default=1024, help="size of the temporary store")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = parser.parse_args()

    print(f"# {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"CPU only={not torch.cuda.is_available()}; FaceOccNet width {args.width}, {SIZE}x{SIZE}")
    steps = step_times(args.width, args.batch, args.steps)
    ratio = steps["consensus"] / steps["ce"]
    print(f"\n## training step, batch {args.batch} (median of {args.steps})")
    print(f"{'consensus':<28}{steps['consensus'] * 1000:10.1f} ms")
    print(f"{'cross-entropy':<28}{steps['ce'] * 1000:10.1f} ms")
    print(f"{'ratio consensus / CE':<28}{ratio:10.3f}   (goal <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'})")
    print(f"{'consensus, bf16 autocast':<28}{steps['consensus bf16'] * 1000:10.1f} ms")
    print(f"{'ratio float32 / bf16':<28}{steps['consensus'] / steps['consensus bf16']:10.3f}")

    print(f"\n## consensus loss alone, forward + backward, batch {args.batch}")
    print(f"{'case':<20}{'blobs':>7}{'vectorized ms':>16}{'loop ms':>12}{'speed-up':>10}")
    for case, blobs, fast, slow in loss_times(args.batch, repeats=5):
        print(f"{case:<20}{blobs:>7}{fast * 1000:>16.2f}{slow * 1000:>12.2f}{slow / fast:>9.1f}x")

    loader = loader_rate(args.batch, args.loader_images, args.workers)
    trainer = args.batch / steps["consensus"]
    print(f"\n## loader vs trainer, samples/s (loader: {args.workers} workers, {args.loader_images}-image store)")
    print(f"{'store loader':<28}{loader:10.1f}")
    print(f"{'training step (consensus)':<28}{trainer:10.1f}")
    print(f"{'loader / trainer':<28}{loader / trainer:10.1f}")

    print("\n## inference, images/s (eval, no grad)")
    for batch, repeats in ((1, 20), (64, 3)):
        print(f"{'batch ' + str(batch):<28}{inference_rate(args.width, batch, repeats):10.1f}")


if __name__ == "__main__":
    main()
