"""Tests for train.datasets.lfw_parts on the real LFW Part Labels copy ($SVC_LFW_PARTS or ../shared)."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from train.datasets.lfw_parts import LFWParts, default_lfw_parts_root, load_pair, read_split
from train.evaluation.metrics import resize_nearest


@pytest.fixture(scope="module")
def root(lfw_root):
    return lfw_root


def test_default_root_and_splits(root):
    assert default_lfw_parts_root() == root
    sizes = {s: len(read_split(root, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 1500, "val": 500, "test": 927}
    assert not set(read_split(root, "train")) & set(read_split(root, "test"))
    with pytest.raises(ValueError):
        read_split(root, "dev")
    assert read_split(root, "train+val") == read_split(root, "train") + read_split(root, "val")
    for bad in ("train+dev", "train+train"):
        with pytest.raises(ValueError):
            read_split(root, bad)


def test_missing_root_names_the_path_and_the_variable(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    project.mkdir()
    monkeypatch.delenv("SVC_LFW_PARTS", raising=False)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'shared' / 'data' / 'lfw_parts'}; set SVC_LFW_PARTS="):
        default_lfw_parts_root(project)
    monkeypatch.setenv("SVC_LFW_PARTS", str(tmp_path / "elsewhere"))  # the variable wins over the project
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "elsewhere")):
        default_lfw_parts_root(project)
    (tmp_path / "elsewhere").mkdir()
    assert default_lfw_parts_root(project) == tmp_path / "elsewhere"


def test_items_have_expected_shapes_and_classes(root):
    ds = LFWParts(split="test", size=128)
    assert len(ds) == 927
    stems = read_split(root, "test")[:3]
    for i, stem in enumerate(stems):
        image, label, name = ds[i]
        assert name == stem
        assert image.shape == (3, 128, 128) and image.dtype == torch.uint8
        assert label.shape == (128, 128) and label.dtype == torch.int64
        assert set(label.unique().tolist()) <= {0, 1, 2}
        assert (label == 1).any()  # every image shows a face
        native = load_pair(root, stem)[1]
        assert torch.equal(label, torch.from_numpy(resize_nearest(native, 128)).long())


def test_native_size_is_rgb(root):
    image, label, stem = LFWParts(root, split="val", size=None)[0]
    assert image.shape == (3, 250, 250) and label.shape == (250, 250)
    bgr = cv2.imread(str(root / "images" / f"{stem}.jpg"))
    assert torch.equal(image[0], torch.from_numpy(bgr[..., 2]))  # channel 0 is red
    assert torch.equal(label, torch.from_numpy(cv2.imread(str(root / "labels" / f"{stem}.png"), -1)).long())


def test_hflip_mirrors_image_and_label_together(root):
    plain = LFWParts(root, "train", size=64)
    flip = LFWParts(root, "train", size=64, hflip=True)
    image, label, _ = plain[0]
    outcomes = set()
    for seed in range(8):
        torch.manual_seed(seed)
        fi, fl, _ = flip[0]
        mirrored = torch.equal(fi, image.flip(-1)) and torch.equal(fl, label.flip(-1))
        same = torch.equal(fi, image) and torch.equal(fl, label)
        assert mirrored or same
        outcomes.add(mirrored)
    assert outcomes == {True, False}


def test_dataloader_batches(root):
    images, labels, stems = next(iter(DataLoader(LFWParts(root, "test", size=32), batch_size=4)))
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4, 32, 32) and len(stems) == 4


@pytest.mark.slow
def test_test_split_pixel_fractions_match_readme(root):
    counts = np.zeros(3)
    for stem in read_split(root, "test"):
        counts += np.bincount(load_pair(root, stem)[1].ravel(), minlength=3)
    assert np.allclose(counts / counts.sum(), [0.6828, 0.2158, 0.1014], atol=1e-4)
