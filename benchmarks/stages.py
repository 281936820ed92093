"""Per-stage latency of the labelling chain, and its ratio to the unavoidable floor.

Usage: python benchmarks/stages.py [--lfw-images 200] [--teacher NAME]
           [--detector centerface,auto,mediapipe] [--hard-images N] [--no-extras]

The floor is what any pose-based labeller pays per image: JPEG decode +
face detection + landmarks/pose. Everything is measured in this one run, on
the same images, single-threaded (OpenCV threads off, as in a Dask worker):
the embedded sample and the first N LFW Part Labels test images, and with
``--hard-images N`` also the first N of the synthetic occluded test split and
of the small-face set (see ``benchmarks/detector_sets.py``). The chain runs
as in a shard (``label_many``: the teacher sees the chain's batches, 1 crop per call on a CPU); its
``teacher`` row is each image's share of its batch.

With several ``--detector`` choices, each set is labelled by one chain per
detector, one after the other, and a second table compares them: faces found
(detection gave a box), pose found, ok, how often ``auto`` handed the image
to CenterFace, and the median floor and whole chain in ms.

Also (unless ``--no-extras``): the teacher alone at batch 1 and batch 32 on
the same crops, and CenterFace under cv2.dnn vs onnxruntime (the chain uses
the faster).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.detector_sets import lfw_set, occluded_set, sample_set, small_set  # noqa: E402
from labelgen.chain import ChainConfig, LabelChain, LabelResult  # noqa: E402
from labelgen.stages.decode import decode_image  # noqa: E402
from labelgen.stages.detect import CenterFaceDetector  # noqa: E402
from labelgen.teachers import DEFAULT_TEACHER, load_teacher  # noqa: E402

FLOOR_STAGES = ("decode", "detect", "pose")


def run_chain(chain: LabelChain, blobs: list[bytes]) -> dict[str, list[float]]:
    """Per-stage ms of each ok image, plus ``found``, ``posed``, ``ok`` and ``centerface`` flags of every image."""
    timings: dict[str, list[float]] = {"found": [], "posed": [], "ok": [], "centerface": []}
    for result in chain.label_many([(str(i), data, ()) for i, data in enumerate(blobs)]):
        timings["found"].append(result.box is not None)
        timings["posed"].append(result.rotation is not None)
        timings["ok"].append(result.ok)
        timings["centerface"].append(result.box is not None and not np.isnan(result.score))
        if not result.ok:
            continue
        for stage, seconds in result.timings.items():
            timings.setdefault(stage, []).append(seconds * 1000)
        timings.setdefault("total", []).append(sum(result.timings.values()) * 1000)
        timings.setdefault("floor", []).append(sum(result.timings[s] for s in FLOOR_STAGES) * 1000)
    return timings


def detector_ms(backend: str, images: list[np.ndarray]) -> float:
    detector = CenterFaceDetector(backend=backend)
    detector(images[0])
    times = []
    for image in images:
        start = time.perf_counter()
        detector(image)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def teacher_ms(chain: LabelChain, blobs: list[bytes], batch: int, repeats: int = 3) -> float:
    """Median ms per crop of the chain's teacher alone, called on batches of ``batch`` of the images' crops."""
    geometries = [chain._decoded_geometry(data, LabelResult(key=""), ()) for data in blobs]
    crops = [g.image for g in geometries if g is not None][:64]
    hulls = [g.hull for g in geometries if g is not None][:64]
    run = getattr(chain.teacher, "batch", None) or (lambda cs, hs: [chain.teacher(c, h) for c, h in zip(cs, hs)])
    run(crops[:batch], hulls[:batch])  # warm-up
    times = []
    for _ in range(repeats):
        for start in range(0, len(crops) - batch + 1, batch):
            begin = time.perf_counter()
            run(crops[start:start + batch], hulls[start:start + batch])
            times.append((time.perf_counter() - begin) * 1000 / batch)
    return statistics.median(times)


FLAGS = ("found", "posed", "ok", "centerface")


def median(timings: dict[str, list[float]], stage: str) -> float:
    """The median of a stage's times; NaN when no image got that far."""
    return statistics.median(timings[stage]) if timings.get(stage) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-images", type=int, default=200)
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help="Teacher of the chain (name or model path).")
    parser.add_argument("--detector", default="centerface",
                        help="Comma-separated detectors to compare (auto, centerface, mediapipe).")
    parser.add_argument("--hard-images", type=int, default=0,
                        help="Also the first N images of the occluded test split and of the small-face set.")
    parser.add_argument("--occluded-dir", type=Path, default=REPO / "out" / "occluded_test",
                        help="Where the occluded test photos are (written there when missing).")
    parser.add_argument("--no-extras", action="store_true",
                        help="Skip the teacher-alone and CenterFace-backend measurements.")
    args = parser.parse_args()
    detectors = args.detector.split(",")
    cv2.setNumThreads(0)

    sets = {"sample": sample_set()}
    lfw_name = f"lfw{len(lfw_set(args.lfw_images))}"
    sets[lfw_name] = lfw_set(args.lfw_images)
    if args.hard_images:
        sets[f"occluded{args.hard_images}"] = occluded_set(args.occluded_dir, args.hard_images)
        sets[f"small{args.hard_images}"] = small_set(args.hard_images)

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} "
          f"{platform.python_version()}, OpenCV {cv2.__version__}, 1 thread, teacher {args.teacher}")
    teacher = load_teacher(args.teacher)
    chains = {name: LabelChain(ChainConfig(teacher=args.teacher, detector=name), teacher=teacher)
              for name in detectors}
    try:
        for chain in chains.values():
            chain.label_bytes(sets["sample"][0])  # warm-up: first calls allocate
        results = {(set_name, name): run_chain(chain, blobs)
                   for set_name, blobs in sets.items() for name, chain in chains.items()}
        first = chains[detectors[0]]
        per_batch = (None if args.no_extras else
                     {batch: teacher_ms(first, sets[lfw_name], batch) for batch in (1, 4, 8, 32)})
    finally:
        for chain in chains.values():
            chain.close()

    for name in detectors:
        timings = {set_name: results[set_name, name] for set_name in sets}
        stages = [s for s in timings["sample"] if s not in ("total", "floor") + FLAGS] + ["floor", "total"]
        print(f"\ndetector {name}")
        print(f"{'median ms':<12}" + "".join(f"{set_name:>12}" for set_name in timings))
        for stage in stages:
            print(f"{stage:<12}" + "".join(f"{median(r, stage):>12.2f}" for r in timings.values()))
        print(f"{'chain/floor':<12}" + "".join(f"{median(r, 'total') / median(r, 'floor'):>12.2f}"
                                              for r in timings.values()))

    print(f"\n{'set':<14}{'detector':<12}{'images':>7}{'faces %':>9}{'pose %':>8}{'ok %':>8}{'to CF %':>8}"
          f"{'floor ms':>9}{'chain ms':>9}{'floor x':>8}{'chain x':>8}")
    for set_name in sets:
        base = results[set_name, detectors[0]]
        for name in detectors:
            r = results[set_name, name]
            share = {flag: 100 * np.mean(r[flag]) for flag in FLAGS}
            floor, total = median(r, "floor"), median(r, "total")
            print(f"{set_name:<14}{name:<12}{len(r['ok']):>7}{share['found']:>9.2f}{share['posed']:>8.2f}"
                  f"{share['ok']:>8.2f}{share['centerface']:>8.1f}{floor:>9.2f}{total:>9.2f}"
                  f"{median(base, 'floor') / floor:>8.2f}{median(base, 'total') / total:>8.2f}")
    print(f"('to CF': images whose face CenterFace found; 'floor x', 'chain x': speed-up over {detectors[0]})")

    if args.no_extras:
        return
    print(f"teacher {args.teacher} alone on LFW crops, median ms per image: " + ", ".join(
        f"batch {batch} {ms:.2f}" for batch, ms in per_batch.items()) + f"; batch 1 / batch 32 "
        f"{per_batch[1] / per_batch[32]:.2f}; the chain uses batch {first.teacher_batch}")

    lfw_images = [decode_image(data) for data in sets[lfw_name]]
    dnn, ort = detector_ms("opencv", lfw_images), detector_ms("onnxruntime", lfw_images)
    print(f"CenterFace on LFW (decode + NMS included), median ms: cv2.dnn {dnn:.2f}, "
          f"onnxruntime {ort:.2f}, ratio {dnn / ort:.2f}")


if __name__ == "__main__":
    main()
