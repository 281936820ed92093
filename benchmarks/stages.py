"""Per-stage latency of the labelling chain, and its ratio to the unavoidable floor.

Usage: python benchmarks/stages.py [--lfw-images 200] [--teacher NAME[,NAME...]]
           [--detector centerface,auto,mediapipe] [--hard-images N] [--no-extras]

The floor is what any pose-based labeller pays per image: JPEG decode +
face detection + landmarks/pose. Everything is measured in this one run, on
the same images, single-threaded (OpenCV threads off, as in a Dask worker):
the embedded sample and the first N LFW Part Labels test images, and with
``--hard-images N`` also the first N of the synthetic occluded test split and
of the small-face set (see ``benchmarks/detector_sets.py``). The chain runs
as in a shard (``label_many``: the teacher sees the chain's batches, 1 crop per call on a CPU); its
``teacher`` row is each image's share of its batch.

Each set is labelled by one chain per teacher and detector (by default every
shipped teacher, so old and new print side by side), one after the other. With
several ``--detector`` choices a second table compares them: faces found
(detection gave a box), pose found, ok, how often ``auto`` handed the image
to CenterFace, and the median floor and whole chain in ms.

Also (unless ``--no-extras``): each teacher alone on the same LFW crops, the
teachers taking turns crop by crop (so a busy machine slows them alike) with
their cost as a fraction of the first teacher's, and at batch 1, 4, 8 and 32;
and CenterFace under cv2.dnn vs onnxruntime (the chain uses the faster).
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
from benchmarks.timing import interleaved_ms  # noqa: E402
from labelgen.chain import ChainConfig, LabelChain, LabelResult  # noqa: E402
from labelgen.stages.decode import decode_image  # noqa: E402
from labelgen.stages.detect import CenterFaceDetector  # noqa: E402
from labelgen.teachers import load_teacher, shipped_teachers  # noqa: E402

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


def teacher_crops(chain: LabelChain, blobs: list[bytes], limit: int = 64) -> tuple[list, list]:
    """The aligned crops and hulls the chain's teacher sees for the first ``limit`` images that get that far."""
    geometries = [chain._decoded_geometry(data, LabelResult(key=""), ()) for data in blobs]
    geometries = [g for g in geometries if g is not None][:limit]
    return [g.image for g in geometries], [g.hull for g in geometries]


def batched(teacher):
    """``teacher`` as a call on lists of crops and hulls."""
    return getattr(teacher, "batch", None) or (lambda cs, hs: [teacher(c, h) for c, h in zip(cs, hs)])


