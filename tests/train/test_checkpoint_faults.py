"""Bad checkpoints and model files given to every svc-* command: one ``Error:`` line naming the file, never a
traceback, and a checkpoint that would run code when loaded never does. Which model files are code.

The files are real: a real checkpoint of a short training, cut in half, its weights swapped for another width's,
saved bare; pickles whose ``__reduce__`` creates a file (shown to do so when loaded unsafely); a text file and a
Git LFS pointer named ``.ckpt``. docs/reliability.md lists each case with its test.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from labelgen.sample import sample_jpeg, sample_keys
from train import cli
from train.checkpoint import load_checkpoint
from train.config import TrainConfig
from train.datasets.synthetic import make_synthetic_store
from train.engine.trainer import train
from train.evaluation.export import export_onnx, export_torchscript
from train.models import create_model

WIDTH = 0.125


class CreatesAFile:
    """Pickles as a call of ``open(path, "w")``: unpickling it creates ``path`` (code run by loading)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A label store, a real checkpoint of a 2-step training on it, and a photo."""
    folder = tmp_path_factory.mktemp("checkpoints")
    make_synthetic_store(folder / "labels.zarr", count=48, size=32, shard_size=16)
    train(TrainConfig(out=str(folder / "run"), labels=[str(folder / "labels.zarr")], width=WIDTH, batch_size=8,
                      max_steps=2, num_workers=0, val_fraction=0.2, progress=False))
    (folder / "photo.jpg").write_bytes(sample_jpeg(sample_keys()[0]))
    return folder


def write_bad_file(kind: str, folder: Path, good: Path, marker: Path) -> Path:
    """A file of ``kind`` named like a checkpoint; ``marker`` is what the code-running ones would create."""
    path = folder / f"{kind}.ckpt"
    payload = torch.load(good, weights_only=True)
    if kind == "code-in-torch-save":  # torch.save's zip format, the payload of a real checkpoint plus a call
        torch.save({**payload, "extra": CreatesAFile(marker)}, path)
    elif kind == "code-in-plain-pickle":  # PyTorch's legacy (plain pickle) format
        path.write_bytes(pickle.dumps({"config": payload["config"], "model": CreatesAFile(marker)}, protocol=2))
    elif kind == "text":
        path.write_text("<html><body>404 Not Found</body></html>\n")
    elif kind == "git-lfs-pointer":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 7340032\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "other-shapes":  # the config says width 0.125, the weights are of width 0.25
        torch.save({**payload, "model": create_model("faceoccnet", 3, width=2 * WIDTH).state_dict()}, path)
    elif kind == "bare-state-dict":
        torch.save(payload["model"], path)
    return path


# What the one line says about each kind of file.
BAD_FILES = {
    "code-in-torch-save": "refused: loading it would call io.open, which runs code",
    "code-in-plain-pickle": "refused: loading it would call io.open, which runs code",
    "text": "it is a text file, not a PyTorch checkpoint (it starts with '<html>",
    "git-lfs-pointer": "it is a Git LFS pointer, not a PyTorch checkpoint: run 'git lfs pull'",
    "empty": "it is empty (0 bytes)",
    "truncated": "it is truncated or damaged",
    "other-shapes": "its weights do not fit",
    "bare-state-dict": "it is not a checkpoint of svc-train",
}


def command_reading(name: str, checkpoint: Path, work: Path, out: Path) -> tuple:
    """``(click command, arguments)`` of the svc-* command ``name`` reading ``checkpoint``."""
    store = ["--labels", str(work / "labels.zarr"), "--width", str(WIDTH), "--batch-size", "8", "--num-workers", "0"]
    return {
        "svc-train --resume": (cli.main, [*store, "--out", str(out), "--resume", str(checkpoint)]),
        "svc-train --init-weights": (cli.main, [*store, "--out", str(out), "--init-weights", str(checkpoint)]),
        "svc-eval": (cli.eval_main, [str(checkpoint), "--max-images", "2", "--num-workers", "0"]),
        "svc-predict": (cli.predict_main, [str(work / "photo.jpg"), "--model", str(checkpoint), "--out-dir", str(out)]),
        "svc-export": (cli.export_main, [str(checkpoint), "--out-dir", str(out)]),
        "svc-loop --init-weights": (cli.loop_main, ["--source", "sample", "--out", str(out), "--width", str(WIDTH),
                                                    "--init-weights", str(checkpoint)]),
    }[name]


COMMANDS = ["svc-train --resume", "svc-train --init-weights", "svc-eval", "svc-predict", "svc-export",
            "svc-loop --init-weights"]


def assert_one_error_line(output: str, path: Path, phrase: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert str(path) in lines[0] and phrase in lines[0], lines[0]
    assert "weights_only=False" not in output and "Traceback" not in output


def test_the_code_in_the_malicious_files_is_real(work, tmp_path):
    """Loaded unsafely, both pickles create their file: the refusals below are of live payloads."""
    good = work / "run" / "checkpoints" / "last.ckpt"
    for kind, load in (("code-in-torch-save", lambda path: torch.load(path, weights_only=False)),
                       ("code-in-plain-pickle", lambda path: pickle.loads(path.read_bytes()))):
        marker = tmp_path / f"{kind}.created"
        load(write_bad_file(kind, tmp_path, good, marker))
        assert marker.is_file(), kind


@pytest.mark.parametrize("kind", list(BAD_FILES))
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_checkpoint_is_one_error_line_in_every_command(work, tmp_path, command, kind):
    marker = tmp_path / "created-by-the-pickle"
    checkpoint = write_bad_file(kind, tmp_path, work / "run" / "checkpoints" / "last.ckpt", marker)
    function, args = command_reading(command, checkpoint, work, tmp_path / "out")
    result = CliRunner().invoke(function, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert_one_error_line(result.output, checkpoint, BAD_FILES[kind])
    assert not marker.exists()


@pytest.mark.parametrize("command", ["svc-train --resume", "svc-train --init-weights"])
def test_a_checkpoint_of_another_width_is_refused_naming_both(work, tmp_path, command):
    function, args = command_reading(command, work / "run", work, tmp_path / "out")
    args[args.index("--width") + 1] = str(2 * WIDTH)
    result = CliRunner().invoke(function, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert_one_error_line(result.output, work / "run" / "checkpoints" / "last.ckpt",
                          f"has width={WIDTH}, this run asks for {2 * WIDTH}")


@pytest.mark.parametrize("command", [command if command == "svc-train --resume" else
                                     pytest.param(command, marks=pytest.mark.slow) for command in COMMANDS])
def test_the_console_scripts_print_one_line_and_run_no_code(work, tmp_path, command):
    """The real console scripts (what a user runs): stderr is the one line, the pickle's file is never made.
    (About 6 s each, so one runs by default; the matrix above runs every command in-process.)"""
    marker = tmp_path / "created-by-the-pickle"
    checkpoint = write_bad_file("code-in-torch-save", tmp_path, work / "run" / "checkpoints" / "last.ckpt", marker)
    _, args = command_reading(command, checkpoint, work, tmp_path / "out")
    script = Path(sys.executable).parent / command.split()[0]
    done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr
    assert_one_error_line(done.stderr, checkpoint, BAD_FILES["code-in-torch-save"])
    assert done.stdout == "" and not marker.exists()


@pytest.fixture(scope="module")
def exported(work) -> dict[str, Path]:
    """The checkpoint exported to TorchScript and ONNX, cut in half, and text files named like each."""
    from train.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(work / "run")
    files = {"pt": export_torchscript(model, work / "model.pt", 32), "onnx": export_onnx(model, work / "model.onnx", 32)}
    for suffix, path in list(files.items()):
        data = path.read_bytes()
        (work / f"truncated.{suffix}").write_bytes(data[: len(data) // 2])
        (work / f"text.{suffix}").write_text("not a model\n")
        files[f"truncated.{suffix}"], files[f"text.{suffix}"] = work / f"truncated.{suffix}", work / f"text.{suffix}"
    return files


@pytest.mark.parametrize("name, phrase", [("text.pt", "it is a text file, not a TorchScript model"),
                                          ("truncated.pt", "it is truncated or damaged"),
                                          ("text.onnx", "it is not a usable ONNX model"),
                                          ("truncated.onnx", "it is not a usable ONNX model")])
@pytest.mark.parametrize("command", ["svc-eval", "svc-predict"])
def test_a_bad_exported_model_is_one_error_line(work, exported, tmp_path, command, name, phrase):
    function, args = command_reading(command, exported[name], work, tmp_path / "out")
    result = CliRunner().invoke(function, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert_one_error_line(result.output, exported[name], phrase)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is what labelgen loads .pt teachers with
def test_a_torchscript_teacher_runs_its_code(tmp_path):
    """What README and every --teacher / --model help say: loading a .pt model runs its code. This one
    overwrites a file when labelgen checks it, before it has labelled anything."""
    from labelgen.teachers import load_teacher

    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"hello")
    torch.jit.script(_WritesAFile(str(victim))).save(str(tmp_path / "teacher.pt"))
    load_teacher(str(tmp_path / "teacher.pt"))
    assert victim.read_bytes() == b"owned"


class _WritesAFile(torch.nn.Module):
    """A TorchScript "segmenter" that maps a file into memory, writes it, and returns zero logits."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.target, shared=True, size=5, dtype=torch.uint8)
        written.copy_(torch.tensor([111, 119, 110, 101, 100], dtype=torch.uint8))  # "owned"
        return torch.zeros(x.shape[0], 3, x.shape[2], x.shape[3]) + written[0].float() * 0  # keeps the write


