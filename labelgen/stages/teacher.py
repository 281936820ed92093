"""Teachers: ``visible_face = teacher(image_crop, hull_mask)``.

A teacher looks at an aligned face crop (``uint8`` RGB, ``(S, S, 3)``) and the
face region (boolean ``(S, S)`` hull) and returns a boolean mask of the face
pixels it can see. Whatever of the hull it does not see becomes the
occlusion residual. Teachers:

- a trained network shipped inside the package, by name (``faceocc-w05-v1``,
  the default; ``labelgen teachers`` lists them, ``docs/teacher.md`` is the
  model card), run by onnxruntime on batches of crops (:class:`ModelTeacher`).
- ``hull``: sees the whole hull (no occlusions); the "no teacher" baseline.
- ``classical`` (no weights; a weak baseline): a per-face skin-colour model learned
  from the cheeks and nose, refined with GrabCut inside the hull. Known
  failure modes: a hand or skin-coloured occluder reads as face; eyes,
  brows, open mouths and beards can read as occlusion (holes under 3% of the
  hull are filled to limit that); harsh side light splits the face; if the
  cheeks and nose are themselves covered, the colour model is learned from
  the occluder.
- a TorchScript (``.pt``/``.ts``) or ONNX (``.onnx``) segmentation model,
  given by path. Convention: input ``float32 (N, 3, H, W)``, RGB scaled to
  ``[-1, 1]``, ``H = W = input_size`` (default 128: the crop is resized);
  output logits ``(N, K, H, W)``; the visible face is ``argmax == face_class``
  (default 1, as in FaceOccNet: 0 background, 1 face, 2 occlusion/hair).

:func:`labelgen.teachers.load_teacher` makes one of these from a name or a path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from labelgen.status import StageError, Status


class Teacher(Protocol):
    name: str

    def __call__(self, image_crop: np.ndarray, hull_mask: np.ndarray) -> np.ndarray: ...


class HullTeacher:
    """Sees the whole face region: labels with no occlusions at all."""

    name = "hull"

    def __call__(self, image_crop: np.ndarray, hull_mask: np.ndarray) -> np.ndarray:
        return hull_mask.copy()


def inner_face_region(hull_mask: np.ndarray) -> np.ndarray:
    """Cheeks and nose of an upright face crop: the hull's central band below the eyes."""
    rows, cols = np.nonzero(hull_mask)
    region = np.zeros_like(hull_mask)
    if len(rows) == 0:
        return region
    top, height = rows.min(), np.ptp(rows) + 1
    left, width = cols.min(), np.ptp(cols) + 1
    region[top + int(0.50 * height):top + int(0.72 * height),
           left + int(0.28 * width):left + int(0.72 * width)] = True
    return region & hull_mask


