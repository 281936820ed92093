"""pipelines/paper_experiment.sh end to end at toy scale: UNTIL=students stops after the students, then every
step runs, the tables come out, a rerun resumes.

The settings (LIMIT faces per split, MAX_STEPS per training, width 0.25) make the
numbers meaningless; what is checked is that the script joins the commands
correctly from a clean folder and that a second run skips every finished step.
About a minute on 2 cores: in the default suite, because the script is how the
numbers of docs/experiments.md are made.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, env_with_our_tools, lfw_parts_or_skip

REPO = REPO_ROOT
SCRIPT = REPO / "pipelines" / "paper_experiment.sh"


def run_script(out: Path, lfw: Path, **settings: str) -> subprocess.CompletedProcess:
    env = env_with_our_tools(SVC_LFW_PARTS=str(lfw), LIMIT="4", MAX_STEPS="1", COPIES="1", STUDENT_EPOCHS="1",
                             LFW_EPOCHS="1", WIDTH="0.25", WORKERS="1", BATCH="2", **settings)
    return subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # about 2 minutes on an idle 2-core machine, 6 under load
def test_paper_experiment_runs_every_step_and_resumes(tmp_path):
    lfw = lfw_parts_or_skip()
    out = tmp_path / "paper"
    # UNTIL=students (how paper_table3.sh gets its pre-trained start) stops after the students
    students = run_script(out, lfw, UNTIL="students")
    assert students.returncode == 0, students.stdout[-3000:] + students.stderr[-3000:]
    assert "stopping after the students" in students.stdout
    assert sorted(path.name for path in (out / "runs").iterdir() if path.is_dir()) == [
        "student_ce_s0", "student_consensus_s0"]
    assert not list((out / "eval").iterdir())
    first = run_script(out, lfw)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    # 1. the corpus: 4 train + 4 val photos, one occluded copy each, labelled into a store
    corpus = sorted(path.name for path in (out / "corpus").iterdir())
    assert len(corpus) == 16 and sum("#0.jpg" in name for name in corpus) == 8
    assert (out / "pseudo.zarr").is_dir() and (out / "pseudo_labels.png").stat().st_size > 10_000
    # 2-3. both students trained and scored beside the teacher, whole test split and each family
    for name in ("teacher", "student_consensus_s0", "student_ce_s0"):
        for suffix in ("", "_hands", "_glasses", "_props"):
            report = json.loads((out / "eval" / f"{name}_synth_test{suffix}.json").read_text())
            assert report["images"] == 4 and 0 <= report["model"]["iou"][1] <= 100
    assert (out / "students_vs_teacher.png").stat().st_size > 10_000
    # ... and each as the labelling chain's teacher, beside the hull and classical baselines
    chain = json.loads((out / "eval" / "chain_test.json").read_text())["teachers"]
    assert len(chain) == 5 and all(result["metrics"]["images"] <= 4 for result in chain.values())
    # the trainings ran side by side (PARALLEL=2 by default), each into its own log
    assert "val mean recall" in (out / "runs" / "student_ce_s0.log").read_text()
    # 4. LFW parsing, both losses, on the first 4 test faces
    for loss in ("consensus", "ce"):
        report = json.loads((out / "eval" / f"lfw_{loss}_s0_e1_test.json").read_text())
        assert report["images"] == 4 and report["classes"] == ["background", "face", "hair"]
    # 5. the tables name every model
    for row in ("| teacher |", "| student_consensus_s0 |", "| student_ce_s0 |", "| lfw_ce_s0 |",
                "| lfw_consensus_s0 |", "| student_consensus |", "| student_ce |", "| hull |"):
        assert row in first.stdout, row

    stamps = {path: path.stat().st_mtime_ns for path in (out / "eval").iterdir()}
    again = run_script(out, lfw)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": done (1 epochs)") == 4  # two students, two LFW runs
    assert {path: path.stat().st_mtime_ns for path in (out / "eval").iterdir()} == stamps
