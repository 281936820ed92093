"""Export a trained model to TorchScript and ONNX, and check the copies.

Both exports follow the teacher convention of :mod:`labelgen.stages.teacher`
(float32 N x 3 x S x S RGB in [-1, 1] -> N x K x S x S logits), so the files
plug into labelgen as teachers (``--teacher model.onnx`` or ``model.pt``). ONNX uses the legacy
TorchScript-based exporter at opset 17, whose graphs OpenCV's ``cv2.dnn``
(labelgen's ONNX runtime for teachers) reads; the batch axis is dynamic for
onnxruntime.

OpenCV 5.0's ``cv2.dnn`` gets the conv -> ELU -> BatchNorm pattern of every
FaceOccNet block wrong (apparently it folds the BatchNorm into the convolution
across the ELU: each op alone, and conv -> ReLU -> BatchNorm, come out right;
a whole model's logits were off by ~0.1-1). The ONNX copy therefore writes each
BatchNorm as the equivalent explicit per-channel multiply-add
(:class:`ChannelAffine`), which ``cv2.dnn`` runs correctly; the TorchScript copy
keeps the original modules.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ONNX_OPSET = 17
TOLERANCE = 1e-4


def example_input(size: int = 128, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A deterministic float32 input in [-1, 1] (random, so every pixel path is exercised)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


class ChannelAffine(nn.Module):
    """An eval-mode BatchNorm2d as constants: ``x * scale + shift`` per channel."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias.detach() - bn.running_mean * scale
        self.register_buffer("scale", scale.reshape(1, -1, 1, 1).clone())
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def unfuse_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every affine, tracked BatchNorm2d replaced by :class:`ChannelAffine`."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d) and child.affine and child.running_var is not None:
                setattr(parent, name, ChannelAffine(child))
    return model


def export_torchscript(model: nn.Module, path: str | Path, size: int = 128) -> Path:
    """Traces the model (eval mode) and saves it; FaceOccNet has no data-dependent control flow."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what labelgen loads
        traced = torch.jit.trace(model, example_input(size))
    traced.save(str(path))
    return path


def export_onnx(model: nn.Module, path: str | Path, size: int = 128, opset: int = ONNX_OPSET) -> Path:
    """Exports with the legacy exporter; input ``image``, output ``logits``, dynamic batch.

    BatchNorms are written as explicit multiply-adds (see the module docstring).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = unfuse_batchnorm(model)  # see the module docstring: works around a cv2.dnn fusion bug
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            model, (example_input(size),), str(path), input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset, dynamo=False)
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))
    return path


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max())


def verify_exports(model: nn.Module, torchscript: Path | None, onnx_path: Path | None, size: int = 128,
                   batch: int = 2) -> dict[str, float]:
    """Largest absolute logit difference of each runtime against the PyTorch model.

    Checked: TorchScript at batch 1 and ``batch``, onnxruntime at both, and
    cv2.dnn at batch 1 (the way labelgen runs ONNX teachers).

    Returns:
        ``{runtime: max |difference|}``.
    """
    model = model.eval()
    results = {}
    for n in sorted({1, batch}):
        x = example_input(size, n, seed=n)
        with torch.no_grad():
            reference = model(x).numpy()
        if torchscript is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(torchscript), map_location="cpu").eval()
            with torch.no_grad():
                results[f"torchscript (batch {n})"] = _max_diff(module(x).numpy(), reference)
        if onnx_path is not None:
            import onnxruntime as ort

            session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            results[f"onnxruntime (batch {n})"] = _max_diff(session.run(None, {"image": x.numpy()})[0], reference)
            if n == 1:
                import cv2

                net = cv2.dnn.readNetFromONNX(str(onnx_path))
                net.setInput(x.numpy())
                results["cv2.dnn (batch 1)"] = _max_diff(net.forward(), reference)
    return results


def export_model(model: nn.Module, out_dir: str | Path, name: str = "model", size: int = 128,
                 formats: tuple[str, ...] = ("torchscript", "onnx"), check: bool = True) -> dict:
    """Writes ``<name>.pt`` (TorchScript) and/or ``<name>.onnx`` and verifies them.

    Returns:
        ``{"torchscript": path | None, "onnx": path | None, "max_diff": {...}}``.

    Raises:
        RuntimeError: If ``check`` and a runtime differs from PyTorch by more than 1e-4.
    """
    out_dir = Path(out_dir)
    model = model.cpu().eval()
    ts = export_torchscript(model, out_dir / f"{name}.pt", size) if "torchscript" in formats else None
    ox = export_onnx(model, out_dir / f"{name}.onnx", size) if "onnx" in formats else None
    diffs = verify_exports(model, ts, ox, size) if check else {}
    bad = {k: v for k, v in diffs.items() if not v <= TOLERANCE}
    if bad:
        raise RuntimeError(f"exported model differs from PyTorch by more than {TOLERANCE}: {bad}")
    return {"torchscript": ts, "onnx": ox, "max_diff": diffs}