@pytest.mark.parametrize("location", ["../secret.txt", "{absolute}", "link-to-secret"])
def test_an_onnx_model_cannot_read_files_outside_its_folder(tmp_path, location):
    """What README says of ONNX: onnxruntime (CPU provider, as labelgen and svc-* run it) keeps a model's
    external weight files inside the model's folder, so a graph cannot pull in other files; one inside is read."""
    import onnxruntime
    from onnx import TensorProto, helper

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"SECRET!!")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "inside.bin").write_bytes(b"weights!")
    (folder / "link-to-secret").symlink_to(secret)

    def model_reading(where: str) -> Path:
        weights = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[8], data_location=TensorProto.EXTERNAL)
        for key, value in (("location", where), ("length", "8")):
            entry = weights.external_data.add()
            entry.key, entry.value = key, value
        graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                  [helper.make_tensor_value_info("y", TensorProto.UINT8, [8])], [weights])
        path = folder / "model.onnx"
        path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
        return path

    session = onnxruntime.InferenceSession(str(model_reading("inside.bin")), providers=["CPUExecutionProvider"])
    assert bytes(session.run(None, {})[0]) == b"weights!"  # the mechanism works inside the folder
    with pytest.raises(Exception, match="External data path"):
        onnxruntime.InferenceSession(str(model_reading(location.format(absolute=secret))),
                                     providers=["CPUExecutionProvider"])


def test_the_checkpoint_of_a_real_run_loads(work):
    """The checks refuse no real checkpoint: the run's own loads, with its config and weights."""
    payload = load_checkpoint(work / "run")
    assert payload["config"]["width"] == WIDTH and payload["step"] == 2
    assert all(isinstance(value, torch.Tensor) and np.isfinite(value.float().numpy()).all()
               for value in payload["model"].values())
