"""Tests for train.cli: help texts, clear errors, and train -> export -> eval -> predict end to end."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from train.cli import eval_main, export_main, main, predict_main
from train.datasets.synthetic import make_synthetic_lfw, make_synthetic_store
from tests.helpers import REPO_ROOT


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("command,words", [
    (main, ["--labels", "--lfw-parts", "--val-fraction", "--resume", "--max-steps", "--loss", "--width"]),
    (eval_main, ["--split", "--max-images", "MODEL"]),
    (export_main, ["--out-dir", "--format", "CHECKPOINT"]),
    (predict_main, ["--model", "--out-dir", "INPUTS"]),
])
def test_help(command, words):
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    for word in words:
        assert word in result.output


def test_setup_cfg_registers_the_commands():
    text = (REPO_ROOT / "setup.cfg").read_text()
    for line in ("svc-train = train.cli:main", "svc-eval = train.cli:eval_main",
                 "svc-export = train.cli:export_main", "svc-predict = train.cli:predict_main"):
        assert line in text


def test_wrong_store_path_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["--labels", str(tmp_path / "missing.zarr"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "cannot read the label store" in result.output and "missing.zarr" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "not_a_store").mkdir()
    (tmp_path / "not_a_store" / "zarr.json").write_text("{}")
    result = CliRunner().invoke(main, ["--labels", str(tmp_path / "not_a_store"), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 1 and "cannot read the label store" in result.output


def test_needs_exactly_one_data_source(tmp_path):
    result = CliRunner().invoke(main, ["--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--labels" in result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    store = base / "labels.zarr"
    make_synthetic_store(store, count=128, size=64, shard_size=64, bad_rows=[3])
    out = base / "run"
    result = CliRunner().invoke(main, ["--labels", str(store), "--out", str(out), "--width", "0.125",
                                       "--batch-size", "8", "--max-steps", "3", "--num-workers", "0",
                                       "--val-fraction", "0.5", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["step"] == 3
    return base, out


def test_export_then_eval_the_exports(trained):
    base, run = trained
    result = CliRunner().invoke(export_main, [str(run), "--out-dir", str(base / "export"), "--size", "64"])
    assert result.exit_code == 0, result.output
    assert "cv2.dnn (batch 1)" in result.output
    lfw = make_synthetic_lfw(base / "lfw", {"test": 3})
    tables = []
    # A model trained on a store has classes background / face / occlusion: against LFW's background /
    # face / hair it is scored face vs rest, without the (3-class) published column. The checkpoint says
    # so itself; the exported files do not record their classes, so they are told.
    for model, flags in ((run, []), (base / "export" / "model.pt", ["--model-classes", "occlusion"]),
                         (base / "export" / "model.onnx", ["--model-classes", "occlusion"])):
        result = CliRunner().invoke(eval_main, [str(model), "--lfw-root", str(lfw), "--size", "64",
                                                "--num-workers", "0", "--json", str(base / "scores.json"), *flags])
        assert result.exit_code == 0, result.output
        assert "model classes: background / face / occlusion; data classes: background / face / hair; " \
               "compared: rest / face" in result.output
        assert "classes rest / face" in result.output and "published 128p" not in result.output
        scores = json.loads((base / "scores.json").read_text())
        assert scores["classes"] == ["rest", "face"] and len(scores["model"]["64"]["iou"]) == 2
        tables.append(scores["model"]["64"])
    unknown = CliRunner().invoke(eval_main, [str(base / "export" / "model.pt"), "--lfw-root", str(lfw), "--size",
                                             "64", "--num-workers", "0"])
    assert unknown.exit_code == 0, unknown.output
    assert "not recorded in the file" in unknown.output and "published 128p" in unknown.output
    # Checkpoint, TorchScript and ONNX are the same model: the same confusion matrix up to rare ties.
    assert tables[0]["pixel_acc"] == pytest.approx(tables[1]["pixel_acc"], abs=0.01)
    assert tables[0]["pixel_acc"] == pytest.approx(tables[2]["pixel_acc"], abs=0.01)


def test_flip_average_built_into_the_export_equals_flip_average_at_evaluation(trained):
    base, run = trained
    out = base / "export_flip"
    result = CliRunner().invoke(export_main, [str(run), "--out-dir", str(out), "--size", "64", "--flip-average"])
    assert result.exit_code == 0, result.output
    lfw = make_synthetic_lfw(base / "lfw_flip", {"test": 3})
    scores = []
    for model, flags in ((out / "model.pt", []), (out / "model.onnx", []), (run, ["--flip-average"]), (run, [])):
        result = CliRunner().invoke(eval_main, [str(model), "--lfw-root", str(lfw), "--size", "64", "--num-workers",
                                                "0", "--json", str(base / "flip.json"), "--model-classes", "occlusion",
                                                *flags])
        assert result.exit_code == 0, result.output
        scores.append(json.loads((base / "flip.json").read_text())["model"]["64"])
    assert scores[0]["pixel_acc"] == pytest.approx(scores[2]["pixel_acc"], abs=0.01)
    assert scores[1]["pixel_acc"] == pytest.approx(scores[2]["pixel_acc"], abs=0.01)
    assert scores[2] != scores[3]  # averaging changed the predictions of this untrained model


def test_export_int8_writes_a_quantised_teacher_beside_the_float_one(trained, lfw_root):
    from labelgen.stages.teacher import ModelTeacher
    from labelgen.teachers.quantize import METHODS

    base, run = trained
    out = base / "export_int8"
    result = CliRunner().invoke(export_main, [str(run), "--out-dir", str(out), "--size", "64", "--format", "onnx",
                                              "--int8", "entropy:8:r7"])
    assert result.exit_code == 0, result.output
    int8 = out / "model.int8.onnx"
    assert f"int8: {int8}" in result.output and int8.stat().st_size < 0.5 * (out / "model.onnx").stat().st_size
    assert ModelTeacher(int8, input_size=64)(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), bool)).shape == (64, 64)
    refused = CliRunner().invoke(export_main, [str(run), "--out-dir", str(out), "--int8", "median:8"])
    assert refused.exit_code == 2 and "METHOD one of " + ", ".join(METHODS) in " ".join(refused.output.split())
    refused = CliRunner().invoke(export_main, [str(run), "--out-dir", str(out), "--format", "torchscript",
                                               "--int8", "entropy:8"])
    assert refused.exit_code == 2 and "--int8 quantises the ONNX file" in refused.output


def test_predict_on_an_image_and_a_video(trained, tmp_path):
    from labelgen.sample import sample_image, sample_jpeg

    _, run = trained
    (tmp_path / "face.jpg").write_bytes(sample_jpeg("astronaut/original.jpg"))
    frame = cv2.cvtColor(cv2.resize(sample_image("astronaut/original.jpg"), (256, 256)), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (256, 256))
    for shift in range(3):
        writer.write(np.roll(frame, 3 * shift, axis=1))
    writer.release()
    out = tmp_path / "pred"
    result = CliRunner().invoke(predict_main, [str(tmp_path / "face.jpg"), str(tmp_path / "clip.avi"),
                                               "--model", str(run), "--out-dir", str(out), "--size", "64"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records[0]["status"] == "ok" and records[1]["frames"] == 3
    mask = cv2.imread(str(out / "face.mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 1, 2}
    # The crop (about 2.2 face heights around the face at x 182-270, y 58-178) leaves these parts out.
    assert (mask > 0).any() and (mask[450:] == 0).all() and (mask[:, :20] == 0).all() and (mask[:, 480:] == 0).all()
    overlay = cv2.imread(str(out / "face.overlay.png"))
    assert overlay.shape == (512, 512, 3)
    assert len(list((out / "clip").glob("frame_*.mask.png"))) == 3
    capture = cv2.VideoCapture(str(out / "clip.overlay.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()


def test_eval_on_a_store_draws_the_worst_images(trained):
    base, run = trained
    store = base / "labels.zarr"
    grid_path, json_path = base / "worst" / "worst.png", base / "worst.json"
    result = CliRunner().invoke(eval_main, [str(run), "--labels", str(store), "--worst-grid", str(grid_path),
                                            "--worst", "3", "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    worst = json.loads(json_path.read_text())["worst"]
    assert len(worst) == 3 and 3 not in [item["row"] for item in worst]  # row 3 is a failed row
    assert [item["wrong_pixels"] for item in worst] == sorted((item["wrong_pixels"] for item in worst), reverse=True)
    picture = cv2.imread(str(grid_path))
    assert picture.shape == (2 * 258 + 2, 2 * (4 * 256 + 2) + 2, 3)  # 3 strips, 2 per row


def test_eval_refuses_a_store_whose_classes_are_not_the_models(trained):
    base, run = trained
    result = CliRunner().invoke(eval_main, [str(run), "--labels", str(base / "labels.zarr"), "--model-classes", "hair"])
    assert result.exit_code == 2
    assert "classes (background / face / hair) are not the store's (background / face / occlusion)" in result.output


def test_worst_grid_needs_a_store(trained):
    base, run = trained
    result = CliRunner().invoke(eval_main, [str(run), "--worst-grid", str(base / "w.png")])
    assert result.exit_code == 2 and "--labels" in result.output
