"""The per-image labelling chain: bytes in, pseudo-label out, never an exception.

decode -> detect -> pose -> contour -> aligned crop -> hull -> teacher ->
residual -> components -> resize to the output crop size. How detect and
pose find the face (CenterFace then FaceLandmarker on a crop, or
FaceLandmarker alone on the whole image) is ``ChainConfig.detector``; see
:mod:`labelgen.stages.faces`.

:meth:`LabelChain.label_many` labels a batch: the geometry (everything up to
the hull) per image, then the teacher once over the batch of crops (a
network on a GPU runs much faster on a batch), then residual and components
per image. Labels are the same as image by image (tested).

Labels are computed on a ``work_size`` crop (large enough for the teacher and
the morphology) and then resized to ``crop_size`` (the training size). Every
failure becomes a :class:`~labelgen.status.Status` code with a message.
"""
from __future__ import annotations

import copy
import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from labelgen.stages.components import label_occlusions, min_blob_area
from labelgen.stages.contour import ContourConfig, project_face_contour
from labelgen.stages.crop import CropTransform, aligned_crop_transform, crop_image, resize_image, resize_labels
from labelgen.stages.decode import DEFAULT_MAX_PIXELS, decode_image
from labelgen.stages.faces import DETECTORS, FaceFinder, FoundFace
from labelgen.stages.hull import fill_convex_hull
from labelgen.stages.pose import PoseEstimator
from labelgen.stages.residual import MorphologyConfig, occlusion_residual
from labelgen.stages.teacher import CPU_BATCH, Teacher
from labelgen.status import StageError, Status, read_status
from labelgen.teachers import DEFAULT_TEACHER, load_teacher

DEFAULT_DETECTOR = "centerface"
# What a stored config without a ``detector`` (a store made before the option existed) was made
# with: resuming such a store must take the same path.
DETECTOR_BEFORE_THE_OPTION = "centerface"
# Likewise the pixel limit of a store made before ``max_pixels`` existed (decode's fixed limit then).
MAX_PIXELS_BEFORE_THE_OPTION = 1 << 30


@dataclass(frozen=True)
class ChainConfig:
    """Everything that decides the labels; stored in the Zarr store's attributes.

    Attributes:
        crop_size: side of the stored face crops and label maps (paper: 128).
        work_size: side of the crop the labels are computed on.
        crop_scale: crop side as a multiple of the face height (2.2 frames faces
            like LFW-funneled images).
        min_image_side: images with a shorter side are ``too_small``.
        min_face_side: faces whose detection box is shorter are ``too_small``.
        detect_max_side: images are downscaled to this longest side for detection
            (CenterFace, and FaceLandmarker on the whole image).
        detect_threshold: CenterFace confidence threshold.
        detector: how the face is found: ``centerface``, ``mediapipe`` or ``auto``
            (see :mod:`labelgen.stages.faces`).
        min_blob_fraction: occlusion blobs under this fraction of the face region are dropped.
        teacher: a shipped teacher's name (default ``faceocc-w05-v1``), ``classical``,
            ``hull`` or a model path.
        max_pixels: images whose header declares more pixels are ``too_large``, refused
            before decoding (the default keeps a 2 GiB worker alive: see
            :data:`labelgen.stages.decode.DEFAULT_MAX_PIXELS`).
    """

    crop_size: int = 128
    work_size: int = 256
    crop_scale: float = 2.2
    min_image_side: int = 32
    min_face_side: int = 24
    detect_max_side: int = 640
    detect_threshold: float = 0.5
    detector: str = DEFAULT_DETECTOR
    min_blob_fraction: float = 0.01
    teacher: str = DEFAULT_TEACHER
    max_pixels: int = DEFAULT_MAX_PIXELS
    contour: ContourConfig = field(default_factory=ContourConfig)
    morphology: MorphologyConfig = field(default_factory=MorphologyConfig)

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}: use one of {', '.join(DETECTORS)}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, not {self.max_pixels}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ChainConfig":
        """The config a stored dict describes; settings stored before they existed get that time's values."""
        values = as_recorded_before_the_options(values)
        values["contour"] = ContourConfig(**values.get("contour", {}))
        morphology = dict(values.get("morphology", {}))
        if "erode_size" in morphology:
            morphology["erode_size"] = tuple(morphology["erode_size"])
        values["morphology"] = MorphologyConfig(**morphology)
        return cls(**values)


