"""The supervised teacher and the student-as-teacher loop, end to end on a tiny set (CPU)."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labelgen.cli import main as labelgen_main
from labelgen.store import LabelStore
from train.workflows.student_teacher import LoopConfig, format_history, quality_score, run_loop, starting_teacher


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_quality_score_adds_face_and_occlusion_iou():
    assert quality_score({"face_iou": 0.5, "occ_iou": 0.25}) == 0.75
    assert quality_score({"face_iou": 0.5, "occ_iou": float("nan")}) == 0.5


def test_a_resumed_loop_keeps_the_teacher_it_began_with(tmp_path):
    from labelgen.teachers import DEFAULT_TEACHER

    assert starting_teacher(tmp_path, None) == DEFAULT_TEACHER  # a new loop: the shipped default
    (tmp_path / "loop_config.json").write_text(json.dumps({"teacher": "classical"}))  # begun under another default
    assert starting_teacher(tmp_path, None) == "classical"
    assert starting_teacher(tmp_path, "hull") == "hull"  # said on the command line: that one (and refused later)


def test_supervised_teacher_trains_exports_and_labels(tmp_path, lfw_root):
    # 'labelgen synth' and 'eval-labels' without --root: they find the data where lfw_root does
    from train.cli import export_main, main as train_main

    runner = CliRunner()
    store = tmp_path / "synth.zarr"
    made = runner.invoke(labelgen_main, ["synth", "--split", "train", "--limit", "6", "--out", str(store)])
    assert made.exit_code == 0, made.output
    assert (LabelStore(store, mode="r").status() == 0).all()
    trained = runner.invoke(train_main, ["--labels", str(store), "--val-labels", str(store), "--width", "0.125",
                                         "--batch-size", "4", "--max-steps", "2", "--num-workers", "0",
                                         "--out", str(tmp_path / "run"), "--no-progress"])
    assert trained.exit_code == 0, trained.output
    exported = runner.invoke(export_main, [str(tmp_path / "run"), "--out-dir", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    for name in ("model.pt", "model.onnx"):
        teacher = str(tmp_path / "export" / name)
        labelled = runner.invoke(labelgen_main, ["label", "--sample", "--teacher", teacher,
                                                 "--out-dir", str(tmp_path / name)])
        assert labelled.exit_code == 0, labelled.output
        assert "ok: 33" in labelled.output
    quality = runner.invoke(labelgen_main, ["eval-labels", "--limit", "2", "--teacher",
                                            str(tmp_path / "export" / "model.pt")])
    assert quality.exit_code == 0, quality.output
    assert "model.pt" in quality.output and "classical" in quality.output


def test_student_as_teacher_loop_runs_end_to_end_and_resumes(tmp_path, lfw_root):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted((lfw_root / "images").glob("A*.jpg"))[:6]:
        (corpus / path.name).symlink_to(path.resolve())
    exact = tmp_path / "exact.zarr"
    from labelgen.eval.synth import write_synthetic_store

    write_synthetic_store(exact, split="train", limit=4)
    from train.config import TrainConfig
    from train.engine.trainer import train

    start = tmp_path / "start"  # a supervised checkpoint the first student fine-tunes
    train(TrainConfig(out=str(start), labels=str(exact), val_labels=str(exact), width=0.125, batch_size=4,
                      max_steps=1, num_workers=0, progress=False))
    config = LoopConfig(source="folder", root=str(corpus), out=str(tmp_path / "loop"), teacher="classical",
                        rounds=2, width=0.125, batch_size=4, max_steps=2, workers=0, num_workers=0,
                        quality_limit=2, min_gain=-1.0, shard_size=4, extra_labels=(str(exact),), amp=True,
                        lr=1e-4, init_weights=str(start / "checkpoints" / "last.ckpt"))
    lines = []
    history = run_loop(config, echo=lines.append)
    assert [item["round"] for item in history] == [0, 1, 2]
    assert history[1]["teacher"] == "classical" and history[2]["teacher"] == history[1]["student"]
    for item in history[1:]:
        assert Path(item["student"]).is_file()
        assert sum(item["label_counts"].values()) == 6
        assert 0.0 <= item["metrics"]["face_iou"] <= 1.0
        folder = Path(config.out) / f"round_{item['round']}"
        store = LabelStore(folder / "labels.zarr", mode="r")
        assert store.attrs["config"]["teacher"] == item["teacher"]
        run_config = json.loads((folder / "run" / "config.json").read_text())
        assert run_config["labels"] == [str(store.path), str(exact)]  # pseudo-labels mixed with exact labels
        assert run_config["amp"] is True and run_config["lr"] == 1e-4
        previous = Path(config.out) / f"round_{item['round'] - 1}" / "run" / "checkpoints" / "best.ckpt"
        assert run_config["init_weights"] == (config.init_weights if item["round"] == 1 else str(previous))
    saved = json.loads((Path(config.out) / "history.json").read_text())
    assert [item["score"] for item in saved] == [item["score"] for item in history]
    assert any(line.startswith("best: round") for line in lines)
    again = run_loop(config, echo=lambda line: None)  # finished rounds are not redone
    assert [item["student"] for item in again] == [item["student"] for item in history]
    assert "round" in format_history(history).splitlines()[0]


def test_loop_stops_when_quality_stops_rising(tmp_path, monkeypatch):
    import train.workflows.student_teacher as loop

    scores = iter([0.5, 0.6, 0.59])
    monkeypatch.setattr(loop, "measure_teacher", lambda teacher, config: {"face_iou": next(scores), "occ_iou": 0.0})

    def fake_round(index, teacher, config):
        metrics = loop.measure_teacher(teacher, config)
        return {"round": index, "teacher": teacher, "student": f"student{index}.pt", "label_counts": {},
                "metrics": metrics, "score": loop.quality_score(metrics)}

    monkeypatch.setattr(loop, "run_round", fake_round)
    history = run_loop(LoopConfig(source="sample", root=None, out=str(tmp_path), teacher="classical", rounds=5),
                       echo=lambda line: None)
    assert [item["round"] for item in history] == [0, 1, 2]  # round 2 fell: stop
    assert np.isclose(history[1]["score"], 0.6)