def fill_small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Fill holes of ``mask`` (background areas not touching the border) up to ``max_area`` pixels."""
    count, holes, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    height, width = mask.shape
    x, y, w, h, area = (stats[:, i] for i in range(5))
    enclosed = (x > 0) & (y > 0) & (x + w < width) & (y + h < height) & (area <= max_area)
    enclosed[0] = False
    return mask | enclosed[holes]


class ClassicalTeacher:
    """Skin-colour model from the inner face, refined with GrabCut inside the hull.

    Args:
        work_size: side the crop is resampled to for GrabCut (speed).
        iterations: GrabCut iterations.
        skin_distance: Mahalanobis distance (in CrCb) below which a hull pixel
            starts as probable face.
        max_hole_fraction: holes up to this fraction of the hull are filled.
    """

    name = "classical"

    def __init__(self, work_size: int = 96, iterations: int = 1, skin_distance: float = 3.0,
                 max_hole_fraction: float = 0.03):
        self.work_size = work_size
        self.iterations = iterations
        self.skin_distance = skin_distance
        self.max_hole_fraction = max_hole_fraction

    def skin_likelihood(self, image: np.ndarray, seed: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of every pixel's (Cr, Cb) to the seed's robust colour model."""
        crcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)[:, :, 1:].reshape(-1, 2).astype(np.float64)
        samples = crcb[seed.ravel()]
        centre = np.median(samples, axis=0)
        # Keep the closer 80% of the seed, so a stray occluder pixel does not widen the model.
        spread = np.linalg.norm(samples - centre, axis=1)
        core = samples[spread <= np.quantile(spread, 0.8)]
        covariance = np.cov(core.T) + np.eye(2) * 4.0  # floor: JPEG chroma is quantised
        diff = crcb - centre
        distance = np.sqrt(np.einsum("ni,ij,nj->n", diff, np.linalg.inv(covariance), diff))
        return distance.reshape(image.shape[:2])

    def __call__(self, image_crop: np.ndarray, hull_mask: np.ndarray) -> np.ndarray:
        size = image_crop.shape[0]
        image = cv2.resize(image_crop, (self.work_size, self.work_size), interpolation=cv2.INTER_AREA)
        hull = cv2.resize(hull_mask.astype(np.uint8), (self.work_size,) * 2,
                          interpolation=cv2.INTER_NEAREST).astype(bool)
        seed = inner_face_region(hull)
        if seed.sum() < 16:
            raise StageError(Status.TEACHER_FAILED, "face region too small for the skin model")
        skin = self.skin_likelihood(image, seed) < self.skin_distance

        mask = np.full(hull.shape, cv2.GC_BGD, np.uint8)
        mask[hull] = np.where(skin[hull], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
        mask[seed & skin] = cv2.GC_FGD
        if (mask == cv2.GC_PR_BGD).any() and (mask == cv2.GC_BGD).any():
            # GrabCut seeds its colour models with k-means++ from OpenCV's global RNG; reseed so the
            # labels of an image do not depend on which images the process labelled before.
            cv2.setRNGSeed(0)
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd,
                        self.iterations, cv2.GC_INIT_WITH_MASK)
        visible = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)) & hull
        visible = fill_small_holes(visible, int(self.max_hole_fraction * hull.sum()))
        visible = cv2.resize(visible.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        return visible.astype(bool) & hull_mask


def to_network_input(image_crop: np.ndarray, input_size: int) -> np.ndarray:
    """``(1, 3, input_size, input_size)`` float32 RGB in ``[-1, 1]``: the model-teacher convention."""
    image = cv2.resize(image_crop, (input_size, input_size), interpolation=cv2.INTER_AREA)
    return (image.astype(np.float32).transpose(2, 0, 1)[None] / 127.5) - 1.0


class TeacherModelError(ValueError):
    """A model file that cannot serve as a teacher (not a model, wrong input or output shape)."""


def onnx_providers() -> list[str]:
    """onnxruntime execution providers: CUDA when ``onnxruntime-gpu`` sees a GPU, always the CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


GPU_BATCH = 32  # crops per teacher call on a GPU, where batching pays
CPU_BATCH = 1  # on a CPU thread: as fast per crop as any batch, and the least memory


class ModelTeacher:
    """A segmentation network as teacher: ONNX (``.onnx``, run by onnxruntime) or TorchScript (``.pt``, ``.ts``).

    The model is checked when it loads, before any image is labelled: a file
    that is not a model, or whose output for a ``(1, 3, S, S)`` input is not
    ``(1, K, S, S)`` logits with ``K > face_class``, raises
    :class:`TeacherModelError`. :meth:`batch` runs many crops in one call
    (ONNX exports of ``svc-export`` have a dynamic batch axis); each crop's
    mask is the same as when it is run alone (tested).

    Args:
        path: the model file.
        input_size: side of the square network input; ``None``: the ONNX
            file's fixed input side if it declares one, else 128.
        face_class: output channel that means "visible face".
        name: the name recorded in results (default: the file name).
        threads: onnxruntime intra-op threads (1 in Dask workers: parallelism comes from the workers).

    Attributes:
        preferred_batch: crops per :meth:`batch` call the chain should use:
            :data:`GPU_BATCH` when the model runs on a GPU (onnxruntime's CUDA provider for
            ONNX, PyTorch's CUDA for TorchScript), else
            :data:`CPU_BATCH` (on a CPU a large batch is no faster and its
            activations cost memory: 1.8 GiB peak at 32 crops against
            0.16 GiB at 1, ``benchmarks/teacher_memory.py``).

    Example:
        >>> from labelgen.teachers import DEFAULT_TEACHER, shipped_teacher_file
        >>> teacher = ModelTeacher(shipped_teacher_file(DEFAULT_TEACHER), name=DEFAULT_TEACHER)
        >>> crop, hull = np.full((256, 256, 3), 128, np.uint8), np.ones((256, 256), bool)
        >>> [mask.shape for mask in teacher.batch([crop, crop], [hull, hull])]
        [(256, 256), (256, 256)]
    """

    def __init__(self, path: str | Path, input_size: int | None = None, face_class: int = 1,
                 name: str | None = None, threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"teacher model not found: {self.path}")
        self.name = name or self.path.name
        self.input_size = input_size or 128
        self._input_size_given = input_size is not None
        self.preferred_batch = CPU_BATCH
        self.face_class = face_class
        if self.path.suffix == ".onnx":
            self._run = self._onnx_runner(threads)
        else:
            self._run = self._torchscript_runner()
        self._check_output()

    def _onnx_runner(self, threads: int):
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(str(self.path), options, providers=onnx_providers())
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise TeacherModelError(f"{self.path} is not a usable ONNX model: {error}") from None
        declared = session.get_inputs()[0]
        if not self._input_size_given and isinstance(declared.shape[-1], int):
            self.input_size = declared.shape[-1]
        input_name = declared.name
        if "CUDAExecutionProvider" in session.get_providers():
            self.preferred_batch = GPU_BATCH
        return lambda batch: session.run(None, {input_name: batch})[0]

    def _torchscript_runner(self):
        """On the GPU when PyTorch sees one (no onnxruntime-gpu needed), else on the CPU."""
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            module = torch.jit.load(str(self.path), map_location=device).eval()
        except Exception as error:  # torch raises RuntimeError or pickle errors for non-TorchScript files
            raise TeacherModelError(f"{self.path} is not a TorchScript model: {error}") from None
        if device == "cuda":
            self.preferred_batch = GPU_BATCH

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(batch).to(device)).float().cpu().numpy()
        return run

    def _check_output(self) -> None:
        """Run one blank input through the model and check the output's shape."""
        size = self.input_size
        try:
            logits = self._run(np.zeros((1, 3, size, size), np.float32))
        except Exception as error:
            raise TeacherModelError(f"teacher model {self.path} fails on a (1, 3, {size}, {size}) input: "
                                    f"{type(error).__name__}: {error}") from None
        self._check_shape(np.asarray(logits), 1, TeacherModelError)

    def _check_shape(self, logits: np.ndarray, count: int, error: type[Exception]) -> None:
        size = self.input_size
        if logits.ndim != 4 or logits.shape[0] != count or logits.shape[1] <= self.face_class \
                or logits.shape[2:] != (size, size):
            raise error(f"teacher {self.name} output has shape {tuple(logits.shape)} for {count} input(s) of "
                        f"{size}x{size}; expected logits ({count}, K>{self.face_class}, {size}, {size})")

    def batch(self, image_crops: list[np.ndarray], hull_masks: list[np.ndarray]) -> list[np.ndarray]:
        """Visible-face masks of many crops, in one network call."""
        if not image_crops:
            return []
        inputs = np.concatenate([to_network_input(crop, self.input_size) for crop in image_crops])
        logits = np.asarray(self._run(inputs))
        self._check_shape(logits, len(image_crops), RuntimeError)
        faces = logits.argmax(axis=1) == self.face_class
        masks = []
        for face, crop, hull in zip(faces, image_crops, hull_masks):
            size = crop.shape[0]
            face = cv2.resize(face.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
            masks.append(face.astype(bool) & hull)
        return masks

    def __call__(self, image_crop: np.ndarray, hull_mask: np.ndarray) -> np.ndarray:
        return self.batch([image_crop], [hull_mask])[0]
