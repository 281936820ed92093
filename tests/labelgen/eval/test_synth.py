"""Occluder generators, synthetic occlusions with exact labels, and the ``labelgen synth`` store."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from labelgen.eval import occluders, synth
from labelgen.cli import main
from labelgen.eval.occluders import (FAMILIES, HELDOUT_FAMILIES, KINDS, OPTIONAL_TRAIN_FAMILIES, TRAIN_FAMILIES,
                                     OccluderKind, make_occluder)
from labelgen.eval.synth import FaceFrame, occlude, synthesize, synthetic_pair, synthetic_split, to_store_size


# -- occluders -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_occluder_kind_makes_a_valid_deterministic_patch(name):
    for size in (24, 64):
        for seed in (0, 1):
            patch, alpha = make_occluder(name, size, np.random.default_rng(seed))
            assert patch.dtype == np.uint8 and patch.ndim == 3 and patch.shape[2] == 3
            assert alpha.dtype == np.float32 and alpha.shape == patch.shape[:2]
            assert 0.0 <= alpha.min() and alpha.max() <= 1.0
            assert (alpha >= 0.5).sum() >= 0.05 * alpha.size, "an occluder must cover part of its patch"
            assert 0.9 * size <= max(alpha.shape) <= size, "size is the patch's longer side"
            again = make_occluder(name, size, np.random.default_rng(seed))
            assert np.array_equal(patch, again[0]) and np.array_equal(alpha, again[1])


def test_family_split_is_disjoint_and_covers_every_family():
    assert set(TRAIN_FAMILIES).isdisjoint(HELDOUT_FAMILIES)
    assert set(OPTIONAL_TRAIN_FAMILIES).isdisjoint(set(TRAIN_FAMILIES) | set(HELDOUT_FAMILIES))
    assert set(TRAIN_FAMILIES) | set(HELDOUT_FAMILIES) | set(OPTIONAL_TRAIN_FAMILIES) == set(FAMILIES)
    kinds = [name for family in FAMILIES.values() for name in family]
    assert sorted(kinds) == sorted(KINDS), "every kind is in exactly one family"
    train = {kind.name for kind in occluders.kinds_of(TRAIN_FAMILIES)}
    held_out = {kind.name for kind in occluders.kinds_of(HELDOUT_FAMILIES)}
    assert train.isdisjoint(held_out) and {"hand", "sunglasses", "microphone"} <= held_out
    with pytest.raises(ValueError, match="unknown occluder families"):
        occluders.kinds_of(["objects", "no_such_family"])


def test_skin_blob_is_skin_coloured_and_not_in_a_default_family():
    patch, alpha = make_occluder("skin_blob", 80, np.random.default_rng(3))
    mean = patch[alpha > 0.5].astype(float).mean(axis=0)
    nearest = np.abs(occluders.SKIN_TONES - mean).max(axis=1).min()
    assert nearest < 0.25 * 255, (mean, nearest)
    assert "skin_blob" not in {kind.name for kind in occluders.kinds_of(TRAIN_FAMILIES + HELDOUT_FAMILIES)}


def test_paste_clips_at_the_border_and_masks_where_alpha_dominates():
    alpha = np.array([[1.0, 0.4], [0.25, 0.0]], np.float32)
    image, mask = occluders.paste(np.zeros((3, 3, 3), np.uint8), np.full((2, 2, 3), 100, np.uint8), alpha, 2, 1)
    assert mask.astype(int).tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert image[1, 2, 0] == 100 and image[2, 2, 0] == 25 and image[0, 2, 0] == 0


# -- exact labels ---------------------------------------------------------------------------------
@pytest.fixture
def square_occluder(monkeypatch):
    """A single opaque black 10 x 10 square kind, unrotated, centred at the points given to ``place``."""
    def make_square(size, rng):
        return np.zeros((size, size, 3), np.uint8), np.ones((size, size), np.float32)

    monkeypatch.setitem(KINDS, "square", OccluderKind("square", "test", make_square, (0.5, 0.5), ("any",), 0.0))
    monkeypatch.setitem(FAMILIES, "test", ("square",))
    centres = []
    monkeypatch.setattr(FaceFrame, "anchor", lambda self, where, rng: centres.pop(0))
    return centres


def test_synthesize_labels_every_pixel_of_known_squares_exactly(square_occluder):
    face = np.zeros((30, 40), bool)
    face[5:25, 10:30] = True  # width 20: squares of 0.5 * 20 = 10 px
    image = np.full((30, 40, 3), 100, np.uint8)  # flat, so no blur and black stays black
    square_occluder.extend([(12.0, 8.0), (25.0, 22.0)])  # squares at rows 3-12 x cols 7-16, rows 17-26 x cols 20-29

    out, label = synthesize(image, face, np.random.default_rng(0), ["test"], max_occluders=2, min_occluders=2)

    expected = np.zeros((30, 40), np.uint8)
    expected[5:25, 10:30] = 1
    expected[5:13, 10:17] = 2  # first blob in raster order; its part off the face stays background
    expected[17:25, 20:30] = 3
    assert np.array_equal(label, expected)
    covered = np.zeros((30, 40), bool)
    covered[3:13, 7:17] = covered[17:27, 20:30] = True
    assert np.array_equal(out[..., 0] == 0, covered) and (out[~covered] == 100).all()
    assert (image == 100).all(), "the input image is not modified"


def test_touching_occluders_form_one_blob_and_hair_stays_background(square_occluder):
    face = np.zeros((30, 40), bool)
    face[5:25, 10:30] = True
    face[5:9, 10:30] = False  # hair over the forehead: not face, so not occlusion either
    square_occluder.extend([(15.0, 10.0), (24.0, 19.0)])  # rows 5-14 x cols 10-19 and rows 14-23 x cols 19-28

    _, label = synthesize(np.full((30, 40, 3), 100, np.uint8), face, np.random.default_rng(0), ["test"],
                          max_occluders=2, min_occluders=2)

    assert set(np.unique(label)) == {0, 1, 2}
    assert (label[5:9] == 0).all()
    assert (label[9:15, 10:20] == 2).all() and (label[14:24, 19:29] == 2).all()


def test_occlude_returns_the_covered_mask_and_changes_little_else():
    import cv2

    face = np.zeros((80, 80), bool)
    face[10:75, 20:60] = True
    image = np.random.default_rng(5).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    for seed in range(4):
        out, mask = occlude(image, face, np.random.default_rng(seed), TRAIN_FAMILIES, min_occluders=2)
        assert mask.any() and out.dtype == np.uint8
        changed = (out != image).any(axis=2)
        near = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert (mask & ~changed).sum() <= 0.01 * mask.sum()
        # Only soft edges and slivers thinner than a pixel (alpha < 0.5: not occluder) change elsewhere.
        assert (changed & ~near).sum() <= 0.05 * changed.sum()
    none, no_mask = occlude(image, np.zeros((80, 80), bool), np.random.default_rng(1), TRAIN_FAMILIES)
    assert np.array_equal(none, image) and not no_mask.any()


def test_occlude_without_a_face_changes_nothing():
    image = np.full((20, 20, 3), 7, np.uint8)
    out, mask = occlude(image, np.zeros((20, 20), bool), np.random.default_rng(0), TRAIN_FAMILIES, min_occluders=1)
    assert np.array_equal(out, image) and not mask.any()


# -- LFW Part Labels ------------------------------------------------------------------------------
def test_synthetic_pairs_are_deterministic_and_exact(lfw_root):
    first = list(synthetic_split("test", copies=2, limit=3, root=lfw_root))
    again = list(synthetic_split("test", copies=2, limit=3, root=lfw_root))
    assert [key for key, _, _ in first][:2] == [f"{synth.split_stems('test', lfw_root)[0]}#{c}" for c in (0, 1)]
    for (key, image, label), (key2, image2, label2) in zip(first, again):
        assert key == key2 and np.array_equal(image, image2) and np.array_equal(label, label2)
        stem, copy = synth.parse_key(key)
        _, face = synth.load_face(stem, lfw_root)
        assert np.array_equal(label >= 1, face), "the label's face region is exactly LFW's face"
        alone = synthetic_pair("test", stem, copy, root=lfw_root)  # order independent
        assert np.array_equal(alone[0], image) and np.array_equal(alone[1], label)
    assert not np.array_equal(first[0][1], first[1][1]), "copies differ"
    assert any(label.max() >= 2 for _, _, label in first)
    other_seed = synthetic_pair("test", synth.parse_key(first[0][0])[0], 0, seed=1, root=lfw_root)
    assert not np.array_equal(other_seed[0], first[0][1])


def test_default_families_hold_out_the_test_occluders():
    assert synth.default_families("test") == HELDOUT_FAMILIES
    assert synth.default_families("train") == synth.default_families("val") == TRAIN_FAMILIES


def test_store_resize_recounts_blobs():
    label = np.ones((8, 8), np.uint8)
    label[0, 0] = 2  # a one-pixel blob that a 4x downscale drops
    label[4:8, 4:8] = 3
    image = np.zeros((8, 8, 3), np.uint8)
    _, small, blobs = to_store_size(image, label, 2)
    assert small.tolist() == [[1, 1], [1, 2]] and blobs == 1


def test_synth_command_writes_an_ok_store_with_consistent_blobs(tmp_path, lfw_root):
    import cv2

    from labelgen.status import Status
    from labelgen.store import LabelStore

    out = tmp_path / "synth.zarr"
    result = CliRunner().invoke(main, ["synth", "--split", "val", "--limit", "4", "--copies", "2", "--size", "64",
                                       "--shard-size", "3", "--root", str(lfw_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    store = LabelStore(out, mode="r")
    assert store.count == 8 and store.crop_size == 64 and store.pending_shards() == []
    assert (store.status() == Status.OK).all()
    keys = sorted(store.read("key", slice(None)).tolist())
    stems = synth.split_stems("val", lfw_root)[:4]
    assert keys == sorted(f"{stem}#{copy}" for stem in stems for copy in (0, 1))
    labels, blobs = store.read("label", slice(None)), store.read("blobs", slice(None))
    assert labels.shape == (8, 64, 64) and store.read("image", slice(None)).shape == (8, 64, 64, 3)
    for label, count in zip(labels, blobs):
        assert label.max() == count + 1 if count else label.max() <= 1
        components = cv2.connectedComponents((label >= 2).astype(np.uint8), connectivity=8)[0] - 1
        assert components == count
    assert (store.read("identity", slice(None)) >= 0).all()
    assert store.attrs["synthetic"]["families"] == list(TRAIN_FAMILIES)
    # The stored pair is the native pair resized: the generator and the store agree.
    stem, copy = synth.parse_key(str(store.read("key", slice(0, 1))[0]))
    image, label, _ = to_store_size(*synthetic_pair("val", stem, copy, root=lfw_root), 64)
    assert np.array_equal(store.read("label", slice(0, 1))[0], label)
    assert np.array_equal(store.read("image", slice(0, 1))[0], image)


def test_synth_command_refuses_an_unknown_family(tmp_path, lfw_root):
    result = CliRunner().invoke(main, ["synth", "--split", "val", "--limit", "1", "--families", "hats",
                                       "--root", str(lfw_root), "--out", str(tmp_path / "s.zarr")])
    assert result.exit_code != 0 and "unknown occluder families" in result.output


def test_synth_photos_writes_the_occluded_photos_without_labels_and_resumes(tmp_path, lfw_root):
    import cv2

    out = tmp_path / "photos"
    command = ["synth", "--split", "val", "--limit", "2", "--copies", "2", "--seed", "1", "--photos",
               "--root", str(lfw_root), "--out", str(out)]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    stems = synth.split_stems("val", lfw_root)[:2]
    assert sorted(path.name for path in out.iterdir()) == sorted(f"{s}#{c}.jpg" for s in stems for c in (0, 1))
    # Each file is the generator's photo (JPEG at quality 95: within a few grey levels on average).
    stem = stems[0]
    photo = cv2.cvtColor(cv2.imread(str(out / f"{stem}#1.jpg")), cv2.COLOR_BGR2RGB)
    image, _ = synthetic_pair("val", stem, 1, seed=1, root=lfw_root)
    assert photo.shape == image.shape and np.abs(photo.astype(int) - image).mean() < 3
    # A second call keeps the files it finds (resume) and rewrites none.
    stamps = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    (out / f"{stem}#0.jpg").unlink()
    assert CliRunner().invoke(main, command).exit_code == 0
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir() if path.name != f"{stem}#0.jpg"} == \
        {name: stamp for name, stamp in stamps.items() if name != f"{stem}#0.jpg"}
    assert (out / f"{stem}#0.jpg").exists() and not list(out.glob("*.partial"))
