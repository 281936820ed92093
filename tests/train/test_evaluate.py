"""Tests for train.evaluation.evaluate: hand-made scores, the all-background baseline and the table."""

import numpy as np
import pytest
import torch

from train.datasets.lfw_parts import load_pair, read_split
from train.datasets.synthetic import make_synthetic_lfw
from train.evaluation.evaluate import PUBLISHED_128, SegmentationScores, evaluate, format_table
from train.evaluation.metrics import component_count


def test_hand_made_scores():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 1, 1],
                   [0, 0, 0, 2]])
    pred = np.array([[0, 0, 1, 1],
                     [0, 1, 1, 1],
                     [2, 0, 1, 1],
                     [0, 0, 0, 0]])
    scores = SegmentationScores()
    scores.update(pred, gt)
    s = scores.compute()
    # Confusion rows (gt) x cols (pred): bg [6, 1, 0], face [0, 6, 0], class 2 [2, 0, 1].
    assert s["pixel_acc"] == pytest.approx(100 * 13 / 16)
    assert s["iou"] == pytest.approx([100 * 6 / 9, 100 * 6 / 7, 100 * 1 / 3])
    assert s["miou"] == pytest.approx(np.mean(s["iou"]))
    assert s["recall"] == pytest.approx([100 * 6 / 7, 100.0, 100 / 3])
    # Components (8-connected, bg not counted): gt face 1 + class 2 {row 2 pair, corner} = 3; pred 1 + 1 = 2.
    assert s["sparsity"] == 1.0 and s["images"] == 1


def test_one_matrix_over_the_set_not_a_mean_of_images():
    scores = SegmentationScores()
    scores.update(np.ones((2, 2), int), np.ones((2, 2), int))  # a perfect image of face
    scores.update(np.zeros((4, 4), int), np.ones((4, 4), int))  # an all-wrong image, 4x larger
    assert scores.compute()["iou"][1] == pytest.approx(100 * 4 / 20)  # not the per-image mean 50


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    return make_synthetic_lfw(tmp_path_factory.mktemp("lfw"), {"test": 5})


def test_all_background_predictor_equals_the_baseline(lfw):
    results = evaluate(lambda images: torch.zeros(images.shape[0], *images.shape[2:], dtype=torch.long),
                       lfw, "test", size=64, batch_size=2, num_workers=0)
    assert results["images"] == 5
    for size in ("64", "250"):
        assert results["model"][size] == results["all_background"][size]
    labels = [load_pair(lfw, stem)[1] for stem in read_split(lfw, "test")]
    background = np.mean([(label == 0).mean() for label in labels])
    native = results["all_background"]["250"]
    assert native["pixel_acc"] == pytest.approx(100 * background)
    assert native["iou"][0] == pytest.approx(100 * background) and native["iou"][1:] == [0.0, 0.0]
    assert native["sparsity"] == pytest.approx(np.mean([component_count(label) for label in labels]))


def test_a_good_predictor_beats_the_baseline_and_the_table_prints(lfw):
    def colour_rule(images):  # the synthetic faces are skin-coloured and the hair violet
        red, blue = images[:, 0].long(), images[:, 2].long()
        pred = torch.zeros_like(red)
        pred[red > 150] = 1
        pred[(blue > 130) & (red < 150)] = 2
        return pred

    results = evaluate(colour_rule, lfw, "test", size=128, batch_size=4, num_workers=0)
    ours, trivial = results["model"]["128"], results["all_background"]["128"]
    assert ours["miou"] > trivial["miou"] + 30 and ours["iou"][1] > 80
    assert results["model"]["250"]["pixel_acc"] > 90
    table = format_table(results)
    for value in PUBLISHED_128.values():
        assert f"{value:.2f}" in table
    assert "superpixel accuracy: not computed" in table
    assert "ours 250p" in table and "all-bg 128p" in table


