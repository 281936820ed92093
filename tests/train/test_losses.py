"""Tests for train.losses: the vectorized consensus loss against a float64 loop,
the documented "official" reductions, the cross-entropy baseline and the
blob-weighted cross-entropy control (Eq. 5)."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from train.losses import (
    BlobCrossEntropyLoss,
    ConsensusLoss,
    CrossEntropyLoss,
    blob_cross_entropy_loss,
    blob_ids_from_label_map,
    blobs_from_class_map,
    blobs_from_class_maps,
    consensus_loss,
    consensus_loss_from_label_map,
    consensus_loss_reference,
    create_loss,
    cross_entropy_loss,
)


def _random_blobs(seed, n, c, h, w):
    """Random logits, per-image blob ids and an N x B class table padded with -1.

    Images get different blob counts; image 0 owns a single-pixel blob and every
    image has a few ignored pixels.
    """
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 3
    counts = [2 + i % 4 for i in range(n)]
    ids = torch.stack([torch.randint(0, k, (h, w), generator=g) for k in counts])
    ids[0][ids[0] == 1] = 0
    ids[0, 0, 0] = 1  # single-pixel blob
    ids[:, -1, -1] = -1  # ignored pixels
    table = torch.full((n, max(counts)), -1, dtype=torch.long)
    for i, k in enumerate(counts):
        table[i, :k] = torch.randint(0, c, (k,), generator=g)
    return logits, ids, table


CASES = [(0, 1, 3, 4, 5), (1, 2, 3, 6, 6), (2, 3, 4, 5, 7), (3, 4, 2, 8, 3), (4, 2, 5, 1, 9)]


@pytest.mark.parametrize("mode", ["default", "official"])
@pytest.mark.parametrize("seed,n,c,h,w", CASES)
def test_vectorized_matches_reference_loop(seed, n, c, h, w, mode):
    logits, ids, table = _random_blobs(seed, n, c, h, w)
    fast = consensus_loss(logits, ids, table, alpha=10.0, beta=5.0, mode=mode)
    slow = consensus_loss_reference(logits, ids, table, alpha=10.0, beta=5.0, mode=mode)
    assert fast.item() == pytest.approx(slow.item(), abs=1e-6)


@pytest.mark.parametrize("mode", ["default", "official"])
def test_gradient_matches_reference_loop(mode):
    logits, ids, table = _random_blobs(7, 3, 3, 5, 6)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    consensus_loss(a, ids, table, mode=mode).backward()
    consensus_loss_reference(b, ids, table, mode=mode).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-9)


def test_float32_close_to_float64_reference():
    logits, ids, table = _random_blobs(5, 2, 3, 16, 16)
    fast = consensus_loss(logits.float(), ids, table)
    assert fast.dtype == torch.float32
    assert fast.item() == pytest.approx(consensus_loss_reference(logits, ids, table).item(), rel=1e-5)


@pytest.mark.parametrize("mode", ["default", "official"])
def test_gradcheck(mode):
    logits, ids, table = _random_blobs(11, 2, 3, 3, 4)
    logits = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: consensus_loss(x, ids, table, 2.0, 3.0, mode=mode), (logits,))


def test_perfect_prediction_is_minimal_and_wrong_is_large():
    label_map = torch.tensor([[[0, 0, 1, 1], [0, 2, 1, 1], [0, 0, 5, 5]]])
    classes = label_map.clamp(max=2)
    good = 30.0 * F.one_hot(classes, 3).permute(0, 3, 1, 2).double()
    bad = 30.0 * F.one_hot((classes + 1) % 3, 3).permute(0, 3, 1, 2).double()
    assert consensus_loss_from_label_map(good, label_map).item() < 1e-9
    assert consensus_loss_from_label_map(bad, label_map).item() > 10.0 * 25


def test_consensus_term_penalises_disagreement_inside_a_blob():
    # Both blobs average to (0.5, 0.5) but only the second is split: same label
    # term, so the loss difference is beta times the consensus term alone.
    ids = torch.zeros(1, 1, 2, dtype=torch.long)
    table = torch.tensor([0])
    agree = torch.zeros(1, 2, 1, 2, dtype=torch.float64)
    split = torch.tensor([[[[10.0, -10.0]], [[-10.0, 10.0]]]], dtype=torch.float64)
    label_only_agree = consensus_loss(agree, ids, table, alpha=1.0, beta=0.0)
    label_only_split = consensus_loss(split, ids, table, alpha=1.0, beta=0.0)
    assert label_only_agree.item() == pytest.approx(label_only_split.item(), abs=1e-8)
    assert consensus_loss(agree, ids, table, alpha=0.0, beta=1.0).item() == pytest.approx(0.0, abs=1e-12)
    assert consensus_loss(split, ids, table, alpha=0.0, beta=1.0).item() > 0.6  # ~ log 2


def _kl(m, p):
    return sum(mi * math.log(mi / pi) for mi, pi in zip(m, p))


def test_official_mode_pools_kl_with_extra_one_over_c():
    # One image, one blob of two pixels, C = 2: p_a = (1/2, 1/2), p_b = (3/4, 1/4).
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]], dtype=torch.float64)
    ids = torch.zeros(1, 1, 2, dtype=torch.long)
    table = torch.tensor([0])
    m = (0.625, 0.375)
    label = -math.log(0.625)
    kl_sum = _kl(m, (0.5, 0.5)) + _kl(m, (0.75, 0.25))
    default = consensus_loss(logits, ids, table, alpha=1.0, beta=1.0)
    official = consensus_loss(logits, ids, table, alpha=1.0, beta=1.0, mode="official")
    assert default.item() == pytest.approx(label + kl_sum / 2, abs=1e-12)
    assert official.item() == pytest.approx(label + kl_sum / (2 * 2), abs=1e-12)


def test_official_mode_groups_raw_ids_and_averages_label_over_images():
    # Blob-constant logits, so only the label term is non-zero.
    # image 0: [id 0 | id 1] with p = (1/4, 1/4, 1/2) and (1/3, 1/3, 1/3); image 1: [id 0, id 0], p0 = 3/5.
    l0 = [0.0, 0.0, math.log(2.0)]
    logits = torch.tensor(
        [[[[l0[0], 0.0]], [[l0[1], 0.0]], [[l0[2], 0.0]]],
         [[[math.log(3.0), math.log(3.0)]], [[0.0, 0.0]], [[0.0, 0.0]]]],
        dtype=torch.float64,
    )
    ids = torch.tensor([[[0, 1]], [[0, 0]]])
    table = torch.tensor([0, 1])
    l00, l01, l10 = -math.log(0.25), -math.log(1 / 3), -math.log(0.6)
    default = consensus_loss(logits, ids, table, alpha=1.0, beta=1.0)
    official = consensus_loss(logits, ids, table, alpha=1.0, beta=1.0, mode="official")
    assert default.item() == pytest.approx((l00 + l01 + l10) / 3, abs=1e-12)
    # groups {id 0: (l00 + l10) / N, id 1: l01 / N}, N = 2, then mean over 2 groups
    assert official.item() == pytest.approx(((l00 + l10) / 2 + l01 / 2) / 2, abs=1e-12)


def test_store_label_map_convention():
    label_map = torch.tensor([[[0, 1, 4], [-1, 2, 4]]], dtype=torch.int16)
    ids, table = blob_ids_from_label_map(label_map)
    assert ids.dtype == torch.long and ids.tolist() == [[[0, 1, 4], [-1, 2, 4]]]
    assert table.tolist() == [0, 1, 2, 2, 2]
    logits = torch.randn(1, 3, 2, 3, dtype=torch.float64)
    assert consensus_loss_from_label_map(logits, label_map).item() == pytest.approx(
        consensus_loss_reference(logits, ids, table).item(), abs=1e-10
    )
    # Ids 2 and 4 are two blobs of class 2, not one.
    merged = torch.tensor([[[0, 1, 2], [-1, 2, 2]]])
    assert consensus_loss_from_label_map(logits, label_map).item() != pytest.approx(
        consensus_loss_from_label_map(logits, merged).item()
    )
    assert blob_ids_from_label_map(np.zeros((2, 1, 3, 3), np.uint8))[0].shape == (2, 3, 3)


def test_ignored_pixels_do_not_matter():
    logits, ids, table = _random_blobs(3, 2, 3, 5, 5)
    other = logits.clone()
    other[:, :, -1, -1] += 100.0  # only ignored pixels change
    assert consensus_loss(logits, ids, table).item() == pytest.approx(consensus_loss(other, ids, table).item(), abs=1e-12)
    ids2 = ids.clone()
    ids2[ids2 == 0] = 9
    with_ignore_id = consensus_loss(logits, ids2, torch.cat([table, table], 1), ignore_index=9)
    dropped = table.clone()
    dropped[:, 0] = -1  # dropping blob 0 through the class table is the same thing
    assert with_ignore_id.item() == pytest.approx(consensus_loss(logits, ids, dropped).item(), abs=1e-12)


def test_no_blob_gives_zero_with_graph():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = consensus_loss(logits, torch.full((1, 2, 2), -1), torch.tensor([0]))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_extreme_logits_stay_finite():
    logits, ids, table = _random_blobs(2, 2, 3, 6, 6)
    logits = (logits * 1000).float().requires_grad_()
    loss = consensus_loss(logits, ids, table)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_invalid_inputs_raise():
    logits = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError):
        consensus_loss(logits, torch.full((1, 2, 2), 3), torch.tensor([0, 1, 2]))  # id past table
    with pytest.raises(ValueError):
        consensus_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([3]))  # class >= C
    with pytest.raises(ValueError):
        consensus_loss(logits, torch.zeros(1, 2, 3, dtype=torch.long), torch.tensor([0]))  # shape
    with pytest.raises(ValueError):
        consensus_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([0]), mode="paper")


def test_blobs_from_class_map_components():
    cm = np.array(
        [[0, 0, 2, 0],
         [1, 0, 0, 2],
         [1, 0, 2, 0],
         [0, 2, 0, 0]]
    )
    ids8, cls8 = blobs_from_class_map(cm, connectivity=8)
    ids4, cls4 = blobs_from_class_map(cm, connectivity=4)
    assert cls8.tolist() == [0, 1, 2]  # diagonal hair pixels form one 8-connected blob
    assert sorted(cls4.tolist()) == [0, 0, 0, 0, 1, 2, 2, 2, 2]
    for ids, cls, structure in [(ids8, cls8, np.ones((3, 3))), (ids4, cls4, None)]:
        assert (cls[ids] == cm).all()
        for c in range(3):
            assert (cls == c).sum() == ndi.label(cm == c, structure=structure)[1]
        for b in range(len(cls)):  # every blob is one connected component
            assert ndi.label(ids == b, structure=structure)[1] == 1


def test_blobs_from_class_maps_pads_and_feeds_the_loss():
    maps = np.zeros((2, 4, 4), np.int64)
    maps[0, :2, :2] = 1
    maps[0, 3, 3] = 2
    maps[1, 0, 0] = 255  # ignored
    ids, table = blobs_from_class_maps(maps, ignore_index=255)
    assert ids.shape == (2, 4, 4) and table.tolist() == [[0, 1, 2], [0, -1, -1]]
    assert ids[1, 0, 0] == -1
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert torch.isclose(consensus_loss(logits, ids, table), consensus_loss_reference(logits, ids, table))


def test_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6)
    label_map = torch.randint(-1, 7, (2, 5, 6))
    classes = label_map.clamp(max=2)
    expected = F.cross_entropy(logits, classes, ignore_index=-1)
    assert torch.allclose(cross_entropy_loss(logits, label_map), expected)
    assert torch.allclose(CrossEntropyLoss()(logits, label_map.to(torch.int32)), expected)
    weight = torch.tensor([1.0, 2.0, 0.5])
    assert torch.allclose(
        CrossEntropyLoss(weight=weight)(logits, label_map), F.cross_entropy(logits, classes, weight, ignore_index=-1)
    )


def test_cross_entropy_with_blob_table():
    cm = torch.randint(0, 3, (2, 6, 6))
    ids, table = blobs_from_class_maps(cm)
    logits = torch.randn(2, 3, 6, 6)
    assert torch.allclose(create_loss("ce")(logits, ids, table), F.cross_entropy(logits, cm))


def test_module_and_factory():
    logits, ids, table = _random_blobs(9, 2, 3, 4, 4)
    loss = create_loss("consensus", alpha=2.0, beta=1.0, mode="official")
    assert isinstance(loss, ConsensusLoss)
    assert loss(logits, ids, table).item() == pytest.approx(
        consensus_loss(logits, ids, table, 2.0, 1.0, mode="official").item(), abs=1e-12
    )
    label_map = torch.randint(0, 5, (2, 4, 4))
    assert ConsensusLoss()(logits, label_map).item() == pytest.approx(
        consensus_loss_from_label_map(logits, label_map).item(), abs=1e-12
    )
    assert isinstance(create_loss("CE"), CrossEntropyLoss)
    with pytest.raises(KeyError):
        create_loss("dice")


# The blob-weighted cross-entropy control (the paper's Eq. 5).

PIXEL_PROBS = [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]  # pixels in raster order


def _logits_of(probs):
    """1 x C x 2 x 2 logits whose softmax is ``probs`` (log-probabilities are valid logits)."""
    return torch.log(torch.tensor(probs, dtype=torch.float64)).T.reshape(1, 3, 2, 2)


def test_blob_cross_entropy_by_hand():
    # Blob 0 (class 0) holds pixels 0, 1, 2; blob 1 (class 2) holds pixel 3 alone.
    ids = torch.tensor([[[0, 0], [0, 1]]])
    table = torch.tensor([0, 2])
    by_hand = 0.5 * (-(math.log(0.5) + math.log(0.25) + math.log(0.2)) / 3 - math.log(0.8))
    logits = _logits_of(PIXEL_PROBS)
    assert blob_cross_entropy_loss(logits, ids, table).item() == pytest.approx(by_hand, rel=1e-12)
    # The pixel mean weights the 3-pixel blob three times as much: a different number.
    per_pixel = -(math.log(0.5) + math.log(0.25) + math.log(0.2) + math.log(0.8)) / 4
    assert cross_entropy_loss(logits, ids, table).item() == pytest.approx(per_pixel, rel=1e-12)
    assert abs(by_hand - per_pixel) > 0.2


def test_blob_cross_entropy_equals_pixel_mean_when_blobs_are_equal():
    # Store label map with two equal 8-pixel blobs (background and face) and no ignored pixel.
    label_map = torch.zeros(1, 4, 4, dtype=torch.long)
    label_map[0, 2:] = 1
    logits = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert blob_cross_entropy_loss(logits, label_map).item() == pytest.approx(
        cross_entropy_loss(logits, label_map).item(), rel=1e-12
    )


def test_blob_cross_entropy_gives_a_small_blob_the_gradient_of_a_large_one():
    # One wrong pixel in a 1-pixel blob gets 15x the gradient of one in a 15-pixel blob.
    label_map = torch.zeros(1, 4, 4, dtype=torch.long)
    label_map[0, 3, 3] = 2  # a one-pixel occluder
    logits = torch.zeros(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    blob_cross_entropy_loss(logits, label_map).backward()
    small = logits.grad[0, :, 3, 3].abs().sum()
    large = logits.grad[0, :, 0, 0].abs().sum()
    assert (small / large).item() == pytest.approx(15.0, rel=1e-9)


def test_blob_cross_entropy_gradcheck_and_factory():
    logits, ids, table = _random_blobs(3, 2, 3, 4, 5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: blob_cross_entropy_loss(x, ids, table), (logits,))
    module = create_loss("ce-blob")
    assert isinstance(module, BlobCrossEntropyLoss)
    assert module(logits, ids, table).item() == pytest.approx(blob_cross_entropy_loss(logits, ids, table).item())
    empty = torch.full((2, 4, 5), -1)
    assert module(logits, empty, table).item() == 0.0
