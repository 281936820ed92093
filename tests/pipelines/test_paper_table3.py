"""pipelines/paper_table3.sh end to end at toy scale: every row trains and is scored, the table names every row,
a rerun skips every step; and pipelines/paper_table3.py's table on made-up reports (means over seeds).

LFW-like synthetic faces (``make_synthetic_lfw``: 4 train, 2 val, 3 test), a width-0.125 network and one epoch of
batch 2 make the numbers meaningless; what is checked is that the script joins the commands correctly: each
row's svc-train options, the fine-tune from the pre-trained checkpoint, the result checkpoint, svc-eval at both
sizes, the table. One seed: 16 processes (8 trainings, 8 evaluations), about 30 s of an idle 2-core CPU, so the
script's test is marked slow.
"""
from __future__ import annotations

import json
import importlib
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from train.checkpoint import load_checkpoint
from train.cli import main as svc_train
from train.datasets.synthetic import make_synthetic_lfw
from tests.helpers import REPO_ROOT, env_with_our_tools

REPO = REPO_ROOT
SCRIPT = REPO / "pipelines" / "paper_table3.sh"
ROWS = {"ce": ("ce", "default"), "consensus": ("consensus", "default"), "official": ("consensus", "official"),
        "ce-blob": ("ce-blob", "default")}
LABELS = ["baseline: pixel-wise cross-entropy", "baseline +reg", "structure via consensus",
          "structure via consensus +reg", "structure via consensus, the release's reductions",
          "structure via consensus, the release's reductions +reg", "control: blob-weighted cross-entropy",
          "control +reg"]

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def run_script(out: Path, lfw: Path, pretrained: Path) -> subprocess.CompletedProcess:
    env = env_with_our_tools(SVC_LFW_PARTS=str(lfw), PRETRAINED=str(pretrained), WIDTH="0.125", SEEDS="0",
                             EPOCHS="1", BATCH="2", LIMIT="3")
    return subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def pretrained(tmp_path) -> tuple[Path, Path]:
    """Synthetic LFW, and a student-like checkpoint (background / face / occlusion) to fine-tune."""
    lfw = make_synthetic_lfw(tmp_path / "lfw", {"train": 4, "val": 2, "test": 3})
    run = tmp_path / "pretrained"
    result = CliRunner().invoke(svc_train, ["--lfw-parts", "--occlude", "--lfw-root", str(lfw), "--out", str(run),
                                            "--width", "0.125", "--batch-size", "2", "--max-steps", "1",
                                            "--num-workers", "0", "--photometric", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    return lfw, run / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_paper_table3_runs_every_row_and_resumes(tmp_path, pretrained):
    lfw, start = pretrained
    out = tmp_path / "table3"
    first = run_script(out, lfw, start)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    runs = [f"{row}_{reg}_s0" for reg in ("plain", "reg") for row in ROWS]
    assert sorted(path.name for path in (out / "runs").iterdir() if path.is_dir()) == sorted(runs)
    for name in runs:
        row, reg, seed = name.rsplit("_", 2)
        config = json.loads((out / "runs" / name / "config.json").read_text())
        loss, mode = ROWS[row]
        assert (config["loss"], config["consensus_mode"], config["seed"]) == (loss, mode, int(seed[1:]))
        assert config["blobs"] == ("components" if row == "ce" else "classes")
        assert (config["dropout"], config["flip"]) == ((0.2, True) if reg == "reg" else (0.0, False))
        assert (config["lfw_split"], config["lr"], config["schedule"], config["select"], config["photometric"]) == (
            "train+val", 1e-4, "flat", "last", 0.0)
        assert config["init_weights"] == str(start) and config["epochs"] == 1
        # the last (only) whole epoch is the result; nothing was validated
        assert load_checkpoint(out / "runs" / name / "checkpoints" / "best.ckpt")["epoch"] == 1
        assert '"kind": "val"' not in (out / "runs" / name / "metrics.jsonl").read_text()
        report = json.loads((out / "eval" / f"{name}_e1_test.json").read_text())
        assert report["images"] == 3 and report["classes"] == ["background", "face", "hair"]
        assert set(report["model"]) == {"128", "250"}
        assert report["model_path"].endswith(f"{name}/checkpoints/best.ckpt")
    for label in LABELS:
        assert f"| {label}" in first.stdout, label
    for name in runs:
        assert f"| {name} | 1 |" in first.stdout

    stamps = {path: path.stat().st_mtime_ns for path in (out / "eval").iterdir()}
    again = run_script(out, lfw, start)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": done (1 epochs)") == len(runs)
    assert {path: path.stat().st_mtime_ns for path in (out / "eval").iterdir()} == stamps


def test_a_missing_pretrained_checkpoint_is_one_error_line(tmp_path):
    env = env_with_our_tools(PRETRAINED=str(tmp_path / "nothing.ckpt"))
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: no pre-trained checkpoint at {tmp_path / 'nothing.ckpt'} (set PRETRAINED)"


def write_report(out: Path, name: str, epochs: int, miou: float) -> None:
    """A made-up svc-eval report: ``miou`` at 128 px, ``miou - 1`` at 250."""
    scores = {size: {"pixel_acc": 90.0, "miou": miou - shift, "iou": [90.0, 80.0, miou], "mean_recall": 85.0,
                     "sparsity": 2.0} for size, shift in (("128", 0.0), ("250", 1.0))}
    (out / "eval").mkdir(parents=True, exist_ok=True)
    (out / "eval" / f"{name}_e{epochs}_test.json").write_text(json.dumps({"model": scores}))


def test_table3_averages_seeds_takes_the_latest_epochs_and_names_missing_rows(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "pipelines"))
    table3 = importlib.import_module("paper_table3")
    write_report(tmp_path, "ce_plain_s0", 10, 80.0)
    write_report(tmp_path, "ce_plain_s0", 20, 82.0)  # continued to 20 epochs: this one counts
    write_report(tmp_path, "ce_plain_s1", 20, 84.0)
    write_report(tmp_path, "ce-blob_reg_s0", 10, 70.0)
    text = table3.table3(tmp_path)
    assert "| baseline: pixel-wise cross-entropy | 83.65 | 0, 1 (20) | 128 | 90.00 | 83.00 | 90.00 / 80.00 / 83.00 " \
           "| 85.00 | 2.00 |" in text
    assert "| baseline: pixel-wise cross-entropy |  | 0, 1 (20) | 250 | 90.00 | 82.00 |" in text
    assert "| control +reg | - | 0 (10) | 128 | 90.00 | 70.00 |" in text
    assert "| structure via consensus | 85.74 | not run | 128 | - | - | - | - | - |" in text
    assert all(f"| {label}" in text for label in LABELS)
    runs = table3.every_run(tmp_path)
    assert "| ce_plain_s0 | 20 | - | 82.00 / 81.00 |" in runs and "ce_plain_s0 | 10" not in runs
