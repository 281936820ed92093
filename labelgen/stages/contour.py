"""The 64 face-contour vertices of a 3D face model, projected with the head pose.

The 3D model is MediaPipe's canonical face mesh (decoded from the shipped
``face_landmarker.task`` by ``scripts/extract_canonical_face.py`` into
``labelgen/data/canonical_face.json``). Its face-oval loop stops mid-forehead
and runs inside the ears, while the paper's contour is "jawlines plus
forehead". So, in 3D and before projection, the part of the loop above the
eye line is stretched upwards (to reach the hairline) and the loop is widened
(to reach the outer cheeks); then the closed 3D curve is resampled to 64
vertices evenly spaced along its length. Projection, not 2D landmark
detection, places the contour: it stays correct where the face is occluded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CANONICAL_FACE_FILE = Path(__file__).resolve().parents[1] / "data" / "canonical_face.json"
CONTOUR_VERTICES = 64
EYE_CORNERS = (33, 263)  # outer eye corners of the canonical mesh


@lru_cache(maxsize=1)
def _canonical_table() -> dict:
    return json.loads(CANONICAL_FACE_FILE.read_text())


def canonical_mesh() -> np.ndarray:
    """``(468, 3)`` canonical face vertices in centimetres (x right, y up, z to the viewer)."""
    return np.asarray(_canonical_table()["vertices"], np.float64)


def face_oval_indices() -> list[int]:
    """Mesh vertex ids of MediaPipe's closed face-oval loop, starting at the forehead top."""
    return list(_canonical_table()["face_oval"])


@dataclass(frozen=True)
class ContourConfig:
    """Shape of the 3D contour.

    Attributes:
        vertices: number of contour vertices (the paper uses 64).
        forehead_stretch: factor applied to the height above the eye line, so
            the oval reaches the hairline instead of stopping mid-forehead.
        widen: factor applied to x, so the oval reaches the outer cheeks and
            the ears' roots instead of running inside them.
    """

    vertices: int = CONTOUR_VERTICES
    forehead_stretch: float = 1.5
    widen: float = 1.08


def resample_closed_curve(points: np.ndarray, count: int) -> np.ndarray:
    """``count`` points evenly spaced by arc length along the closed polyline ``points``.

    The first output point is ``points[0]``.

    Example:
        >>> square = np.array([[0., 0], [1, 0], [1, 1], [0, 1]])
        >>> resample_closed_curve(square, 8)[:3].tolist()
        [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]
    """
    closed = np.vstack([points, points[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    targets = np.linspace(0.0, arc[-1], count, endpoint=False)
    return np.stack([np.interp(targets, arc, closed[:, d]) for d in range(points.shape[1])], axis=1)


def project_points(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                   camera: np.ndarray) -> np.ndarray:
    """Project ``(n, 3)`` model points with ``P = K [R | t]`` to ``(n, 2)`` pixels.

    Example:
        >>> K = np.array([[100., 0, 50], [0, 100., 50], [0, 0, 1]])
        >>> project_points(np.array([[0., 0, 0]]), np.eye(3), np.array([0., 0, 10]), K).tolist()
        [[50.0, 50.0]]
    """
    camera_points = points @ rotation.T + translation
    depth = np.maximum(camera_points[:, 2:3], 1e-6)
    return (camera_points[:, :2] / depth) @ camera[:2, :2].T + camera[:2, 2]


@lru_cache(maxsize=8)
def face_contour_3d(config: ContourConfig = ContourConfig()) -> np.ndarray:
    """``(config.vertices, 3)`` contour of the canonical face, forehead top first, read-only."""
    mesh = canonical_mesh()
    oval = mesh[face_oval_indices()].copy()
    eye_line = mesh[list(EYE_CORNERS), 1].mean()
    above = oval[:, 1] > eye_line
    oval[above, 1] = eye_line + config.forehead_stretch * (oval[above, 1] - eye_line)
    oval[:, 0] *= config.widen
    contour = resample_closed_curve(oval, config.vertices)
    contour.setflags(write=False)
    return contour


def project_face_contour(rotation: np.ndarray, translation: np.ndarray, camera: np.ndarray,
                         config: ContourConfig = ContourConfig()) -> np.ndarray:
    """Project the 3D contour with ``P = K [R | t]``: ``(config.vertices, 2)`` image pixels."""
    return project_points(face_contour_3d(config), rotation, translation, camera)