def as_recorded_before_the_options(values: dict) -> dict:
    """A stored config dict with the settings added since filled in as they were before (a copy).

    A store made before ``detector`` or ``max_pixels`` existed was made with
    :data:`DETECTOR_BEFORE_THE_OPTION` and :data:`MAX_PIXELS_BEFORE_THE_OPTION`;
    resuming it must take the same path, and its job compares as such.
    """
    return {"detector": DETECTOR_BEFORE_THE_OPTION, "max_pixels": MAX_PIXELS_BEFORE_THE_OPTION, **values}


@dataclass
class LabelResult:
    """What the chain made of one image. Arrays are ``None`` unless ``status`` is OK
    (geometry fields are filled as far as the chain got)."""

    key: str
    status: Status = Status.PENDING
    message: str = ""
    image: np.ndarray | None = None  # (S, S, 3) uint8 aligned face crop
    label: np.ndarray | None = None  # (S, S) uint8: 0 background, 1 face, >=2 occlusion blobs
    image_shape: tuple[int, int] = (0, 0)
    faces_seen: int = -1  # -1: detection did not run (or a box hint replaced it)
    box: np.ndarray | None = None  # (4,) x0, y0, x1, y1 in original pixels
    score: float = float("nan")
    rotation: np.ndarray | None = None  # (3, 3)
    translation: np.ndarray | None = None  # (3,)
    camera: np.ndarray | None = None  # (3, 3)
    pose_method: str = ""
    contour: np.ndarray | None = None  # (64, 2) original pixels
    crop: CropTransform | None = None  # original pixels -> the S x S crop
    blobs: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @classmethod
    def unreadable(cls, key: str, error: Exception) -> "LabelResult":
        """The result for an image whose bytes could not be read (missing file, permission, not a file)."""
        return cls(key=key, status=read_status(error), message=f"{type(error).__name__}: {error}")

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def rodrigues(self) -> np.ndarray | None:
        """The rotation as a Rodrigues vector (3,), or ``None`` before the pose stage."""
        if self.rotation is None:
            return None
        import cv2

        return cv2.Rodrigues(self.rotation)[0].ravel()

    def to_record(self) -> dict:
        """JSON-ready summary (no pixel arrays)."""
        def listed(array):
            return None if array is None else np.asarray(array, np.float64).round(4).tolist()
        record = {
            "key": self.key, "status": self.status.label, "status_code": int(self.status),
            "message": self.message, "image_shape": list(self.image_shape), "faces_seen": self.faces_seen,
            "box": listed(self.box), "score": None if np.isnan(self.score) else round(float(self.score), 4),
            "pose": None, "contour": listed(self.contour),
            "crop_matrix": None if self.crop is None else listed(self.crop.matrix),
            "occlusion_blobs": self.blobs,
            "timings_ms": {k: round(v * 1000, 2) for k, v in self.timings.items()},
        }
        if self.rotation is not None:
            record["pose"] = {"rotation": listed(self.rotation), "rodrigues": listed(self.rodrigues),
                              "translation": listed(self.translation), "camera": listed(self.camera),
                              "method": self.pose_method}
        return record


@dataclass(frozen=True)
class FaceGeometry:
    """What the chain knows about a face before the teacher runs (shared by every teacher)."""

    crop: CropTransform
    image: np.ndarray
    hull: np.ndarray


