"""Comparing teachers: one chain per teacher vs. shared geometry, side by side.

Usage: python benchmarks/eval_labels.py [--images 60] [--teacher out/teacher/teacher.pt]

``labelgen eval-labels`` labels each synthetic image with several teachers.
Detection, pose, contour, crop and hull do not depend on the teacher, so
:meth:`LabelChain.label_image_by_teachers` computes them once per image. This
script labels the same synthetic test images both ways in one run (OpenCV
threads off, as in a Dask worker), checks that the label maps are identical,
and prints the seconds per image and their ratio.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgen.chain import ChainConfig, LabelChain  # noqa: E402
from labelgen.eval.quality import teacher_list  # noqa: E402
from labelgen.eval.synth import synthetic_split  # noqa: E402
from labelgen.teachers import load_teacher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60, help="synthetic test images (held-out occluders)")
    parser.add_argument("--teacher", action="append", default=[], help="extra teacher model (.pt / .onnx)")
    args = parser.parse_args()
    cv2.setNumThreads(0)
    names = teacher_list(args.teacher)
    images = [image for _, image, _ in synthetic_split("test", limit=args.images)]

    separate, separate_s = [], 0.0
    for name in names:
        with LabelChain(ChainConfig(teacher=name)) as chain:
            chain.label_image(images[0])  # warm-up, not timed
            begin = time.perf_counter()
            separate.append([chain.label_image(image).label for image in images])
            separate_s += time.perf_counter() - begin
    with LabelChain(ChainConfig(teacher="hull")) as chain:
        teachers = [load_teacher(name) for name in names]
        chain.label_image_by_teachers(images[0], teachers)
        begin = time.perf_counter()
        shared = [chain.label_image_by_teachers(image, teachers) for image in images]
        shared_s = time.perf_counter() - begin

    identical = all(
        (mine.label is None and theirs is None) or np.array_equal(mine.label, theirs)
        for column, name in enumerate(names) for mine, theirs in zip((row[column] for row in shared), separate[column]))
    print(f"{len(images)} synthetic test images x {len(names)} teachers ({', '.join(names)}); "
          f"identical label maps: {identical}")
    print(f"one chain per teacher : {1000 * separate_s / len(images):7.1f} ms per image")
    print(f"shared geometry       : {1000 * shared_s / len(images):7.1f} ms per image")
    print(f"ratio (per teacher / shared): {separate_s / shared_s:.2f}")


if __name__ == "__main__":
    main()
