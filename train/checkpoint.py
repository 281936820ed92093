"""Checkpoints that load with ``torch.load(weights_only=True)``.

``weights_only`` refuses arbitrary pickled objects, so everything in a
checkpoint is a tensor, a number, a string, or a list / dict of those: RNG
states (numpy's and Python's tuples included) are converted to tensors here
and back on restore.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from train.models import create_model

CHECKPOINT_FORMAT = 1
CHECKPOINT_SUFFIX = ".ckpt"


def rng_state() -> dict[str, torch.Tensor]:
    """This process's torch / CUDA / numpy / Python RNG states, as tensors."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": torch.tensor([pos, has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([gauss], dtype=torch.float64),
        "python": torch.tensor([version, *py_state], dtype=torch.int64),
        "python_gauss": torch.tensor([float("nan") if py_gauss is None else py_gauss], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restores what :func:`rng_state` captured (CUDA only when present on both sides)."""
    torch.set_rng_state(state["torch"].cpu())
    pos, has_gauss = (int(v) for v in state["numpy_pos"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, pos, has_gauss, float(state["numpy_gauss"][0])))
    version, *py_state = (int(v) for v in state["python"])
    gauss = float(state["python_gauss"][0])
    random.setstate((version, tuple(py_state), None if np.isnan(gauss) else gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(list(state["cuda"].cpu()))


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Writes ``payload`` atomically: a crash mid-write never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, temporary)
    os.replace(temporary, path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's ``checkpoints/last.ckpt``.

    Raises:
        FileNotFoundError: If neither exists.
    """
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no checkpoints/last.ckpt in run folder {path}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Loads a checkpoint (file or run folder) on the CPU with ``weights_only=True``."""
    return torch.load(resolve_checkpoint(path), map_location="cpu", weights_only=True)


def model_from_checkpoint(path_or_payload: str | Path | dict) -> nn.Module:
    """Rebuilds the trained model (eval mode, CPU) from a checkpoint's config and weights."""
    payload = path_or_payload if isinstance(path_or_payload, dict) else load_checkpoint(path_or_payload)
    config = payload["config"]
    model = create_model(config["model"], num_classes=config["num_classes"], width=config["width"])
    model.load_state_dict(payload["model"])
    return model.eval()