def teacher_ms(teacher, crops: list, hulls: list, batch: int, repeats: int = 3) -> float:
    """Median ms per crop of ``teacher`` alone, called on batches of ``batch`` crops."""
    run = batched(teacher)
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
    parser.add_argument("--teacher", default=",".join(shipped_teachers()),
                        help="Comma-separated teachers of the chain (names or model paths); the first is the "
                             "reference of the cost ratios. Default: every shipped teacher.")
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
    teacher_names = args.teacher.split(",")
    cv2.setNumThreads(0)

    sets = {"sample": sample_set()}
    lfw_name = f"lfw{len(lfw_set(args.lfw_images))}"
    sets[lfw_name] = lfw_set(args.lfw_images)
    if args.hard_images:
        sets[f"occluded{args.hard_images}"] = occluded_set(args.occluded_dir, args.hard_images)
        sets[f"small{args.hard_images}"] = small_set(args.hard_images)

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} "
          f"{platform.python_version()}, OpenCV {cv2.__version__}, 1 thread, teachers {', '.join(teacher_names)}")
    teachers = {name: load_teacher(name) for name in teacher_names}
    chains = {(teacher, detector): LabelChain(ChainConfig(teacher=teacher, detector=detector),
                                              teacher=teachers[teacher])
              for teacher in teacher_names for detector in detectors}
    try:
        for chain in chains.values():
            chain.label_bytes(sets["sample"][0])  # warm-up: first calls allocate
        results = {(set_name, *key): run_chain(chain, blobs)
                   for set_name, blobs in sets.items() for key, chain in chains.items()}
        first = chains[teacher_names[0], detectors[0]]
        if not args.no_extras:
            crops, hulls = teacher_crops(first, sets[lfw_name])
            # Batch 1, the teachers taking turns crop by crop, so their ratios hold on a busy machine.
            alone = interleaved_ms({name: lambda pair, run=batched(teacher): run([pair[0]], [pair[1]])
                                    for name, teacher in teachers.items()}, list(zip(crops, hulls)), rounds=5)
            per_batch = {name: {batch: teacher_ms(teacher, crops, hulls, batch)
                                for batch in (1, 4, 8, 32) if batch <= len(crops)}
                         for name, teacher in teachers.items()}
    finally:
        for chain in chains.values():
            chain.close()

    for teacher, detector in chains:
        timings = {set_name: results[set_name, teacher, detector] for set_name in sets}
        stages = [s for s in timings["sample"] if s not in ("total", "floor") + FLAGS] + ["floor", "total"]
        print(f"\nteacher {teacher}, detector {detector}")
        print(f"{'median ms':<12}" + "".join(f"{set_name:>12}" for set_name in timings))
        for stage in stages:
            print(f"{stage:<12}" + "".join(f"{median(r, stage):>12.2f}" for r in timings.values()))
        print(f"{'chain/floor':<12}" + "".join(f"{median(r, 'total') / median(r, 'floor'):>12.2f}"
                                              for r in timings.values()))

    for teacher in teacher_names:
        print(f"\nteacher {teacher}")
        print(f"{'set':<14}{'detector':<12}{'images':>7}{'faces %':>9}{'pose %':>8}{'ok %':>8}{'to CF %':>8}"
              f"{'floor ms':>9}{'chain ms':>9}{'floor x':>8}{'chain x':>8}")
        for set_name in sets:
            base = results[set_name, teacher, detectors[0]]
            for detector in detectors:
                r = results[set_name, teacher, detector]
                share = {flag: 100 * np.mean(r[flag]) for flag in FLAGS}
                floor, total = median(r, "floor"), median(r, "total")
                print(f"{set_name:<14}{detector:<12}{len(r['ok']):>7}{share['found']:>9.2f}{share['posed']:>8.2f}"
                      f"{share['ok']:>8.2f}{share['centerface']:>8.1f}{floor:>9.2f}{total:>9.2f}"
                      f"{median(base, 'floor') / floor:>8.2f}{median(base, 'total') / total:>8.2f}")
    print(f"('to CF': images whose face CenterFace found; 'floor x', 'chain x': speed-up over {detectors[0]})")

    if args.no_extras:
        return
    reference = teacher_names[0]
    print(f"\nteachers alone on {len(crops)} LFW crops, taking turns crop by crop, batch 1, median ms per crop:")
    for name in teacher_names:
        print(f"  {name:<40}{alone[name]:>8.2f} ms  {alone[name] / alone[reference]:.2f} of {reference}")
    for name in teacher_names:
        batches = per_batch[name]
        print(f"teacher {name} alone, median ms per crop: " + ", ".join(
            f"batch {batch} {ms:.2f}" for batch, ms in batches.items()) + f"; batch 1 / batch {max(batches)} "
            f"{batches[1] / batches[max(batches)]:.2f}; the chain uses batch {chains[name, detectors[0]].teacher_batch}")

    lfw_images = [decode_image(data) for data in sets[lfw_name]]
    dnn, ort = detector_ms("opencv", lfw_images), detector_ms("onnxruntime", lfw_images)
    print(f"CenterFace on LFW (decode + NMS included), median ms: cv2.dnn {dnn:.2f}, "
          f"onnxruntime {ort:.2f}, ratio {dnn / ort:.2f}")


if __name__ == "__main__":
    main()
