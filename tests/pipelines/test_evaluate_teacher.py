"""pipelines/evaluate_teacher.sh end to end at toy scale: its robustness table comes out for two teachers, and
a rerun skips every finished step.

LIMIT=2 makes the numbers meaningless; what is checked is that the script joins labelgen synth --variant,
svc-eval and labelgen eval-labels --variant correctly. About a minute (21 processes per teacher that each load
torch or the chain), so it is marked slow.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from labelgen.eval.variants import VARIANTS
from tests.helpers import REPO_ROOT, env_with_our_tools, lfw_parts_or_skip

REPO = REPO_ROOT
SCRIPT = REPO / "pipelines" / "evaluate_teacher.sh"
SHIPPED = REPO / "labelgen" / "teachers" / "faceocc-w05-v1.onnx"


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env_with_our_tools(**env), cwd=REPO,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_val_mode_prints_one_robustness_table_per_teacher_and_resumes(tmp_path):
    lfw = lfw_parts_or_skip()
    second = tmp_path / "copy" / "faceocc-second.onnx"
    second.parent.mkdir()
    shutil.copy(SHIPPED, second)
    out = tmp_path / "eval"
    first = run_script("--split", "val", "--out", str(out), str(SHIPPED), str(second), LIMIT="2",
                       SVC_LFW_PARTS=str(lfw))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert first.stdout.count("mean of variants") == 2
    tables = {name: json.loads((out / name / "val" / "table.json").read_text())
              for name in ("faceocc-w05-v1", "faceocc-second")}
    assert tables["faceocc-w05-v1"] == tables["faceocc-second"], "the same weights score the same"
    rows = tables["faceocc-w05-v1"]
    assert list(rows) == ["clean", *VARIANTS, "mean of variants", "mean - clean"]
    # Face IoU is defined on any face (occlusion IoU is null where 2 faces have no occluder pixel).
    assert all(0 <= rows[variant]["face_iou_in"] <= 100 and 0 <= rows[variant]["chain_ok"] <= 100
               for variant in VARIANTS)
    stores = sorted(path.name for path in (out / "stores").iterdir())
    assert stores == sorted(f"val_{variant}.zarr" for variant in ["clean", *VARIANTS]), "val mode reads no test"

    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*.json") if path.name != "table.json"}
    again = run_script("--split", "val", "--out", str(out), str(SHIPPED), LIMIT="2", SVC_LFW_PARTS=str(lfw))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mean of variants" in again.stdout
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps, "a rerun redoes nothing"


def test_bad_arguments_get_one_error_line(tmp_path):
    for args, message in ((["--split", "train"], "--split is test or val"),
                          ([str(tmp_path / "missing.onnx")], "model file not found"),
                          ([str(SHIPPED), str(SHIPPED)], "two models share a file name"),
                          (["--frobnicate"], "unknown option --frobnicate")):
        result = run_script("--out", str(tmp_path / "eval"), *args)
        assert result.returncode == 2 and result.stderr.startswith("Error: ") and message in result.stderr, args
