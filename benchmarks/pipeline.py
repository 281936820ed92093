"""Throughput and memory of ``labelgen run`` on LFW images.

Usage: python benchmarks/pipeline.py [--images 1000] [--memory-sizes 2000,20000]

Measured side by side in one run, on the same images (LFW Part Labels, read
in place through a ``folder`` corpus of symbolic links, repeated when more
images are asked for than exist):

- images/s with 1 and 2 local Dask workers (one thread each), and the
  per-image time of 1 worker divided by the per-image floor (decode + detect
  + landmarks) measured in this run;
- peak RSS of each worker process (``ru_maxrss``) for corpora of two sizes:
  it must not grow with the corpus;
- stored bytes per image.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgen.chain import ChainConfig, LabelChain  # noqa: E402
from labelgen.lfw_parts import lfw_parts_location  # noqa: E402
from labelgen.pipeline import Job, prepare_store, run_job  # noqa: E402

LFW_IMAGES = lfw_parts_location() / "images"  # $SVC_LFW_PARTS or ../shared/data/lfw_parts


def make_corpus(folder: Path, count: int) -> Path:
    """A folder corpus of ``count`` symbolic links to LFW images (repeated in rounds)."""
    sources = sorted(LFW_IMAGES.glob("*.jpg"))
    folder.mkdir(parents=True)
    for index in range(count):
        source = sources[index % len(sources)]
        round_folder = folder / f"round{index // len(sources):03d}"
        round_folder.mkdir(exist_ok=True)
        (round_folder / source.name).symlink_to(source)
    return folder


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def label_with_dask(corpus: Path, out: Path, workers: int) -> tuple[float, list[float], object]:
    """Seconds for the labelling (scan excluded), peak RSS per worker (MiB), the store."""
    from distributed import Client, LocalCluster

    store = prepare_store(out, Job("folder", str(corpus), {}, ChainConfig(), shard_size=256), progress=False)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            start = time.perf_counter()
            run_job(store, scheduler=cluster.scheduler_address, progress=False)
            seconds = time.perf_counter() - start
            rss = sorted(client.run(peak_rss_mib).values())
    return seconds, rss, store


def floor_ms(images: list[Path]) -> float:
    """Median decode + detect + landmark time per image, one thread, this process."""
    import cv2

    cv2.setNumThreads(0)
    floors = []
    with LabelChain() as chain:
        for path in images:
            result = chain.label_bytes(path.read_bytes())
            if result.ok:
                floors.append(sum(result.timings[s] for s in ("decode", "detect", "pose")) * 1000)
    return statistics.median(floors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--memory-sizes", default="2000,20000",
                        help="corpus sizes for the peak-RSS comparison (2 workers); empty to skip")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="svc-bench-"))
    try:
        corpus = make_corpus(work / "corpus", args.images)
        floor = floor_ms(sorted(corpus.rglob("*.jpg"))[:200])
        print(f"{args.images} LFW images, 250x250 JPEG; per-image floor (decode+detect+landmarks, median of 200): "
              f"{floor:.1f} ms")
        print(f"{'workers':>8} {'seconds':>9} {'images/s':>9} {'ms/img/worker':>14} {'/ floor':>8} "
              f"{'peak RSS per worker (MiB)':>26}")
        for workers in (1, 2):
            seconds, rss, store = label_with_dask(corpus, work / f"w{workers}.zarr", workers)
            per_image = seconds * 1000 * workers / args.images
            print(f"{workers:>8} {seconds:>9.1f} {args.images / seconds:>9.1f} {per_image:>14.1f} "
                  f"{per_image / floor:>8.2f} {', '.join(f'{r:.0f}' for r in rss):>26}")
        sizes = store.stored_bytes()
        total = sum(sizes.values()) / store.count
        print(f"stored bytes per image: {total:.0f} in all (image {sizes['image'] / store.count:.0f}, "
              f"label {sizes['label'] / store.count:.0f}); counts: {store.summary()}")
        if args.memory_sizes:
            print("peak RSS per worker vs corpus size (2 workers):")
            for count in (int(v) for v in args.memory_sizes.split(",")):
                big = make_corpus(work / f"corpus{count}", count)
                seconds, rss, _ = label_with_dask(big, work / f"m{count}.zarr", 2)
                print(f"  {count:>6} images: {seconds:7.1f} s, peak RSS per worker {', '.join(f'{r:.0f}' for r in rss)} MiB")
                shutil.rmtree(work / f"m{count}.zarr")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
