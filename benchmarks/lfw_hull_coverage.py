"""Detection rate and face-region coverage on a whole LFW Part Labels split.

Usage: python benchmarks/lfw_hull_coverage.py [--split test] [--limit N] [--detector centerface,auto,mediapipe]

Prints, per detector (see labelgen/stages/faces.py), the detection rate, the
pose success rate (MediaPipe), and the mean recall / precision of the
projected contour hull against the ground truth (see labelgen/eval/coverage.py
for the definitions).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgen.eval.coverage import lfw_hull_coverage  # noqa: E402
from labelgen.eval.lfw_parts import DEFAULT_ROOT_HELP, lfw_parts_location  # noqa: E402
from labelgen.stages.faces import DETECTORS, FaceFinder  # noqa: E402
from labelgen.stages.pose import PoseEstimator  # noqa: E402



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=lfw_parts_location(),
                        help=f"LFW Part Labels folder.  {DEFAULT_ROOT_HELP}")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--detector", default="centerface",
                        help=f"comma-separated detectors to compare, of {', '.join(DETECTORS)}")
    args = parser.parse_args()
    stems = (args.root / "splits" / f"{args.split}.txt").read_text().split()[: args.limit]
    for detector in args.detector.split(","):
        start = time.perf_counter()
        with PoseEstimator() as estimator:
            result = lfw_hull_coverage(args.root, stems, FaceFinder(detector, estimator))
        n = result.images
        print(f"LFW Part Labels {args.split}, detector {detector}: {n} images in {time.perf_counter() - start:.1f} s")
        print(f"  face detected : {result.detected}/{n} ({100 * result.detected / n:.2f}%)")
        print(f"  pose estimated: {result.posed}/{n} ({100 * result.posed / n:.2f}%)")
        print(f"  hull recall of GT face above the chin: {result.recall:.4f}")
        print(f"  hull precision (GT face or hair)     : {result.precision:.4f}")


if __name__ == "__main__":
    main()
