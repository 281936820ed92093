"""Checkpoints that load with ``torch.load(weights_only=True)``, and one clear error when a file is not one.

``weights_only`` refuses arbitrary pickled objects, so everything in a
checkpoint is a tensor, a number, a string, or a list / dict of those: RNG
states (numpy's and Python's tuples included) are converted to tensors here
and back on restore.

Every command that reads a checkpoint goes through :func:`load_checkpoint`
(and puts weights into a model with :func:`load_weights`): a file that is not
a checkpoint of this code (a pickle that would run code when loaded, a text
file, a truncated copy, a bare ``state_dict``, weights of another shape)
raises :class:`CheckpointError`, whose message is one line naming the file and
what is wrong with it.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from labelgen.disk_space import no_space_error
from train.models import create_model

CHECKPOINT_FORMAT = 1
CHECKPOINT_SUFFIX = ".ckpt"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format (a zip archive); TorchScript files are zip archives too
PICKLE_MAGIC = b"\x80"  # PyTorch's legacy format and plain pickles (protocol 2 and later)


class CheckpointError(ValueError):
    """A checkpoint or exported model file that cannot be used; the message names it and says why.

    Args:
        path: The file.
        reason: What is wrong, one line.
        action: What could not be done with it ("cannot load PATH: REASON").
    """

    def __init__(self, path: str | Path, reason: str, action: str = "load"):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot {action} {path}: {reason}")


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
    """Writes ``payload`` atomically: a crash mid-write never leaves a truncated checkpoint.

    The payload goes to a temporary file beside ``path`` (``.<name>.tmp<pid>``),
    renamed over ``path`` when whole; on any failure the temporary file is removed.

    Raises:
        OSError: The write failed; with errno ``ENOSPC`` (or ``EDQUOT``) and ``path``
            as its file name when the disk (quota) is full. ``path`` is as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        # Through a Python file object, so a full disk reaches us as an OSError (as the context of
        # torch's "unexpected pos" RuntimeError) rather than only as that RuntimeError.
        with open(temporary, "wb") as handle:
            torch.save({"format": CHECKPOINT_FORMAT, **payload}, handle)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        full = no_space_error(error)
        if full is not None:
            raise OSError(full.errno, os.strerror(full.errno), str(path)) from None
        raise


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
    """Loads an ``svc-train`` checkpoint (file or run folder) on the CPU with ``weights_only=True``.

    Raises:
        FileNotFoundError: No such file, or a run folder without ``checkpoints/last.ckpt``.
        CheckpointError: The file is not a checkpoint of ``svc-train`` (see the module docstring).
    """
    path = resolve_checkpoint(path)
    check_file_format(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error says what matters
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(path, _refusal(error)) from None
    except Exception as error:  # torch's reader raises RuntimeError and pickle's own errors for damaged files
        raise CheckpointError(path, f"it is damaged ({first_sentence(error)})") from None
    _check_contents(path, payload)
    return payload


def check_file_format(path: Path, kind: str = "a PyTorch checkpoint") -> None:
    """Refuses a file that cannot be ``kind`` from its first bytes: empty, text, another format, or a cut zip.

    Raises:
        CheckpointError: Naming what the file is instead.
    """
    with open(path, "rb") as handle:
        head = handle.read(256)
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise CheckpointError(path, f"it is truncated or damaged: a zip archive of {path.stat().st_size:,} bytes "
                                        "without the directory at its end (an interrupted copy or download?)")
        return
    if head.startswith(PICKLE_MAGIC):
        return
    if not head:
        raise CheckpointError(path, f"it is empty (0 bytes), not {kind}")
    try:
        first_line = head.decode("utf-8").splitlines()[0].strip()
    except (UnicodeDecodeError, IndexError):
        raise CheckpointError(path, f"it is not {kind} (it starts with the bytes {head[:8].hex(' ')})") from None
    if first_line.startswith("version https://git-lfs"):
        raise CheckpointError(path, f"it is a Git LFS pointer, not {kind}: run 'git lfs pull' to fetch the file")
    raise CheckpointError(path, f"it is a text file, not {kind} (it starts with {first_line[:60]!r})")


def _refusal(error: pickle.UnpicklingError) -> str:
    """What ``torch.load(weights_only=True)`` refused, without torch's advice to load the file unsafely."""
    text = str(error)
    called = re.search(r"GLOBAL ([\w.]+)", text)
    if called:
        return (f"refused: loading it would call {called.group(1)}, which runs code; a checkpoint holds only "
                "tensors, numbers and text")
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", text)
    return ("refused: it holds pickled objects that a weights-only load does not accept"
            f"{f' ({detail.group(1)})' if detail else ''}; a checkpoint holds only tensors, numbers and text")


def first_sentence(error: BaseException) -> str:
    """The first sentence of an error's message (libraries append advice and more lines), or its type's name."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(". ")[0].rstrip(".")


def _check_contents(path: Path, payload) -> None:
    """Refuses a loadable file that is not what ``svc-train`` writes (a bare ``state_dict``, anything else)."""
    if isinstance(payload, dict) and isinstance(payload.get("config"), dict) and isinstance(payload.get("model"), dict):
        missing = [key for key in ("model", "num_classes", "width") if key not in payload["config"]]
        if missing:
            raise CheckpointError(path, f"its config lacks {', '.join(missing)}: not a checkpoint of svc-train")
        if int(payload.get("format", 0)) > CHECKPOINT_FORMAT:
            raise CheckpointError(path, f"it is of checkpoint format {payload['format']}, newer than this code's "
                                        f"{CHECKPOINT_FORMAT}: update the package")
        return
    if isinstance(payload, dict) and payload and all(isinstance(value, torch.Tensor) for value in payload.values()):
        what = (f"a bare state_dict of {len(payload)} tensors, without the config that says which model they "
                "belong to")
    elif isinstance(payload, dict):
        what = f"a dict with the keys {', '.join(map(str, list(payload)[:6]))}"
    else:
        what = f"a {type(payload).__name__}"
    raise CheckpointError(path, f"it is not a checkpoint of svc-train (which holds a config and model weights): "
                                f"it holds {what}")


def load_weights(model: nn.Module, state: dict, path: str | Path, what: str) -> None:
    """``model.load_state_dict(state)``, or one line saying which tensors do not fit.

    Args:
        model: The model to fill.
        state: The checkpoint's ``model`` weights.
        path: The checkpoint, for the message.
        what: The model, for the message (e.g. "faceoccnet of width 0.25 with 3 classes").

    Raises:
        CheckpointError: Missing, unexpected or differently shaped tensors.
    """
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    reshaped = [name for name in expected if name in state
                and getattr(state[name], "shape", None) != expected[name].shape]
    problems = []
    if reshaped:
        name = reshaped[0]
        problems.append(f"{len(reshaped)} of other shapes (first: {name} is {_shape(state[name])} in the file, "
                        f"{_shape(expected[name])} in the model)")
    if missing:
        problems.append(f"{len(missing)} missing (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} the model does not have (first: {unexpected[0]})")
    if problems:
        raise CheckpointError(path, f"its weights do not fit {what}: of its tensors, {'; '.join(problems)}")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(path, f"its weights do not fit {what} ({first_sentence(error)})") from None


def restore_failure(path: str | Path, error: BaseException) -> CheckpointError:
    """The error for a checkpoint whose training state (optimiser, schedule, step, RNG) does not restore."""
    what = f"it has no {error.args[0]!r}" if isinstance(error, KeyError) else first_sentence(error)
    return CheckpointError(path, f"its training state cannot be restored ({what})", action="resume from")


def _shape(tensor) -> str:
    shape = getattr(tensor, "shape", None)
    return "x".join(map(str, shape)) if shape is not None else type(tensor).__name__


def describe_model(config: dict) -> str:
    """``"faceoccnet of width 0.25 with 3 classes"`` from a config's ``model``, ``width`` and ``num_classes``."""
    return f"{config['model']} of width {config['width']:g} with {config['num_classes']} classes"


def load_start_checkpoint(path: str | Path, config: dict) -> tuple[Path, dict]:
    """The checkpoint a new run starts from (``--init-weights``: fine-tuning), as ``(file, payload)``.

    Args:
        path: The checkpoint file or run folder.
        config: The new run's settings: ``model``, ``width`` and ``num_classes`` must be the checkpoint's.

    Raises:
        FileNotFoundError, CheckpointError: As :func:`load_checkpoint`; another model, width or classes.
    """
    path = resolve_checkpoint(path)
    start = load_checkpoint(path)
    for key in ("model", "width", "num_classes"):
        if start["config"].get(key) != config[key]:
            raise CheckpointError(path, f"it has {key}={start['config'].get(key)!r}, this run asks for "
                                        f"{config[key]!r}", action="start from")
    return path, start


def load_start_weights(model: nn.Module, start: tuple[Path, dict], config: dict) -> None:
    """Fills a new run's ``model`` (made from ``config``) with the weights of :func:`load_start_checkpoint`'s result.

    Raises:
        CheckpointError: The weights do not fit the model.
    """
    path, payload = start
    load_weights(model, payload["model"], path, f"this run's {describe_model(config)}")


def model_from_checkpoint(path_or_payload: str | Path | dict, path: str | Path | None = None) -> nn.Module:
    """Rebuilds the trained model (eval mode, CPU) from a checkpoint's config and weights.

    Args:
        path_or_payload: A checkpoint file or run folder, or what :func:`load_checkpoint` returned.
        path: With a payload, the file it came from (for messages).

    Raises:
        FileNotFoundError, CheckpointError: As :func:`load_checkpoint`; the weights do not fit the config's model.
    """
    if isinstance(path_or_payload, dict):
        payload, path = path_or_payload, path or "the checkpoint"
    else:
        path = resolve_checkpoint(path_or_payload)
        payload = load_checkpoint(path)
    config = payload["config"]
    try:
        model = create_model(config["model"], num_classes=config["num_classes"], width=config["width"])
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(path, f"its config names no model this code builds ({first_sentence(error)})") from None
    load_weights(model, payload["model"], path, f"the {describe_model(config)} its config describes")
    return model.eval()
