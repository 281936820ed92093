"""Throughput and memory of ``labelgen run`` on LFW images.

Usage: python benchmarks/labelgen_run.py [--images 1000] [--split all|test] [--memory-sizes 2000,20000]
           [--detector centerface,auto,mediapipe] [--sample-images 340] [--teacher NAME]

Measured side by side in one run, on the same images (LFW Part Labels, read
in place through a ``folder`` corpus of symbolic links, repeated when more
images are asked for than exist; ``--split test`` takes the test split's
images only; ``--sample-images N`` adds a corpus of the embedded sample's
JPEGs, repeated to N):

- images/s with 1 and 2 local Dask workers (one thread each), and the
  per-image time of 1 worker divided by the per-image floor (decode + detect
  + landmarks) measured in this run; with several ``--detector`` choices,
  one row per detector, run one after the other for each worker count;
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
from labelgen.eval.lfw_parts import lfw_parts_location  # noqa: E402
from labelgen.run import Job, prepare_store, run_job  # noqa: E402
from labelgen.sample import sample_jpeg, sample_keys  # noqa: E402
from labelgen.teachers import DEFAULT_TEACHER  # noqa: E402

LFW = lfw_parts_location()  # $SVC_LFW_PARTS or ../shared/data/lfw_parts


def lfw_images(split: str) -> list[Path]:
    """All LFW Part Labels images (``all``), or those of one split."""
    if split == "all":
        return sorted((LFW / "images").glob("*.jpg"))
    return [LFW / "images" / f"{stem}.jpg" for stem in (LFW / "splits" / f"{split}.txt").read_text().split()]


def make_corpus(folder: Path, count: int, sources: list[Path] | None = None) -> Path:
    """A folder corpus of ``count`` symbolic links to ``sources`` (default: all LFW images), repeated in rounds."""
    sources = sources or lfw_images("all")
    folder.mkdir(parents=True)
    for index in range(count):
        source = sources[index % len(sources)]
        round_folder = folder / f"round{index // len(sources):03d}"
        round_folder.mkdir(exist_ok=True)
        (round_folder / source.name).symlink_to(source)
    return folder


def sample_files(folder: Path) -> list[Path]:
    """The embedded sample's JPEGs written as files (``photo__variant.jpg``)."""
    folder.mkdir(parents=True)
    paths = []
    for key in sample_keys():
        path = folder / key.replace("/", "__")
        path.write_bytes(sample_jpeg(key))
        paths.append(path)
    return paths


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def label_with_dask(corpus: Path, out: Path, workers: int, detector: str = "centerface",
                    teacher: str = DEFAULT_TEACHER) -> tuple[float, list[float], object]:
    """Seconds for the labelling (scan excluded; model loading included), peak RSS per worker (MiB), the store."""
    from distributed import Client, LocalCluster

    config = ChainConfig(detector=detector, teacher=teacher)
    store = prepare_store(out, Job("folder", str(corpus), {}, config, shard_size=256), progress=False)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            start = time.perf_counter()
            run_job(store, scheduler=cluster.scheduler_address, progress=False)
            seconds = time.perf_counter() - start
            rss = sorted(client.run(peak_rss_mib).values())
    return seconds, rss, store


def floor_ms(images: list[Path], detector: str = "centerface", teacher: str = DEFAULT_TEACHER) -> float:
    """Median decode + detect + landmark time per image, one thread, this process."""
    import cv2

    cv2.setNumThreads(0)
    floors = []
    with LabelChain(ChainConfig(detector=detector, teacher=teacher)) as chain:
        for path in images:
            result = chain.label_bytes(path.read_bytes())
            if result.ok:
                floors.append(sum(result.timings[s] for s in ("decode", "detect", "pose")) * 1000)
    return statistics.median(floors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                        help="LFW Part Labels images the corpus links to")
    parser.add_argument("--detector", default="centerface",
                        help="comma-separated detectors to compare (auto, centerface, mediapipe)")
    parser.add_argument("--sample-images", type=int, default=0,
                        help="also a corpus of the embedded sample's 34 JPEGs repeated to this many images")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help="teacher of the chain (name or model path)")
    parser.add_argument("--memory-sizes", default="2000,20000",
                        help="corpus sizes for the peak-RSS comparison (2 workers); empty to skip")
    args = parser.parse_args()
    detectors = args.detector.split(",")
    work = Path(tempfile.mkdtemp(prefix="svc-bench-"))
    try:
        sources = lfw_images(args.split)
        corpora = {f"LFW {args.split}": (make_corpus(work / "corpus", args.images, sources), args.images)}
        if args.sample_images:
            samples = sample_files(work / "sample_files")
            corpora["sample"] = (make_corpus(work / "sample_corpus", args.sample_images, samples), args.sample_images)
        stored_line = None
        for title, (corpus, count) in corpora.items():
            images = sorted(corpus.rglob("*.jpg"))[:200]
            floors = {detector: floor_ms(images, detector, args.teacher) for detector in detectors}
            print(f"\n{count} images, {title}, teacher {args.teacher}; per-image floor (decode+detect+landmarks, median of {len(images)}): "
                  + ", ".join(f"{detector} {floor:.1f} ms" for detector, floor in floors.items()))
            print(f"{'detector':>10} {'workers':>8} {'seconds':>9} {'images/s':>9} {'x ' + detectors[0]:>13} "
                  f"{'ms/img/worker':>14} {'/ floor':>8} {'ok':>6} {'peak RSS per worker (MiB)':>26}")
            for workers in (1, 2):
                base = None
                for detector in detectors:
                    out = work / f"{title.replace(' ', '_')}_{detector}_w{workers}.zarr"
                    seconds, rss, store = label_with_dask(corpus, out, workers, detector, args.teacher)
                    rate = count / seconds
                    base = base or rate
                    per_image = seconds * 1000 * workers / count
                    ok = store.summary().get("ok", 0)
                    print(f"{detector:>10} {workers:>8} {seconds:>9.1f} {rate:>9.1f} {rate / base:>13.2f} "
                          f"{per_image:>14.1f} {per_image / floors[detector]:>8.2f} {ok:>6} "
                          f"{', '.join(f'{r:.0f}' for r in rss):>26}")
                    if stored_line is None:
                        sizes = store.stored_bytes()
                        stored_line = (f"stored bytes per image ({detector}, {title}): "
                                       f"{sum(sizes.values()) / store.count:.0f} in all (image "
                                       f"{sizes['image'] / store.count:.0f}, label {sizes['label'] / store.count:.0f}); "
                                       f"counts: {store.summary()}")
                    shutil.rmtree(out)
        print(stored_line)
        if args.memory_sizes:
            print(f"peak RSS per worker vs corpus size (2 workers, {detectors[0]}):")
            for count in (int(v) for v in args.memory_sizes.split(",")):
                big = make_corpus(work / f"corpus{count}", count)
                seconds, rss, _ = label_with_dask(big, work / f"m{count}.zarr", 2, detectors[0], args.teacher)
                print(f"  {count:>6} images: {seconds:7.1f} s, peak RSS per worker {', '.join(f'{r:.0f}' for r in rss)} MiB")
                shutil.rmtree(work / f"m{count}.zarr")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
