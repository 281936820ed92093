"""On-the-fly occlusion for teacher training (train.datasets.occluded) and its wiring into svc-train."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from labelgen.eval.lfw_parts import load_pair
from labelgen.eval.synth import split_stems, write_synthetic_store
from train.cli import main as svc_train
from train.config import TrainConfig
from train.datasets.occluded import OccludedLFWTrain, SyntheticLFWEval
from train.datasets.synthetic import make_synthetic_lfw
from train.engine.logs import read_metrics
from train.engine.trainer import train

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_draws_are_a_function_of_seed_epoch_and_index(lfw_root):
    data = OccludedLFWTrain(lfw_root, "train", size=64, limit=6, seed=3)
    again = OccludedLFWTrain(lfw_root, "train", size=64, limit=6, seed=3, cache=False)
    for index in (0, 5):
        first, second = data[index], again[index]
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    labels_by_epoch = []
    for epoch in range(3):
        data.set_epoch(epoch)
        labels_by_epoch.append(torch.stack([data[i][1] for i in range(6)]))
    assert not torch.equal(labels_by_epoch[0], labels_by_epoch[1]), "each epoch draws new occluders"
    assert not torch.equal(labels_by_epoch[1], labels_by_epoch[2])


def test_labels_are_the_face_mask_split_into_visible_face_and_occluder_blobs(lfw_root):
    size = 96
    data = OccludedLFWTrain(lfw_root, "train", size=size, limit=8, hflip=False)
    occluded_images = 0
    for index, stem in enumerate(data.stems):
        image, label = data[index]
        assert image.shape == (3, size, size) and image.dtype == torch.uint8
        assert label.shape == (size, size) and label.dtype == torch.uint8
        _, lfw_label = load_pair(lfw_root, stem)
        face = cv2.resize((lfw_label == 1).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
        label = label.numpy()
        # Face or occluder-on-face is exactly the LFW face; nothing else is labelled.
        assert np.array_equal(label > 0, face == 1)
        ids = np.unique(label[label >= 2])
        if len(ids):
            occluded_images += 1
            assert list(ids) == list(range(2, 2 + len(ids))), "occluder ids are consecutive from 2"
    assert occluded_images >= 3, "most draws carry at least one occluder"


def test_flips_mirror_image_and_label_together(lfw_root):
    flipping = OccludedLFWTrain(lfw_root, "train", size=64, limit=10, hflip=True)
    plain = OccludedLFWTrain(lfw_root, "train", size=64, limit=10, hflip=False)
    flipped = 0
    for index in range(10):
        (image, label), (image0, label0) = flipping[index], plain[index]
        if torch.equal(label, label0):
            assert torch.equal(image, image0)
        else:
            flipped += 1
            assert torch.equal(image, image0.flip(-1)) and torch.equal(label, label0.flip(-1))
    assert 0 < flipped < 10


def test_refuses_the_test_split_and_unknown_families(lfw_root):
    for split in ("test", "train+test"):
        with pytest.raises(ValueError, match="evaluation only"):
            OccludedLFWTrain(lfw_root, split, limit=1)
    with pytest.raises(ValueError, match="unknown occluder families"):
        OccludedLFWTrain(lfw_root, "train", families=["spoons"], limit=1)


def test_synthetic_eval_equals_the_rows_labelgen_synth_writes(lfw_root, tmp_path):
    store = write_synthetic_store(tmp_path / "val.zarr", "val", copies=1, seed=2, crop_size=64, shard_size=4,
                                  root=lfw_root, limit=5, progress=False)
    everything = slice(0, store.count)
    row_of_stem = {entry.key.split("#")[0]: row for row, entry in enumerate(store.manifest(everything))}
    images, labels = store.read("image", everything), store.read("label", everything)
    data = SyntheticLFWEval(lfw_root, "val", size=64, seed=2, limit=5)
    assert len(data) == 5 == len(row_of_stem)
    for index, stem in enumerate(split_stems("val", lfw_root)[:5]):
        image, classes = data[index]
        row = row_of_stem[stem]
        assert np.array_equal(image.numpy().transpose(1, 2, 0), images[row])
        assert np.array_equal(classes.numpy(), np.minimum(labels[row], 2))


def test_svc_train_occlude_runs_and_validates_on_synthetic_val(tmp_path):
    root = make_synthetic_lfw(tmp_path / "lfw", {"train": 8, "val": 4}, size=64)
    out = tmp_path / "run"
    summary = train(TrainConfig(out=str(out), lfw_parts=True, occlude=True, lfw_root=str(root), image_size=32,
                                epochs=2, width=0.125, batch_size=4, num_workers=0, log_every=1, progress=False))
    assert summary["step"] == 4 and summary["validation"]["pixels"] == 4 * 32 * 32
    assert len(summary["validation"]["iou"]) == 3
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"]
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_occlude_validates_on_a_store_when_given(lfw_root, tmp_path):
    val = write_synthetic_store(tmp_path / "val.zarr", "val", crop_size=32, shard_size=8, root=lfw_root, limit=6,
                                progress=False)
    root = make_synthetic_lfw(tmp_path / "lfw", {"train": 4, "val": 2}, size=64)
    summary = train(TrainConfig(out=str(tmp_path / "run"), lfw_parts=True, occlude=True, lfw_root=str(root),
                                val_labels=str(val.path), image_size=32, epochs=1, width=0.125, batch_size=4,
                                num_workers=0, progress=False))
    assert summary["validation"]["pixels"] == 6 * 32 * 32  # the store's six rows, not LFW val


def test_occluder_families_reach_the_training_set(tmp_path):
    from labelgen.eval.occluders import TRAIN_FAMILIES
    from train.distributed import init_distributed
    from train.engine.training_data import TrainingData

    root = make_synthetic_lfw(tmp_path / "lfw", {"train": 4, "val": 2}, size=64)
    base = dict(out=str(tmp_path / "run"), lfw_parts=True, occlude=True, lfw_root=str(root), image_size=32,
                width=0.125, batch_size=4, num_workers=0, progress=False)
    env = init_distributed("cpu")
    assert TrainingData(TrainConfig(**base), env).train_set.families == TRAIN_FAMILIES
    chosen = TrainingData(TrainConfig(**base, occluder_families=["skin", "polygons"]), env).train_set
    assert chosen.families == ("skin", "polygons")
    with pytest.raises(ValueError, match="unknown occluder families"):
        TrainingData(TrainConfig(**base, occluder_families=["spoons"]), env)
    result = CliRunner().invoke(svc_train, ["--lfw-parts", "--occluder-families", "skin",
                                            "--lfw-root", str(root), "--out", str(tmp_path / "r2")])
    assert result.exit_code != 0 and "need occlude" in result.output
    result = CliRunner().invoke(svc_train, ["--lfw-parts", "--occlude", "--occluder-families", " skin, polygons ",
                                            "--lfw-root", str(root), "--out", str(tmp_path / "r3"), "--image-size",
                                            "32", "--width", "0.125", "--batch-size", "4", "--max-steps", "1",
                                            "--num-workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r3" / "config.json").read_text())["occluder_families"] == ["skin", "polygons"]


def test_occlude_needs_lfw_parts(tmp_path):
    result = CliRunner().invoke(svc_train, ["--labels", str(tmp_path / "x.zarr"), "--occlude",
                                            "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and "needs lfw_parts" in result.output


@pytest.mark.parametrize("occlude", [True, False])
def test_lfw_split_train_plus_val_trains_on_both_splits(tmp_path, occlude):
    from train.distributed import init_distributed
    from train.engine.training_data import TrainingData

    root = make_synthetic_lfw(tmp_path / "lfw", {"train": 4, "val": 3}, size=64)
    base = dict(out=str(tmp_path / "run"), lfw_parts=True, occlude=occlude, lfw_root=str(root), image_size=32,
                width=0.125, batch_size=4, num_workers=0, progress=False)
    env = init_distributed("cpu")
    assert len(TrainingData(TrainConfig(**base), env).train_set) == 4
    both = TrainingData(TrainConfig(**base, lfw_split="train+val"), env).train_set
    assert len(both) == 7
    stems = both.stems if occlude else both.base.stems
    assert stems == split_stems("train", root) + split_stems("val", root)
    with pytest.raises(ValueError, match="lfw_split must be one of"):
        TrainingData(TrainConfig(**base, lfw_split="train+test"), env)


def test_svc_train_lfw_split_lands_in_the_config(tmp_path):
    root = make_synthetic_lfw(tmp_path / "lfw", {"train": 4, "val": 4}, size=64)
    result = CliRunner().invoke(svc_train, ["--lfw-parts", "--occlude", "--lfw-split", "train+val", "--lfw-root",
                                            str(root), "--out", str(tmp_path / "run"), "--image-size", "32",
                                            "--width", "0.125", "--batch-size", "4", "--epochs", "1",
                                            "--num-workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lfw_split"] == "train+val"
    assert json.loads(result.output.strip().splitlines()[-1])["step"] == 2  # 8 faces, batches of 4
    result = CliRunner().invoke(svc_train, ["--labels", str(tmp_path / "x.zarr"), "--lfw-split", "train+val",
                                            "--out", str(tmp_path / "r2")])
    assert result.exit_code != 0
