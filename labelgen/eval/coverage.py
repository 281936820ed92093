"""How well the projected face region covers a ground-truth face (LFW Part Labels).

The hull is meant to be "jawlines plus forehead": all face skin down to the
chin, hair over the forehead allowed, the neck left out. So we score:

- recall: the fraction of ground-truth face pixels above the chin that lie
  inside the hull (the chin row is MediaPipe's chin landmark, 152, which
  is detected independently of the projected contour);
- precision: the fraction of hull pixels that are ground-truth face or hair.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CHIN_LANDMARK = 152
GT_FACE, GT_HAIR = 1, 2


@dataclass(frozen=True)
class Coverage:
    recall: float
    precision: float


def hull_coverage(hull: np.ndarray, ground_truth: np.ndarray, chin_row: float) -> Coverage:
    """Score a boolean hull against an LFW Part Labels map (0 bg, 1 face, 2 hair).

    Example:
        >>> gt = np.zeros((4, 4), np.uint8); gt[:3, 1:3] = 1
        >>> hull = np.zeros((4, 4), bool); hull[:2, 1:3] = True
        >>> hull_coverage(hull, gt, chin_row=1.0)
        Coverage(recall=1.0, precision=1.0)
    """
    face_above_chin = ground_truth == GT_FACE
    face_above_chin[int(np.floor(chin_row)) + 1:] = False
    recall = (hull & face_above_chin).sum() / max(int(face_above_chin.sum()), 1)
    precision = (hull & (ground_truth > 0)).sum() / max(int(hull.sum()), 1)
    return Coverage(float(recall), float(precision))


@dataclass(frozen=True)
class SplitCoverage:
    """Detection and pose rates and mean coverage over a set of LFW Part Labels images."""

    images: int
    detected: int
    posed: int
    recall: float
    precision: float


def lfw_hull_coverage(root: Path, stems: list[str], finder) -> SplitCoverage:
    """Find the face and its pose, project the contour and score the hull on each image.

    Args:
        root: the LFW Part Labels folder (``images/``, ``labels/``).
        stems: image names, e.g. from ``splits/test.txt``.
        finder: a :class:`labelgen.stages.faces.FaceFinder` (its detector decides
            how faces are found, as in the chain).
    """
    from labelgen.stages.contour import project_face_contour
    from labelgen.stages.decode import decode_image
    from labelgen.stages.hull import fill_convex_hull
    from labelgen.status import StageError

    detected, posed, recalls, precisions = 0, 0, [], []
    for stem in stems:
        image = decode_image((root / "images" / f"{stem}.jpg").read_bytes())
        truth = cv2.imread(str(root / "labels" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        try:
            face = finder.detect(image)
        except StageError:
            continue
        detected += 1
        try:
            pose = finder.pose(image, face)
        except StageError:
            continue
        posed += 1
        hull = fill_convex_hull(project_face_contour(pose.rotation, pose.translation, pose.camera), image.shape)
        score = hull_coverage(hull, truth, pose.landmarks[CHIN_LANDMARK, 1])
        recalls.append(score.recall)
        precisions.append(score.precision)
    return SplitCoverage(len(stems), detected, posed, float(np.mean(recalls)), float(np.mean(precisions)))
