"""Load a trained segmenter from any of its file forms and run it on uint8 images.

Accepted files: a training checkpoint (``.ckpt``, from ``svc-train``), a
TorchScript module (``.pt`` / ``.ts``, from ``svc-export``) or an ONNX model
(``.onnx``, run with onnxruntime). All follow the teacher convention of
:mod:`labelgen.stages.teacher`: float32 N x 3 x H x W RGB in [-1, 1] in,
N x K x H x W logits out.

A TorchScript file is a program, not only weights: loading and running it runs
whatever code it holds, which can read and overwrite files. Checkpoints load
with ``weights_only`` (a file that would run code is refused) and ONNX graphs
run onnxruntime's own operators. A file that cannot be loaded raises
:class:`~train.checkpoint.CheckpointError` (one line naming it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from train.checkpoint import (CHECKPOINT_SUFFIX, CheckpointError, check_file_format, first_sentence, load_checkpoint,
                              model_from_checkpoint, resolve_checkpoint)
from train.datasets.lfw_parts import CLASS_NAMES as LFW_CLASSES
from train.evaluation.evaluate import STORE_CLASSES
from train.models import flip_averaged_logits, normalize_image


def trained_classes(config: dict) -> tuple[str, ...]:
    """Class names of a model ``svc-train`` made with ``config`` (a checkpoint's saved config).

    Example:
        >>> trained_classes({"lfw_parts": True, "occlude": False}), trained_classes({"labels": ["s.zarr"]})
        (('background', 'face', 'hair'), ('background', 'face', 'occlusion'))
    """
    return LFW_CLASSES if config.get("lfw_parts") and not config.get("occlude") else STORE_CLASSES


class Segmenter:
    """A model file wrapped as ``logits = segmenter(uint8 images)``.

    ``class_names`` are the model's classes where the file records them (training
    checkpoints), ``None`` for exported TorchScript / ONNX files.

    Args:
        path: Checkpoint (file or run folder), TorchScript or ONNX file.
        device: Torch device for checkpoints and TorchScript (ONNX runs on the CPU).
        flip_average: Average the logits of each image and of its mirror image
            (:mod:`train.models.flip`; two forward passes).
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", flip_average: bool = False):
        path = Path(path)
        self.path = path
        self.flip_average = flip_average
        self.device = torch.device(device)
        self._session = None
        self.class_names: tuple[str, ...] | None = None
        if path.suffix == ".onnx":
            import onnxruntime as ort

            if not path.is_file():
                raise FileNotFoundError(f"model not found: {path}")
            try:
                options = ort.SessionOptions()
                # As many threads as torch uses: runs side by side with one thread each stay one thread each.
                options.intra_op_num_threads = torch.get_num_threads()
                self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
                raise CheckpointError(path, f"it is not a usable ONNX model ({first_sentence(error)})") from None
            self._input = self._session.get_inputs()[0].name
            self.module = None
        elif path.is_dir() or path.suffix == CHECKPOINT_SUFFIX:
            checkpoint = resolve_checkpoint(path)
            payload = load_checkpoint(checkpoint)
            self.module = model_from_checkpoint(payload, checkpoint).to(self.device)
            self.class_names = trained_classes(payload["config"])
        else:
            if not path.is_file():
                raise FileNotFoundError(f"model not found: {path}")
            check_file_format(path, "a TorchScript model")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # still what labelgen's teachers use
                    self.module = torch.jit.load(str(path), map_location=self.device).eval()
            except Exception as error:  # torch raises RuntimeError or pickle errors for non-TorchScript files
                raise CheckpointError(path, f"it is not a TorchScript model ({first_sentence(error)})") from None

    @property
    def torch_module(self) -> nn.Module | None:
        """The torch module (``None`` for ONNX)."""
        return self.module

    def logits(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Logits (float32, CPU) of uint8 RGB images, N x 3 x H x W or N x H x W x 3."""
        x = normalize_image(images)
        if self.flip_average:
            return flip_averaged_logits(self._logits_of_normalized, x)
        return self._logits_of_normalized(x)

    def _logits_of_normalized(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is not None:
            return torch.from_numpy(self._session.run(None, {self._input: x.numpy()})[0])
        with torch.inference_mode():
            return self.module(x.to(self.device)).float().cpu()

    def predict(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Class maps (int64 N x H x W) of uint8 RGB images."""
        return self.logits(images).argmax(1)

    __call__ = predict