class LabelChain:
    """Holds the models (loaded once) and labels images, one at a time or in batches.

    Example:
        >>> from labelgen.sample import sample_image
        >>> with LabelChain() as chain:
        ...     result = chain.label_image(sample_image("astronaut/original.jpg"), key="astronaut")
        >>> result.status.label, result.label.shape, int(result.label.max()) >= 1
        ('ok', (128, 128), True)
    """

    def __init__(self, config: ChainConfig = ChainConfig(), teacher: Teacher | None = None,
                 teacher_batch: int | None = None):
        self.config = config
        self.pose_estimator = PoseEstimator()
        self.face_finder = FaceFinder(config.detector, self.pose_estimator, config.detect_max_side,
                                      config.detect_threshold)
        self.teacher = teacher if teacher is not None else load_teacher(config.teacher)
        # Crops per teacher call: the teacher's preference (large on a GPU, 1 on a CPU) unless given.
        self.teacher_batch = teacher_batch or getattr(self.teacher, "preferred_batch", CPU_BATCH)

    def close(self) -> None:
        self.pose_estimator.close()

    def __enter__(self) -> "LabelChain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def label_bytes(self, data: bytes, key: str = "", box_hint: tuple = ()) -> LabelResult:
        """Label encoded image bytes. Never raises: failures become status codes.

        Args:
            data: the encoded image.
            key: the image's key, kept in the result.
            box_hint: a known face box ``(x0, y0, x1, y1)`` (e.g. VGGFace2's
                loose boxes); when given, detection is skipped and
                ``faces_seen`` is -1 (unknown).
        """
        return self.label_many([(key, data, box_hint)])[0]

    def label_many(self, images: Sequence[tuple[str, bytes, tuple]]) -> list[LabelResult]:
        """Label many encoded images, ``(key, data, box_hint)`` each; the teacher sees them in batches.

        Per image: decode, detection, pose, contour, crop and hull. Then the
        teacher over batches of ``teacher_batch`` crops, then residual and
        components per image. The labels equal those of :meth:`label_bytes`
        image by image; each image's ``teacher`` timing is its share of its
        batch. Never raises.
        """
        results = [LabelResult(key=key) for key, _, _ in images]
        for start in range(0, len(images), self.teacher_batch):
            group = range(start, min(start + self.teacher_batch, len(images)))
            geometries = {i: self._decoded_geometry(images[i][1], results[i], images[i][2]) for i in group}
            ready = [i for i in group if geometries[i] is not None]
            masks = self._teach(self.teacher, [geometries[i] for i in ready], [results[i] for i in ready])
            for i, visible in zip(ready, masks):
                if visible is not None:
                    _failures_as_status(results[i], lambda: self._occlusions(results[i], geometries[i], visible))
        return results

    def _decoded_geometry(self, data: bytes, result: LabelResult, box_hint: tuple) -> FaceGeometry | None:
        """Decode and :meth:`_geometry`; ``None`` (with the result's status set) when the image fails."""
        def decode_and_measure() -> FaceGeometry:
            with _timed(result, "decode"):
                rgb = decode_image(data, self.config.max_pixels)
            return self._geometry(rgb, result, box_hint)

        return _failures_as_status_value(result, decode_and_measure)

    def label_image(self, rgb: np.ndarray, key: str = "", box_hint: tuple = ()) -> LabelResult:
        """Label an already decoded ``uint8`` RGB image. Never raises."""
        return self.label_image_by_teachers(rgb, [self.teacher], key, box_hint)[0]

    def label_image_by_teachers(self, rgb: np.ndarray, teachers: Sequence[Teacher], key: str = "",
                                box_hint: tuple = ()) -> list[LabelResult]:
        """Label one image once per teacher, sharing detection, pose, contour, crop and hull.

        For comparing teachers: each sees exactly the same face region, and the
        geometry is computed once instead of once per teacher. Never raises.

        Returns:
            One result per teacher, in order (all with the same status when the
            image fails before the teacher stage).
        """
        shared = LabelResult(key=key)
        geometry = _failures_as_status_value(shared, lambda: self._geometry(rgb, shared, box_hint))
        results = [copy.deepcopy(shared) for _ in teachers]
        if geometry is not None:
            for result, teacher in zip(results, teachers):
                visible = self._teach(teacher, [geometry], [result])[0]
                if visible is not None:
                    _failures_as_status(result, lambda: self._occlusions(result, geometry, visible))
        return results

    def _geometry(self, rgb: np.ndarray, result: LabelResult, box_hint: tuple = ()) -> FaceGeometry:
        """Detection, pose, contour, aligned crop and hull: everything before the teacher."""
        config = self.config
        result.image_shape = tuple(rgb.shape[:2])
        if min(rgb.shape[:2]) < config.min_image_side:
            raise StageError(Status.TOO_SMALL, f"image of {rgb.shape[1]}x{rgb.shape[0]} is below "
                             f"the minimum side of {config.min_image_side} px")
        if box_hint:
            face = FoundFace(-1, np.asarray(box_hint, np.float32), float("nan"), None, "hint")
            result.box, result.faces_seen = face.box, -1
        else:
            with _timed(result, "detect"):
                try:
                    face = self.face_finder.detect(rgb)
                except StageError as error:
                    if error.status == Status.NO_FACE:
                        result.faces_seen = 0
                    raise
            result.box, result.score, result.faces_seen = face.box, face.score, face.faces_seen
        x0, y0, x1, y1 = result.box
        if min(x1 - x0, y1 - y0) < config.min_face_side:
            raise StageError(Status.TOO_SMALL, f"face of {x1 - x0:.0f}x{y1 - y0:.0f} px is below "
                             f"the minimum side of {config.min_face_side} px")

        with _timed(result, "pose"):
            pose = self.face_finder.pose(rgb, face)
        result.rotation, result.translation, result.camera = pose.rotation, pose.translation, pose.camera
        result.pose_method = pose.method

        with _timed(result, "contour"):
            result.contour = project_face_contour(pose.rotation, pose.translation, pose.camera, config.contour)
        with _timed(result, "crop"):
            work = aligned_crop_transform(result.contour, config.work_size, config.crop_scale)
            work_image = crop_image(rgb, work)
        with _timed(result, "hull"):
            hull = fill_convex_hull(work.apply(result.contour), work_image.shape)
        if hull.sum() < 64:
            raise StageError(Status.POSE_FAILED, "projected face region is (almost) empty")
        return FaceGeometry(work, work_image, hull)

    @staticmethod
    def _teach(teacher: Teacher, geometries: Sequence[FaceGeometry],
               results: Sequence[LabelResult]) -> list[np.ndarray | None]:
        """The teacher's visible-face mask per crop, in one batch when the teacher can batch.

        A teacher that fails on the batch is asked image by image, so one bad
        crop costs only its own label; an image the teacher fails on gets
        ``teacher_failed`` (or the status the teacher chose) and ``None``.
        """
        if not geometries:
            return []
        crops, hulls = [g.image for g in geometries], [g.hull for g in geometries]
        batch = getattr(teacher, "batch", None)
        if batch is not None and len(geometries) > 1:
            start = time.perf_counter()
            try:
                masks = [np.asarray(mask, bool) for mask in batch(crops, hulls)]
            except Exception:  # retried image by image below, where each failure gets its own status
                masks = None
            if masks is not None and all(m.shape == g.hull.shape for m, g in zip(masks, geometries)):
                share = (time.perf_counter() - start) / len(geometries)
                for result in results:
                    result.timings["teacher"] = result.timings.get("teacher", 0.0) + share
                return masks
        return [_failures_as_status_value(result, lambda: _one_mask(teacher, crop, hull, result))
                for result, crop, hull in zip(results, crops, hulls)]

    def _occlusions(self, result: LabelResult, geometry: FaceGeometry, visible: np.ndarray) -> None:
        """Residual and components from the teacher's mask: the label map and the result's final fields."""
        config = self.config
        work, work_image, hull = geometry.crop, geometry.image, geometry.hull
        with _timed(result, "residual"):
            face_height = config.work_size / config.crop_scale
            residual = occlusion_residual(hull, visible, face_height, config.morphology)
        with _timed(result, "components"):
            labels = label_occlusions(hull, residual, min_blob_area(int(hull.sum()), config.min_blob_fraction))
        with _timed(result, "resize"):
            result.label = resize_labels(labels, config.crop_size)
            result.image = resize_image(work_image, config.crop_size)
            result.crop = work.resized(config.crop_size)
        result.blobs = int(max(0, int(labels.max()) - 1))
        result.status = Status.OK


