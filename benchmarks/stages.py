"""Per-stage latency of the labelling chain, and its ratio to the unavoidable floor.

Usage: python benchmarks/stages.py [--lfw-images 200] [--teacher NAME]

The floor is what any pose-based labeller pays per image: JPEG decode +
face detection + landmarks/pose. Everything is measured in this one run, on
the same images, single-threaded (OpenCV threads off, as in a Dask worker):
the embedded sample and the first N LFW Part Labels test images. The chain
runs as in a shard (``label_many``: the teacher sees batches of 32 crops);
its ``teacher`` row is each image's share of its batch. Also: the teacher
alone at batch 1 and batch 32 on the same crops, and CenterFace under
cv2.dnn vs onnxruntime (the chain uses the faster).
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

from labelgen.chain import ChainConfig, LabelChain, LabelResult  # noqa: E402
from labelgen.lfw_parts import lfw_parts_location  # noqa: E402
from labelgen.sample import sample_jpeg, sample_keys  # noqa: E402
from labelgen.stages.decode import decode_image  # noqa: E402
from labelgen.stages.detect import CenterFaceDetector  # noqa: E402
from labelgen.stages.teacher import load_teacher  # noqa: E402
from labelgen.teachers import DEFAULT_TEACHER  # noqa: E402

LFW = lfw_parts_location()  # $SVC_LFW_PARTS or ../shared/data/lfw_parts
FLOOR_STAGES = ("decode", "detect", "pose")


def run_chain(chain: LabelChain, blobs: list[bytes]) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for result in chain.label_many([(str(i), data, ()) for i, data in enumerate(blobs)]):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw-images", type=int, default=200)
    parser.add_argument("--teacher", default=DEFAULT_TEACHER, help="Teacher of the chain (name or model path).")
    args = parser.parse_args()
    cv2.setNumThreads(0)

    sets = {"sample": [sample_jpeg(key) for key in sample_keys()]}
    stems = (LFW / "splits" / "test.txt").read_text().split()[: args.lfw_images]
    sets[f"lfw{len(stems)}"] = [(LFW / "images" / f"{stem}.jpg").read_bytes() for stem in stems]

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} "
          f"{platform.python_version()}, OpenCV {cv2.__version__}, 1 thread, teacher {args.teacher}")
    with LabelChain(ChainConfig(teacher=args.teacher), teacher=load_teacher(args.teacher)) as chain:
        chain.label_bytes(sets["sample"][0])  # warm-up: first calls allocate
        results = {name: run_chain(chain, blobs) for name, blobs in sets.items()}
        lfw_blobs = list(sets.values())[1]
        per_batch = {batch: teacher_ms(chain, lfw_blobs, batch) for batch in (1, 4, 8, 32)}
    stages = [s for s in results["sample"] if s not in ("total", "floor")] + ["floor", "total"]
    print(f"{'median ms':<12}" + "".join(f"{name:>12}" for name in results))
    for stage in stages:
        print(f"{stage:<12}" + "".join(f"{statistics.median(r[stage]):>12.2f}" for r in results.values()))
    print(f"{'chain/floor':<12}" + "".join(
        f"{statistics.median(r['total']) / statistics.median(r['floor']):>12.2f}" for r in results.values()))

    print(f"teacher {args.teacher} alone on LFW crops, median ms per image: " + ", ".join(
        f"batch {batch} {ms:.2f}" for batch, ms in per_batch.items()) + f"; batch 1 / batch 32 "
        f"{per_batch[1] / per_batch[32]:.2f}; the chain uses batch {chain.teacher_batch}")

    lfw_images = [decode_image(data) for data in list(sets.values())[1]]
    dnn, ort = detector_ms("opencv", lfw_images), detector_ms("onnxruntime", lfw_images)
    print(f"CenterFace on LFW (decode + NMS included), median ms: cv2.dnn {dnn:.2f}, "
          f"onnxruntime {ort:.2f}, ratio {dnn / ort:.2f}")


if __name__ == "__main__":
    main()
