"""Detection rate and face-region coverage on a whole LFW Part Labels split.

Usage: python scripts/lfw_hull_coverage.py [--split test] [--limit N]

Prints the detection rate (CenterFace), the pose success rate (MediaPipe),
and the mean recall / precision of the projected contour hull against the
ground truth (see labelgen/coverage.py for the definitions).
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

from labelgen.coverage import CHIN_LANDMARK, hull_coverage  # noqa: E402
from labelgen.stages.contour import project_face_contour  # noqa: E402
from labelgen.stages.decode import decode_image  # noqa: E402
from labelgen.stages.detect import CenterFaceDetector, select_primary_face  # noqa: E402
from labelgen.stages.hull import fill_convex_hull  # noqa: E402
from labelgen.stages.pose import PoseEstimator  # noqa: E402
from labelgen.status import StageError  # noqa: E402

DEFAULT_ROOT = REPO.parent / "shared" / "data" / "lfw_parts"


def measure(root: Path, stems: list[str]) -> dict:
    detector = CenterFaceDetector()
    detected, posed, recalls, precisions = 0, 0, [], []
    with PoseEstimator() as estimator:
        for stem in stems:
            image = decode_image((root / "images" / f"{stem}.jpg").read_bytes())
            truth = cv2.imread(str(root / "labels" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
            faces = detector(image)
            if len(faces) == 0:
                continue
            detected += 1
            try:
                pose = estimator(image, faces.boxes[select_primary_face(faces, image.shape)])
            except StageError:
                continue
            posed += 1
            hull = fill_convex_hull(project_face_contour(pose.rotation, pose.translation, pose.camera), image.shape)
            score = hull_coverage(hull, truth, pose.landmarks[CHIN_LANDMARK, 1])
            recalls.append(score.recall)
            precisions.append(score.precision)
    return {"images": len(stems), "detected": detected, "posed": posed,
            "recall": float(np.mean(recalls)), "precision": float(np.mean(precisions))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    stems = (args.root / "splits" / f"{args.split}.txt").read_text().split()[: args.limit]
    start = time.perf_counter()
    result = measure(args.root, stems)
    n = result["images"]
    print(f"LFW Part Labels {args.split}: {n} images in {time.perf_counter() - start:.1f} s")
    print(f"  face detected : {result['detected']}/{n} ({100 * result['detected'] / n:.2f}%)")
    print(f"  pose estimated: {result['posed']}/{n} ({100 * result['posed'] / n:.2f}%)")
    print(f"  hull recall of GT face above the chin: {result['recall']:.3f}")
    print(f"  hull precision (GT face or hair)     : {result['precision']:.3f}")


if __name__ == "__main__":
    main()