def test_evaluate_store_scores_exact_labels(tmp_path):
    from labelgen.store import LabelStore
    from train.evaluation.evaluate import evaluate_store, format_store_table
    from train.losses import class_map_from_label_map
    from train.datasets.synthetic import make_synthetic_store

    path = tmp_path / "exact.zarr"
    make_synthetic_store(path, count=20, size=32, bad_rows=[3])
    store = LabelStore(path, mode="r")
    ok = store.ok_indices()
    truth = {int(r): class_map_from_label_map(torch.from_numpy(store.read("label", slice(r, r + 1))).long())[0]
             for r in ok}
    queue = [truth[int(r)] for r in ok]

    def perfect(images):
        batch = [queue.pop(0) for _ in range(len(images))]
        return torch.stack(batch)

    results = evaluate_store(perfect, path, batch_size=8)
    assert results["images"] == len(ok) == 19
    assert results["model"]["pixel_acc"] == pytest.approx(100.0)
    assert results["model"]["iou"][2] == pytest.approx(100.0)
    assert results["all_background"]["iou"][1] == 0.0
    assert results["model"]["iou_face_in"] == results["model"]["iou_occlusion_in"] == pytest.approx(100.0)
    assert results["all_background"]["iou_face_in"] == results["all_background"]["iou_occlusion_in"] == 0.0
    table = format_store_table(results)
    assert "IoU occlusion (%)" in table and "100.00" in table
    assert "IoU face, in true face region (%)" in table


def test_face_region_scores_leave_true_background_out(tmp_path):
    from labelgen.store import LabelStore
    from train.evaluation.evaluate import evaluate_store
    from train.losses import class_map_from_label_map
    from train.datasets.synthetic import make_synthetic_store

    path = tmp_path / "exact.zarr"
    make_synthetic_store(path, count=10, size=24)
    store = LabelStore(path, mode="r")
    truth = class_map_from_label_map(torch.from_numpy(store.read("label", store.ok_indices())).long()).numpy()
    noisy = np.random.default_rng(0).integers(0, 3, truth.shape)
    queue = list(torch.from_numpy(noisy))
    results = evaluate_store(lambda images: torch.stack([queue.pop(0) for _ in images]), path, batch_size=4)
    region = truth > 0  # the reference: plain numpy over the true face region only
    for cls, key in ((1, "iou_face_in"), (2, "iou_occlusion_in")):
        inter = ((noisy == cls) & (truth == cls) & region).sum()
        union = (((noisy == cls) | (truth == cls)) & region).sum()
        assert results["model"][key] == pytest.approx(100 * inter / union)
    # Whole-crop face IoU also counts background called face, so it is lower here.
    assert results["model"]["iou"][1] < results["model"]["iou_face_in"]


@pytest.mark.parametrize("count, batch_size", [(1, 4), (5, 3), (40, 7)])
def test_worst_images_are_the_most_wrong_whatever_the_batching(count, batch_size):
    from train.evaluation.evaluate import WorstImages

    rng = np.random.default_rng(count)
    truth = rng.integers(0, 3, (30, 6, 6))
    pred = np.where(rng.random((30, 6, 6)) < rng.random((30, 1, 1)), truth, (truth + 1) % 3)
    images = rng.integers(0, 256, (30, 6, 6, 3), dtype=np.uint8)
    worst = WorstImages(count)
    for start in range(0, 30, batch_size):
        rows = list(range(start, min(start + batch_size, 30)))
        worst.update(rows, images[rows], truth[rows], pred[rows])
    wrong = (truth != pred).sum((1, 2))
    expected = sorted(range(30), key=lambda row: (-wrong[row], row))[:count]  # ties: lower row first
    items = worst.items()
    assert [item.row for item in items] == expected
    assert [item.wrong_pixels for item in items] == wrong[expected].tolist()
    assert np.array_equal(items[0].image, images[expected[0]]) and np.array_equal(items[0].pred, pred[expected[0]])
    picture = worst.picture(columns=2)
    strips = min(count, 30)
    assert picture.shape == (-(-strips // 2) * 258 + 2, min(strips, 2) * (4 * 256 + 2) + 2, 3)


def test_evaluate_store_collects_the_worst_images(tmp_path):
    from labelgen.store import LabelStore
    from train.evaluation.evaluate import WorstImages, evaluate_store
    from train.losses import class_map_from_label_map
    from train.datasets.synthetic import make_synthetic_store

    path = tmp_path / "exact.zarr"
    make_synthetic_store(path, count=12, size=16, bad_rows=[2])
    store = LabelStore(path, mode="r")
    ok = store.ok_indices()
    truth = class_map_from_label_map(torch.from_numpy(store.read("label", ok)).long())
    # Every image of the store is called face, so the worst are those with the least true face.
    worst = WorstImages(3)
    evaluate_store(lambda images: torch.ones(images.shape[0], *images.shape[2:], dtype=torch.long), path,
                   batch_size=5, worst=worst)
    not_face = (truth != 1).sum((1, 2)).numpy()
    expected = sorted(range(len(ok)), key=lambda i: (-not_face[i], int(ok[i])))[:3]
    assert [item.row for item in worst.items()] == [int(ok[i]) for i in expected]
    assert 2 not in [item.row for item in worst.items()]  # a failed row has no label to compare
