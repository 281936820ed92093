"""Recovers a shipped teacher's FaceOccNet weights from its ONNX file, as a training checkpoint.

The checkpoints behind ``faceocc-w05-v1`` were never committed, but its ONNX file
holds every weight: the convolutions as they are, and each BatchNorm folded by
``train.evaluation.export`` into a per-channel ``x * scale + shift``. Inference only needs
``scale`` and ``shift``; training needs the BatchNorm's own parameters, because in
training mode it normalises with the batch's statistics before applying its
weight and bias. Any ``(mean, var)`` gives back the same folded layer with

    weight = scale * sqrt(var + eps),   bias = shift + mean * scale,

so we take the statistics the layer actually sees: the mean and variance of
each BatchNorm's input over training draws (LFW Part Labels train faces with
synthetic occluders, as ``svc-train --lfw-parts --occlude`` draws them). The
evaluation-mode network is then the ONNX file's exactly (up to float rounding),
and a training step starts from the batch statistics the weights were trained with.

The script checks that the PyTorch model, flip-averaged like the file, gives
the ONNX file's logits on real crops (the synthetic val split) to ``--tolerance``
relative to the largest logit, and refuses to write the checkpoint otherwise.

Usage:
    python scripts/teacher_weights_from_onnx.py labelgen/teachers/faceocc-w05-v1.onnx \\
        --out out/teacher_v2/faceocc-w05-v1.ckpt
    svc-train --lfw-parts --occlude --width 0.5 --init-weights out/teacher_v2/faceocc-w05-v1.ckpt ...
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.checkpoint import save_checkpoint  # noqa: E402
from train.datasets.occluded import OccludedLFWTrain, SyntheticLFWEval  # noqa: E402
from train.models import FlipAveraged, create_model, normalize_image  # noqa: E402

PREFIX = "model."  # svc-export --flip-average wraps the network in FlipAveraged, whose attribute is `model`


def onnx_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The file's initialisers by name, without the flip wrapper's prefix."""
    graph = onnx.load(str(path)).graph
    return {init.name.removeprefix(PREFIX): numpy_helper.to_array(init) for init in graph.initializer}


def load_folded(model: nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Loads convolutions as they are and each BatchNorm as its folded ``scale`` / ``shift`` (mean 0, var 1).

    Raises:
        ValueError: a model tensor has no initialiser, an initialiser no tensor, or a shape differs.
    """
    state = model.state_dict()
    used = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            scale, shift = weights[f"{name}.scale"].reshape(-1), weights[f"{name}.shift"].reshape(-1)
            state[f"{name}.weight"] = torch.from_numpy(scale.copy())
            state[f"{name}.bias"] = torch.from_numpy(shift.copy())
            state[f"{name}.running_mean"] = torch.zeros_like(state[f"{name}.running_mean"])
            state[f"{name}.running_var"] = torch.full_like(state[f"{name}.running_var"], 1 - module.eps)
            used |= {f"{name}.scale", f"{name}.shift"}
        elif isinstance(module, nn.Conv2d):
            for kind in ("weight", "bias"):
                key = f"{name}.{kind}"
                if tuple(weights[key].shape) != tuple(state[key].shape):
                    raise ValueError(f"{key}: the file has shape {weights[key].shape}, the model {tuple(state[key].shape)}")
                state[key] = torch.from_numpy(weights[key].copy())
                used.add(key)
    unused = sorted(set(weights) - used)
    if unused:
        raise ValueError(f"initialisers the model has no place for: {unused}")
    model.load_state_dict(state)


@torch.no_grad()
def unfold_batchnorms(model: nn.Module, images: torch.Tensor) -> None:
    """Replaces each folded BatchNorm by the one with its input's statistics over ``images`` (same eval output)."""
    batchnorms = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in batchnorms}

    def hook(name):
        def record(_module, inputs, _output):
            x = inputs[0].double()
            sums[name][0] = sums[name][0] + x.sum((0, 2, 3))
            sums[name][1] = sums[name][1] + (x * x).sum((0, 2, 3))
            sums[name][2] += x.numel() // x.shape[1]
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in batchnorms.items()]
    model.eval()
    for batch in images.split(32):
        model(normalize_image(batch))
    for handle in handles:
        handle.remove()
    for name, bn in batchnorms.items():
        total, squares, count = sums[name]
        mean = total / count
        var = squares / count - mean * mean
        scale, shift = bn.weight.double(), bn.bias.double()  # still the folded values
        bn.weight.copy_(scale * torch.sqrt(var + bn.eps))
        bn.bias.copy_(shift + mean * scale)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.zero_()


