"""pipelines/gpu_check.sh: one line and exit 0 without CUDA; the same measurements run on the CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="this machine has CUDA: the script measures instead of saying it cannot")
def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    result = subprocess.run(["bash", str(REPO / "pipelines/gpu_check.sh"), str(out)], capture_output=True,
                            text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: nothing measured: torch sees no CUDA device")
    assert not out.exists()


@pytest.mark.slow
def test_every_measurement_runs_on_the_cpu_and_lands_in_the_json(tmp_path):
    import torch

    from train.models import create_model

    out, scripted = tmp_path / "gpu.json", tmp_path / "teacher.pt"
    torch.jit.trace(create_model("faceoccnet", width=0.25).eval(), torch.zeros(1, 3, 128, 128)).save(str(scripted))
    subprocess.run([sys.executable, str(REPO / "benchmarks/gpu.py"), "--allow-cpu", "--images", "4", "--workers", "1",
                    "--train-steps", "2", "--train-batch", "2", "--repeats", "1", "--out", str(out),
                    "--torchscript-teacher", str(scripted)],
                   check=True, capture_output=True, timeout=600)
    report = json.loads(out.read_text())
    for labelling in report["labelling"], report["labelling_torchscript_teacher"]:
        assert labelling["images"] == 4 and sum(labelling["status_counts"].values()) == 4
        assert labelling["images_per_s"] > 0
    assert "--teacher" in report["labelling_torchscript_teacher"]["command"]
    assert report["teacher"]["ms_per_crop_batch1"] > 0 and report["teacher"]["ms_per_crop_batch4"] > 0
    full, teacher_width = report["inference_width1.0"], report["inference_width0.5"]
    assert full["parameters"] > 1_000_000 and full["parameters"] > 3 * teacher_width["parameters"]  # ~4x: width²
    assert full["images_per_s_batch2"] > 0 and teacher_width["images_per_s_batch2"] > 0
    assert report["teacher"]["providers"] == ["CPUExecutionProvider"]
    training = report["training_loaders1"]
    assert training["steps"] == 2 and training["wall_s"] > 0 and training["images_per_s_training"] > 0


def test_a_failing_section_is_recorded_and_the_others_still_run():
    from benchmarks import gpu  # a namespace package from the repository root, which the tests run in

    report = {}
    assert not gpu.section(report, "broken", lambda: 1 / 0)
    assert gpu.section(report, "fine", lambda value: {"value": value}, 3)
    assert report == {"broken": {"error": "ZeroDivisionError: division by zero", "stderr_tail": ""},
                      "fine": {"value": 3}}
