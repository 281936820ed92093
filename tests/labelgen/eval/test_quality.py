"""Label-quality metrics against hand-computed values, and ``labelgen eval-labels`` end to end."""
from __future__ import annotations

import json
import math
from collections import Counter

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from labelgen.cli import main
from labelgen.eval.quality import comparison_grid, count_components, label_quality, report_json, summarize, teacher_list
from labelgen.teachers import DEFAULT_TEACHER

GT = np.array([[0, 1, 1, 1, 0],
               [0, 1, 2, 2, 0],
               [0, 1, 1, 1, 0],
               [0, 3, 0, 0, 0]], np.uint8)
PRED = np.array([[1, 1, 1, 1, 0],
                 [0, 1, 1, 2, 2],
                 [0, 1, 1, 1, 0],
                 [0, 0, 0, 0, 0]], np.uint8)


def test_label_quality_counts_match_a_hand_count():
    counts = label_quality(PRED, GT)
    assert counts == {
        "images": 1,
        "face_inter": 7, "face_union": 9,  # pred face 9 px holds all 7 true face px
        "occ_inter": 1, "occ_union": 4, "occ_gt": 3, "occ_pred": 2,  # only (1, 3) is in both
        "face_in_inter": 7, "face_in_union": 8,  # inside the true region (10 px) the pred face has 8 px
        "occ_in_union": 3,  # pred occlusion (1, 4) lies outside the true face region
        # Both call it face region: rows 0-2, columns 1-3 (9 px); there pred has 8 face px, truth 7.
        "face_both_inter": 7, "face_both_union": 8, "occ_both_inter": 1, "occ_both_union": 2,
        "blobs_gt": 2, "blobs_pred": 1, "blob_error": 1,
        "face_iou_sum": pytest.approx(7 / 9), "occ_iou_sum": pytest.approx(1 / 4),
        "occ_iou_images": 1, "occluded": 1,
    }


def test_summarize_pools_pixels_and_also_averages_images():
    total = Counter(label_quality(PRED, GT))
    total.update(label_quality(np.array([[1, 0], [0, 0]]), np.zeros((2, 2), np.uint8)))  # face where there is none
    summary = summarize(total)
    assert summary["images"] == 2
    assert summary["face_iou"] == pytest.approx(7 / 10)  # pooled: 7 / (9 + 1)
    assert summary["face_iou_mean"] == pytest.approx((7 / 9 + 0) / 2)
    assert summary["occ_iou"] == pytest.approx(1 / 4) and summary["occ_iou_mean"] == pytest.approx(1 / 4)
    assert summary["occ_recall"] == pytest.approx(1 / 3) and summary["occ_precision"] == pytest.approx(1 / 2)
    assert summary["face_iou_in"] == pytest.approx(7 / 8) and summary["occ_iou_in"] == pytest.approx(1 / 3)
    assert summary["face_iou_both"] == pytest.approx(7 / 8) and summary["occ_iou_both"] == pytest.approx(1 / 2)
    assert summary["blob_error"] == pytest.approx(1 / 2)
    assert summary["blobs_gt"] == pytest.approx(1.0) and summary["blobs_pred"] == pytest.approx(0.5)


def test_undefined_metrics_are_nan_and_null_in_json():
    summary = summarize(label_quality(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8)))
    assert summary["face_iou"] == 1.0 and summary["blob_error"] == 0.0
    assert math.isnan(summary["occ_iou"]) and math.isnan(summary["occ_recall"]) and math.isnan(summary["occ_iou_mean"])
    assert json.loads(report_json({"metrics": summary}))["metrics"]["occ_iou"] is None
    assert summarize({})["images"] == 0 and math.isnan(summarize({})["face_iou"])


def test_components_use_8_connectivity():
    diagonal = np.eye(3, dtype=bool)
    assert count_components(diagonal) == 1
    assert count_components(np.array([[1, 0, 1]], bool)) == 2 and count_components(np.zeros((2, 2), bool)) == 0


