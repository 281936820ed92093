"""pipelines/train_teacher.sh: which phases run with which options, for v1 and v2 (svc-train and svc-export stubbed)."""

import os
import shutil
import stat
import subprocess

import pytest
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT

STUB = """#!/bin/sh
# Records its command line; makes the files a finished run or export leaves.
echo "$(basename "$0") $*" >> "$STUB_LOG"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) mkdir -p "$2/checkpoints" && touch "$2/checkpoints/best.ckpt" "$2/checkpoints/last.ckpt"; shift ;;
    --out-dir) out_dir=$2; shift ;;
    --name) name=$2; shift ;;
    --int8) int8=$2; shift ;;
  esac
  shift
done
[ -n "$out_dir" ] && mkdir -p "$out_dir" && echo onnx > "$out_dir/$name.onnx"
[ -n "$int8" ] && echo "int8 $int8" > "$out_dir/$name.int8.onnx"
exit 0
"""


@pytest.fixture
def recipe(tmp_path):
    """A copy of the script in a stand-in repository (so v1's export lands there), and stubs on PATH."""
    root = tmp_path / "repo"
    (root / "pipelines").mkdir(parents=True)
    (root / "labelgen" / "teachers").mkdir(parents=True)
    shutil.copy(REPO / "pipelines" / "train_teacher.sh", root / "pipelines")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("svc-train", "svc-export"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(stat.S_IRWXU)
    log = tmp_path / "calls.log"

    def run(*args, **env):
        environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log),
                       "SVC_LFW_PARTS": str(tmp_path), **env}
        result = subprocess.run(["bash", str(root / "pipelines" / "train_teacher.sh"), *args], env=environment,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return calls

    return root, tmp_path / "out", run


def test_v1_by_name_trains_its_three_phases_without_photometric_and_exports_into_the_package(recipe):
    root, out, run = recipe
    calls = run(str(out))
    trains = [call for call in calls if call.startswith("svc-train")]
    assert [call.split("--out ")[1].split()[0] for call in trains] == [f"{out}/runs/{p}" for p in ("main", "skin", "skin2")]
    assert all("--photometric 0" in call for call in trains)
    assert any(call.startswith("svc-export") and "--flip-average" in call for call in calls)
    assert (root / "labelgen" / "teachers" / "faceocc-w05-v1.onnx").is_file()


def test_v2_from_given_weights_trains_only_the_robustness_phase_and_ships_its_int8_export(recipe, tmp_path):
    root, out, run = recipe
    init = tmp_path / "v1.ckpt"
    calls = run(str(out), "60", "0.5", "faceocc-w05-v2", INIT=str(init), ROBUST_EPOCHS="7")
    assert len(calls) == 2 and calls[0].startswith("svc-train") and calls[1].startswith("svc-export")
    for option in (f"--out {out}/runs/robust", "--epochs 7", "--photometric 0.5", "--photometric-strength 1.0",
                   f"--init-weights {init}", "--occluder-families objects,polygons,scarves,skin", "--lr 3e-4"):
        assert option in calls[0]
    assert f"{out}/runs/robust/checkpoints/best.ckpt" in calls[1] and "--flip-average" not in calls[1]
    shipped = root / "labelgen" / "teachers" / "faceocc-w05-v2.onnx"
    assert shipped.read_text() == "int8 entropy:64:r7\n"  # the int8 file, not the float one, goes in the package
    # Stopped before it finished: a rerun, even without INIT, resumes it (and does not start phase 1).
    (out / "runs" / "robust" / "finished").unlink()
    calls = run(str(out), "60", "0.5", "faceocc-w05-v2", INT8="minmax:32")
    assert len(calls) == 2 and f"--resume {out}/runs/robust" in calls[0] and "--int8 minmax:32" in calls[1]
    calls = run(str(out), "60", "0.5", "faceocc-w05-v2")  # finished: only the export again
    assert len(calls) == 1 and calls[0].startswith("svc-export")


def test_v2_without_given_weights_runs_v1s_phases_first(recipe):
    _root, out, run = recipe
    calls = [call for call in run(str(out), "60", "0.5", "faceocc-w05-v2") if call.startswith("svc-train")]
    runs = [call.split("--out ")[1].split()[0].rsplit("/", 1)[1] for call in calls]
    assert runs == ["main", "skin", "skin2", "robust"]
    assert f"--init-weights {out}/runs/skin2/checkpoints/best.ckpt" in calls[-1]
    assert "--distill" not in calls[-1]


def test_v2_with_distill_passes_the_reference_and_its_weight(recipe, tmp_path):
    _root, out, run = recipe
    reference = tmp_path / "v1.onnx"
    calls = run(str(out), "60", "0.5", "faceocc-w05-v2", INIT=str(tmp_path / "v1.ckpt"), DISTILL=str(reference),
                DISTILL_WEIGHT="4")
    assert len(calls) == 2 and f"--distill {reference} --distill-weight 4" in calls[0]


def test_early_photometric_augments_phases_1_and_2_except_for_v1(recipe):
    _root, out, run = recipe
    calls = [call for call in run(str(out), "60", "1.0", "faceocc-w10-r1", EARLY_PHOTOMETRIC="0.4")
             if call.startswith("svc-train")]
    assert len(calls) == 4 and [_option(call, "--photometric") for call in calls] == ["0.4", "0.4", "0.4", "0.5"]
    assert all(_option(call, "--width") == "1.0" for call in calls)
    v1 = [call for call in run(str(out / "v1"), EARLY_PHOTOMETRIC="0.4") if call.startswith("svc-train")]
    assert [_option(call, "--photometric") for call in v1] == ["0", "0", "0"]


def _option(call: str, name: str) -> str:
    words = call.split()
    return words[words.index(name) + 1]
