"""Finding the face and its landmarks: which detector runs before the pose.

Three ways, chosen by ``ChainConfig.detector`` (``labelgen run --detector``):

- ``centerface``: CenterFace finds the faces, then FaceLandmarker runs on an
  enlarged crop around the primary one. Two networks find the face (CenterFace,
  then FaceLandmarker's own BlazeFace on the crop); the path of every store
  made before the option existed.
- ``mediapipe``: FaceLandmarker alone, on the whole image (downscaled; see
  :meth:`~labelgen.stages.pose.PoseEstimator.faces_in_image`): its own
  detector finds up to four faces, the primary one is chosen among them as
  CenterFace's would be, and its landmarks give the pose directly. One
  landmark pass per image; no CenterFace.
- ``auto``: ``mediapipe`` first; when it finds no face, or the primary face
  is small in the frame (its box shorter than :data:`SMALL_FACE_FRACTION` of
  the image's longer side), CenterFace and the crop as ``centerface``.
  FaceLandmarker's detector is a short-range one, made for faces that fill a
  good part of the frame, and on the downscaled whole image a small face gets
  few pixels; CenterFace plus a crop at full resolution is made for those.

The box a face gets is the same kind whichever way found it: the landmarks'
bounding box is mapped to where CenterFace draws its box (see
:data:`~labelgen.stages.pose.LANDMARK_BOX_TO_DETECTION_BOX`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelgen.stages.detect import CenterFaceDetector, Detections, select_primary_face
from labelgen.stages.pose import LandmarkedFace, Pose, PoseEstimator
from labelgen.status import StageError, Status

DETECTORS = ("auto", "centerface", "mediapipe")
# A face whose box is shorter than this fraction of the image's longer side goes to CenterFace
# under ``auto``. Web-face corpora sit far above it (LFW and CASIA-WebFace: about 0.45 of the
# 250 px side; VGGFace2's loose crops more); on a 640 px downscaled image it is a face of at
# least 128 px, the resolution at which whole-image landmarks match those of the crop.
SMALL_FACE_FRACTION = 0.2


@dataclass
class FoundFace:
    """The primary face of an image, as detection left it.

    Attributes:
        faces_seen: faces the detector that decided found (FaceLandmarker
            reports at most its ``max_faces``).
        box: ``(4,)`` float32 ``x0, y0, x1, y1``, original pixels.
        score: CenterFace's confidence; NaN when FaceLandmarker found the face
            (it reports none).
        landmarked: the face's whole-image landmarks when FaceLandmarker found
            it (then the pose needs no other landmark pass), else ``None``.
        found_by: ``"centerface"`` or ``"mediapipe"`` (``"hint"`` for a known box the chain was given).
    """

    faces_seen: int
    box: np.ndarray
    score: float
    landmarked: LandmarkedFace | None
    found_by: str


class FaceFinder:
    """Detection and pose of the primary face, the way ``detector`` says.

    Args:
        detector: ``"auto"``, ``"centerface"`` or ``"mediapipe"`` (see the module).
        pose_estimator: the FaceLandmarker wrapper (owned by the caller).
        detect_max_side: longest side images are downscaled to, for CenterFace
            and for FaceLandmarker on the whole image.
        detect_threshold: CenterFace's confidence threshold.
        small_face_fraction: under ``auto``, a face shorter than this fraction
            of the image's longer side is found again by CenterFace.

    Example:
        >>> from labelgen.sample import sample_image
        >>> with PoseEstimator() as estimator:
        ...     finder = FaceFinder("mediapipe", estimator)
        ...     image = sample_image("astronaut/original.jpg")
        ...     face = finder.detect(image)
        ...     pose = finder.pose(image, face)
        >>> face.found_by, face.faces_seen, pose.landmarks.shape
        ('mediapipe', 1, (478, 2))
    """

    def __init__(self, detector: str, pose_estimator: PoseEstimator, detect_max_side: int = 640,
                 detect_threshold: float = 0.5, small_face_fraction: float = SMALL_FACE_FRACTION):
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}: use one of {', '.join(DETECTORS)}")
        self.detector = detector
        self.pose_estimator = pose_estimator
        self.detect_max_side = detect_max_side
        self.detect_threshold = detect_threshold
        self.small_face_fraction = small_face_fraction
        self._centerface: CenterFaceDetector | None = None  # loaded on first use: ``mediapipe`` never needs it

    @property
    def centerface(self) -> CenterFaceDetector:
        if self._centerface is None:
            self._centerface = CenterFaceDetector(max_side=self.detect_max_side, threshold=self.detect_threshold)
        return self._centerface

    def detect(self, rgb: np.ndarray) -> FoundFace:
        """The primary face of ``rgb``.

        Raises:
            StageError: ``no_face`` when the detector finds none.
        """
        if self.detector != "centerface":
            found = self._landmarker_face(rgb)
            if found is not None and (self.detector == "mediapipe" or not self._small(found.box, rgb.shape)):
                return found
            if self.detector == "mediapipe":
                raise StageError(Status.NO_FACE, "no face found by FaceLandmarker")
        detections = self.centerface(rgb)
        if len(detections) == 0:
            raise StageError(Status.NO_FACE, "no face detected")
        primary = select_primary_face(detections, rgb.shape)
        return FoundFace(len(detections), detections.boxes[primary], float(detections.scores[primary]), None,
                         "centerface")

    def pose(self, rgb: np.ndarray, face: FoundFace) -> Pose:
        """The face's pose: from its whole-image landmarks when it has them, else from a crop around its box.

        Raises:
            StageError: ``pose_failed``.
        """
        if face.landmarked is not None:
            return self.pose_estimator.pose_of(face.landmarked)
        return self.pose_estimator(rgb, face.box)

    def _landmarker_face(self, rgb: np.ndarray) -> FoundFace | None:
        faces = self.pose_estimator.faces_in_image(rgb, self.detect_max_side)
        if not faces:
            return None
        height, width = rgb.shape[:2]
        # Clipped like CenterFace's boxes: the hairline of a face at the top edge lies outside.
        boxes = np.clip(np.stack([face.box() for face in faces]).reshape(-1, 2, 2), 0, [width, height]).reshape(-1, 4)
        boxes = boxes.astype(np.float32)
        candidates = Detections(boxes, np.ones(len(faces), np.float32), np.zeros((len(faces), 5, 2), np.float32))
        primary = select_primary_face(candidates, rgb.shape)
        return FoundFace(len(faces), boxes[primary], float("nan"), faces[primary], "mediapipe")

    def _small(self, box: np.ndarray, image_shape: tuple[int, ...]) -> bool:
        height = box[3] - box[1]
        return bool(height < self.small_face_fraction * max(image_shape[:2]))
