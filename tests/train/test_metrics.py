"""Tests for train.evaluation.metrics: dataset confusion matrix, sparsity error, resizing."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.measure
import torch
import torch.nn.functional as F

from train.evaluation.metrics import ConfusionMatrix, SparsityMeter, component_count, resize_nearest, sparsity_error


def test_confusion_matrix_hand_computed():
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    r = cm.compute()
    assert r["confusion"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # IoU: bg 1/(2+2-1), face 2/(2+3-2), hair 1/(2+1-1)
    assert np.allclose(r["iou"], [1 / 3, 2 / 3, 1 / 2])
    assert r["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert r["pixel_acc"] == pytest.approx(4 / 6)
    assert np.allclose(r["recall"], [1 / 2, 1.0, 1 / 2])
    assert r["mean_recall"] == pytest.approx(2 / 3)


def test_accumulates_one_matrix_not_per_image_means():
    cm = ConfusionMatrix(2)
    cm.update(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]))  # perfect, large
    cm.update(torch.tensor([0]), torch.tensor([1]))  # one miss
    r = cm.compute()
    assert r["iou"][1] == pytest.approx(4 / 5)  # per-image mean would give 0.5
    assert r["iou"][0] == 0.0  # predicted but absent from the ground truth: 0, not NaN
    assert r["pixel_acc"] == pytest.approx(4 / 5)
    assert np.isnan(r["recall"][0]) and r["mean_recall"] == pytest.approx(4 / 5)


def test_matches_manual_numpy_on_random_maps():
    rng = np.random.default_rng(0)
    k = 4
    cm = ConfusionMatrix(k, ignore_index=255)
    preds, targets = [], []
    for _ in range(5):
        t = rng.integers(0, k, size=(9, 11))
        t[rng.random(t.shape) < 0.1] = 255
        p = rng.integers(0, k, size=(9, 11))
        cm.update(torch.from_numpy(p) if len(preds) % 2 else p, t)
        preds.append(p.ravel())
        targets.append(t.ravel())
    p, t = np.concatenate(preds), np.concatenate(targets)
    keep = t != 255
    p, t = p[keep], t[keep]
    r = cm.compute()
    for c in range(k):
        inter = np.sum((p == c) & (t == c))
        union = np.sum((p == c) | (t == c))
        assert r["iou"][c] == pytest.approx(inter / union)
        assert r["recall"][c] == pytest.approx(inter / np.sum(t == c))
    assert r["pixel_acc"] == pytest.approx(np.mean(p == t))
    assert r["confusion"].sum() == keep.sum()


def test_bad_prediction_and_reset():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError):
        cm.update(np.array([3]), np.array([0]))
    with pytest.raises(ValueError):
        cm.update(np.array([0, 1]), np.array([0]))
    cm.update(np.array([1]), np.array([1]))
    cm.reset()
    assert cm.matrix.sum() == 0


def test_component_count_hand_case():
    cm = np.array(
        [[2, 0, 0, 1],
         [0, 2, 0, 0],
         [0, 0, 0, 1],
         [1, 0, 0, 1]]
    )
    # hair: one diagonal (8-connected) component; face: {(0,3)}, {(2,3),(3,3)}, {(3,0)}
    assert component_count(cm) == 4
    assert component_count(np.zeros((3, 3), int)) == 0  # background is never counted
    assert component_count(cm, background=1) == 1 + 1  # hair + the one 8-connected bg region


def test_component_count_matches_skimage_and_scipy():
    rng = np.random.default_rng(1)
    for _ in range(5):
        cm = (rng.random((20, 20)) * 3).astype(np.int64)
        ref_sk = sum(skimage.measure.label(cm == c, connectivity=2).max() for c in (1, 2))
        ref_nd = sum(ndi.label(cm == c, structure=np.ones((3, 3)))[1] for c in (1, 2))
        assert component_count(cm) == ref_sk == ref_nd
        assert component_count(torch.from_numpy(cm)) == ref_sk


def test_sparsity_error_and_meter():
    gt = np.zeros((6, 6), int)
    gt[1:3, 1:3] = 1
    pred = gt.copy()
    pred[5, 5] = 1
    pred[0, 5] = 2
    assert sparsity_error(pred, gt) == 2
    assert sparsity_error(gt, pred) == 2
    meter = SparsityMeter()
    assert np.isnan(meter.compute())
    meter.update(pred, gt)
    meter.update(np.stack([gt, gt]), np.stack([gt, pred]))
    assert meter.count == 3 and meter.compute() == pytest.approx(4 / 3)


@pytest.mark.parametrize("src,dst", [(128, 250), (250, 128), (5, 7)])
def test_resize_nearest_matches_nearest_exact(src, dst):
    x = torch.randint(0, 3, (2, src, src), dtype=torch.uint8)
    ref = F.interpolate(x[:, None].float(), size=(dst, dst), mode="nearest-exact")[:, 0].to(torch.uint8)
    out = resize_nearest(x, dst)
    assert out.dtype == torch.uint8 and torch.equal(out, ref)
    assert np.array_equal(resize_nearest(x[0].numpy(), (dst, dst)), ref[0].numpy())


def test_resize_nearest_non_square_identity():
    x = np.arange(12).reshape(3, 4)
    assert np.array_equal(resize_nearest(x, (3, 4)), x)
    # column i samples floor((i + 0.5) * 4 / 2) = 1, 3: the centres of each output pixel
    assert resize_nearest(x, (6, 2)).tolist() == [[1, 3], [1, 3], [5, 7], [5, 7], [9, 11], [9, 11]]