def _one_mask(teacher: Teacher, crop: np.ndarray, hull: np.ndarray, result: LabelResult) -> np.ndarray:
    """The teacher on one crop, its failures as ``teacher_failed``."""
    with _timed(result, "teacher"):
        try:
            visible = np.asarray(teacher(crop, hull), bool)
        except StageError:
            raise
        except Exception as error:
            raise StageError(Status.TEACHER_FAILED, f"teacher {teacher.name}: "
                             f"{type(error).__name__}: {error}") from error
    if visible.shape != hull.shape:
        raise StageError(Status.TEACHER_FAILED, f"teacher returned a {visible.shape} mask for a {hull.shape} crop")
    return visible


def _failures_as_status_value(result: LabelResult, work):
    """``work()``'s value, or ``None`` with the failure recorded in ``result`` (see :func:`_failures_as_status`)."""
    value: list = []
    _failures_as_status(result, lambda: value.append(work()))
    return value[0] if value else None


def _failures_as_status(result: LabelResult, work) -> LabelResult:
    """Run ``work()``; any failure becomes the result's status and message instead of an exception."""
    try:
        work()
    except StageError as error:
        result.status, result.message = error.status, error.message
    except Exception as error:  # a bug or a model crash must not end a million-image job
        result.status = Status.INTERNAL_ERROR
        result.message = f"{type(error).__name__}: {error} | {_where(error)}"
    return result


class _timed:
    """Context manager adding the elapsed seconds of a stage to ``result.timings``."""

    def __init__(self, result: LabelResult, stage: str):
        self.result, self.stage = result, stage

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.result.timings[self.stage] = self.result.timings.get(self.stage, 0.0) + time.perf_counter() - self.start


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return " <- ".join(f"{frame.name}:{frame.lineno}" for frame in reversed(frames[-3:]))