def test_label_quality_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        label_quality(np.zeros((2, 2)), np.zeros((2, 3)))


def test_teacher_list_always_starts_with_the_baselines():
    assert teacher_list() == ["hull", "classical"]
    assert teacher_list(["model.onnx", "classical", "model.onnx"]) == ["hull", "classical", "model.onnx"]


def test_eval_labels_runs_end_to_end_and_prints_the_table(tmp_path, lfw_root):
    out, picture = tmp_path / "quality.json", tmp_path / "quality.png"
    result = CliRunner().invoke(main, ["eval-labels", "--limit", "5", "--root", str(lfw_root), "--json", str(out),
                                       "--grid", str(picture), "--grid-rows", "2"])
    assert result.exit_code == 0, result.output
    grid = cv2.imread(str(picture))
    assert grid.shape == (2 + 2 * 162, 2 + 4 * 162, 3), "2 faces x (truth, hull, classical, default) cells of 160 px"
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.split()}
    assert {"teacher", "hull", "classical", DEFAULT_TEACHER} <= set(rows) and "occ IoU" in rows["teacher"]
    report = json.loads(out.read_text())
    assert report["settings"]["families"] == ["hands", "glasses", "props"]
    for name in ("hull", "classical", DEFAULT_TEACHER):
        teacher = report["teachers"][name]
        assert sum(teacher["statuses"].values()) == 5
        assert teacher["counts"].get("images", 0) == teacher["statuses"].get("ok", 0)
        assert sum(teacher["status_rates"].values()) == pytest.approx(1.0)
    hull = report["teachers"]["hull"]
    if hull["counts"]:
        assert hull["counts"]["occ_pred"] == 0, "the hull teacher never predicts occlusion"
        assert 0.0 < hull["metrics"]["face_iou"] <= 1.0


def test_comparison_grid_puts_truth_and_each_teacher_side_by_side():
    image = np.full((32, 32, 3), 120, np.uint8)
    truth = np.zeros((32, 32), np.uint8)
    truth[8:24, 8:24], truth[18:24, 8:24] = 1, 2
    wrong = np.where(truth > 0, 1, 0).astype(np.uint8)  # missed the occlusion
    picture = comparison_grid([("face#0", image, truth, [truth, wrong])], ["same", "model.pt"], size=40)
    assert picture.shape == (2 + 42, 2 + 3 * 42, 3)
    cells = [picture[2 + 16:42, 2 + 42 * c: 42 * (c + 1)] for c in range(3)]  # below the caption band
    assert np.array_equal(cells[0], cells[1]), "a teacher that matches the truth looks like it"
    assert not np.array_equal(cells[0], cells[2])


def test_error_colours_mark_each_kind_of_mistake():
    from labelgen.overlay import FALSE_FACE_COLOUR, MISSED_FACE_COLOUR, OTHER_ERROR_COLOUR, error_colours

    truth = np.array([[0, 0, 1, 1, 2, 2]])
    pred = np.array([[0, 1, 1, 2, 0, 2]])
    colours = error_colours(truth, pred)[0]
    assert [tuple(c) for c in colours] == [(0, 0, 0), FALSE_FACE_COLOUR, (0, 0, 0), MISSED_FACE_COLOUR,
                                           OTHER_ERROR_COLOUR, (0, 0, 0)]


def test_write_picture_round_trips_rgb_and_grey(tmp_path):
    from labelgen.overlay import write_picture

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red, to catch a missing RGB -> BGR swap
    write_picture(tmp_path / "rgb.png", rgb)
    assert np.array_equal(cv2.imread(str(tmp_path / "rgb.png"))[..., ::-1], rgb)
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    write_picture(tmp_path / "grey.png", grey)
    assert np.array_equal(cv2.imread(str(tmp_path / "grey.png"), cv2.IMREAD_UNCHANGED), grey)
    with pytest.raises(OSError, match="could not write"):
        write_picture(tmp_path / "missing_folder" / "x.png", grey)