def max_relative_difference(model: nn.Module, onnx_path: str | Path, images: torch.Tensor) -> float:
    """max |PyTorch flip-averaged - ONNX| / max |ONNX| logit over ``images`` (one onnxruntime thread)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    wrapped = FlipAveraged(model).eval()
    worst, scale = 0.0, 0.0
    with torch.no_grad():
        for batch in images.split(16):
            x = normalize_image(batch)
            reference = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
            worst = max(worst, float(np.abs(wrapped(x).numpy() - reference).max()))
            scale = max(scale, float(np.abs(reference).max()))
    return worst / scale


def recover(onnx_path: str | Path, width: float, calibration: torch.Tensor) -> nn.Module:
    """The file's FaceOccNet in eval mode, its BatchNorms unfolded with ``calibration`` (uint8 N x 3 x S x S)."""
    model = create_model("faceoccnet", num_classes=3, width=width).eval()
    load_folded(model, onnx_weights(onnx_path))
    unfold_batchnorms(model, calibration)
    return model


def training_draws(root: str | None, count: int) -> torch.Tensor:
    """``count`` training draws of ``svc-train --lfw-parts --occlude`` (seed 0, epoch 0), uint8 at 128 px."""
    draws = OccludedLFWTrain(root, "train", size=128, seed=0, cache=False, limit=count)
    return torch.stack([draws[i][0] for i in range(len(draws))])


def synthetic_val_crops(root: str | None, count: int) -> torch.Tensor:
    """The first ``count`` crops of the synthetic val split (the pixels of ``labelgen synth --split val``)."""
    check = SyntheticLFWEval(root, "val", size=128, limit=count)
    return torch.stack([check[i][0] for i in range(len(check))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx_file", type=Path, help="A teacher exported by svc-export (e.g. faceocc-w05-v1.onnx).")
    parser.add_argument("--out", type=Path, required=True, help="Checkpoint to write (.ckpt).")
    parser.add_argument("--width", type=float, default=0.5, help="FaceOccNet width of the file.")
    parser.add_argument("--lfw-root", default=None, help="LFW Part Labels folder (default: $SVC_LFW_PARTS or "
                                                         "../shared/data/lfw_parts).")
    parser.add_argument("--calibration", type=int, default=512,
                        help="Training draws (one per train face, at most 1,500) for the BatchNorm statistics.")
    parser.add_argument("--check", type=int, default=200, help="Synthetic val crops for the check.")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="Largest relative logit difference allowed.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = recover(args.onnx_file, args.width, training_draws(args.lfw_root, args.calibration))
    crops = synthetic_val_crops(args.lfw_root, args.check)
    after = max_relative_difference(model, args.onnx_file, crops)
    print(f"max |logit difference| / max |logit|, PyTorch (flip-averaged) vs onnxruntime: {after:.2e} "
          f"({len(crops)} synthetic val crops)")
    if after > args.tolerance:
        sys.exit(f"Error: the recovered weights differ from the file by {after:.2e} > {args.tolerance:.0e}")
    digest = hashlib.sha256(args.onnx_file.read_bytes()).hexdigest()
    save_checkpoint(args.out, {
        "model": model.state_dict(),
        "config": {"model": "faceoccnet", "width": args.width, "num_classes": 3, "occlude": True,
                   "lfw_parts": True},
        "provenance": {"onnx_file": str(args.onnx_file), "sha256": digest, "calibration_draws": args.calibration,
                       "max_relative_difference": after},
    })
    print(f"wrote {args.out} (from {args.onnx_file.name}, sha256 {digest[:12]}...)")


if __name__ == "__main__":
    main()
