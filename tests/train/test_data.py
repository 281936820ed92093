"""Tests for train.datasets.store (the streaming store reader) and the LFW blob dataset (train.datasets.lfw_parts)."""

import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from labelgen.store import CHUNK_IMAGES, LabelStore
from train.datasets.lfw_parts import LFWPartsTrain, collate_blobs
from train.datasets.store import StoreDataset, StoreInfo, collate_class_maps, split_store
from train.datasets.synthetic import make_synthetic_lfw, make_synthetic_store
from train.losses import class_map_from_blobs

COUNT, SIZE = 150, 32  # chunks of 64, 64 and 22 rows
BAD = [0, 5, 64, 65, 66, 100, 149]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "labels.zarr"
    make_synthetic_store(path, count=COUNT, size=SIZE, shard_size=64, bad_rows=BAD, mark_ids=True)
    return path


@pytest.fixture(scope="module")
def stored(store_path):
    store = LabelStore(store_path, mode="r")
    return store.read("image", slice(None)), store.read("label", slice(None)), store.ok_indices()


def _identify(image: torch.Tensor, label: torch.Tensor, stored) -> tuple[int, bool]:
    """Row index of a yielded sample and whether it was flipped; asserts image and label agree."""
    images, labels, _ = stored
    flipped = bool(label[0, -1] == 7)
    col = -1 if flipped else 0
    assert label[0, col] == 7  # the corner marker moved with the flip, or did not move at all
    row = int(image[0, 0, col]) + 256 * int(image[1, 0, col])
    expect_image = torch.from_numpy(images[row].transpose(2, 0, 1).copy())
    expect_label = torch.from_numpy(labels[row].astype(np.int64))
    if flipped:
        expect_image, expect_label = expect_image.flip(-1), expect_label.flip(-1)
    assert torch.equal(image, expect_image) and torch.equal(label, expect_label)
    return row, flipped


def test_two_workers_yield_every_ok_image_exactly_once(store_path, stored):
    dataset = StoreDataset(store_path, buffer_size=40, seed=3)
    seen, flips = [], set()
    for image, label in DataLoader(dataset, batch_size=None, num_workers=2):
        assert image.dtype == torch.uint8 and image.shape == (3, SIZE, SIZE)
        assert label.dtype == torch.int64 and label.shape == (SIZE, SIZE)
        row, flipped = _identify(image, label, stored)
        seen.append(row)
        flips.add(flipped)
    assert sorted(seen) == stored[2].tolist()  # no duplicates, no losses, no non-OK rows
    assert len(seen) == COUNT - len(BAD) == len(dataset)
    assert flips == {True, False}


def test_ddp_ranks_and_workers_partition_the_epoch(store_path, stored):
    info = StoreInfo.read(store_path)
    per_rank = []
    for rank in (0, 1):
        dataset = StoreDataset(info, rank=rank, world_size=2, buffer_size=16)
        dataset.set_epoch(4)
        rows = [_identify(i, lab, stored)[0] for i, lab in DataLoader(dataset, batch_size=None, num_workers=2)]
        assert len(rows) == dataset.num_samples()
        per_rank.append(set(rows))
    assert not per_rank[0] & per_rank[1]
    assert sorted(per_rank[0] | per_rank[1]) == stored[2].tolist()


def test_epochs_are_shuffled_and_reproducible(store_path, stored):
    dataset = StoreDataset(store_path, buffer_size=32, seed=1)

    def order(epoch):
        dataset.set_epoch(epoch)
        return [_identify(i, lab, stored) for i, lab in dataset]

    first = order(0)
    assert order(0) == first  # same epoch: same rows, same flips
    second = order(1)
    assert [r for r, _ in second] != [r for r, _ in first]
    assert sorted(r for r, _ in second) == sorted(r for r, _ in first)
    # Shuffling mixes rows across the store, not only within a chunk.
    assert [r for r, _ in first] != sorted(r for r, _ in first)


def test_reads_whole_aligned_chunks_only(store_path, monkeypatch):
    reads = []
    original = LabelStore.read

    def spy(self, name, rows):
        reads.append((name, rows))
        return original(self, name, rows)

    monkeypatch.setattr(LabelStore, "read", spy)
    dataset = StoreDataset(StoreInfo.read(store_path), buffer_size=8)
    reads.clear()
    assert len(list(dataset)) == COUNT - len(BAD)
    image_reads = [rows for name, rows in reads if name == "image"]
    assert len(image_reads) == 3
    for rows in image_reads:
        assert isinstance(rows, slice) and rows.start % CHUNK_IMAGES == 0
        assert rows.stop == min(rows.start + CHUNK_IMAGES, COUNT)


def test_dataset_pickles_without_its_store_handle(store_path):
    dataset = StoreDataset(store_path)
    next(iter(dataset))  # opens the store in this process
    assert dataset._stores
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._stores == {} and clone.info.path == str(store_path)
    assert len(list(clone)) == len(dataset)


def test_full_batch_count_is_what_the_loader_gives(store_path):
    single = StoreDataset(store_path)
    for workers in (0, 2):
        loader = DataLoader(single, batch_size=8, num_workers=workers, drop_last=True)
        assert sum(1 for _ in loader) == single.num_full_batches(8, workers) > 0
    # With two ranks the count is the minimum over ranks, so every rank can run it.
    for rank in (0, 1):
        dataset = StoreDataset(store_path, rank=rank, world_size=2)
        dataset.set_epoch(2)
        loader = DataLoader(dataset, batch_size=8, num_workers=2, drop_last=True)
        assert sum(1 for _ in loader) >= dataset.num_full_batches(8, 2) > 0


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3, 0.6])
def test_split_holds_out_the_asked_fraction_of_ok_images_and_reads_each_once(store_path, stored, fraction):
    info = StoreInfo.read(store_path)
    train_part, val_part = split_store(info, fraction)
    ok = stored[2]
    assert val_part.ok_images == round(fraction * len(ok))  # to the image, not in 64-image chunks
    again = split_store(info, fraction)[1]
    assert again.chunks.tolist() == val_part.chunks.tolist() and again.row_ranges == val_part.row_ranges
    rows = {}
    for side, part in (("train", train_part), ("val", val_part)):
        dataset = StoreDataset(info, part, shuffle=False, hflip=False)
        rows[side] = [_identify(image, label, stored)[0] for image, label in dataset]
        assert len(rows[side]) == part.ok_images == len(dataset)
    assert sorted(rows["train"] + rows["val"]) == ok.tolist()  # disjoint, and nothing lost at the cut


def test_split_edge_cases(store_path):
    info = StoreInfo.read(store_path)
    assert split_store(info, 0.0)[1].ok_images == 0 and len(split_store(info, 0.0)[1]) == 0
    assert split_store(info, 0.001)[1].ok_images == 1  # a positive fraction always holds something out
    assert split_store(info, 0.999)[0].ok_images == 1  # and keeps something to train on
    with pytest.raises(ValueError):
        split_store(info, 1.0)


def test_validation_collate_maps_blob_ids_to_classes():
    images = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)
    label = torch.tensor([[0, 1], [2, 5]])
    _, classes = collate_class_maps([(images, label), (images, label)])
    assert classes.tolist() == [[[0, 1], [2, 2]]] * 2


def test_lfw_blobs_reproduce_the_class_map_and_flip_deterministically(tmp_path):
    root = make_synthetic_lfw(tmp_path / "lfw", {"train": 4}, size=64)
    plain = LFWPartsTrain(root, "train", size=32, hflip=False)
    flipping = LFWPartsTrain(root, "train", size=32, hflip=True, seed=5, cache=True)
    outcomes = set()
    for epoch in range(4):
        flipping.set_epoch(epoch)
        batch = collate_blobs([flipping[i] for i in range(4)])
        assert torch.equal(collate_blobs([flipping[i] for i in range(4)])[1], batch[1])  # reproducible
        images, blob_ids, table = batch
        assert table.shape[0] == 4 and (table[:, 0] >= 0).all()
        classes = class_map_from_blobs(blob_ids, table)
        for i in range(4):
            image, label, _ = plain.base[i]
            flipped = not torch.equal(images[i], image)
            if flipped:
                image, label = image.flip(-1), label.flip(-1)
            outcomes.add(flipped)
            assert torch.equal(images[i], image) and torch.equal(classes[i], label)
    assert outcomes == {True, False}


def test_spawned_worker_opens_the_store_itself(store_path, stored):
    # "spawn" pickles the dataset into a fresh interpreter: nothing but the path may travel.
    dataset = StoreDataset(store_path, buffer_size=16)
    loader = DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    rows = sorted(_identify(image, label, stored)[0] for image, label in loader)
    assert rows == stored[2].tolist()


def test_several_stores_are_read_as_one(tmp_path):
    first = make_synthetic_store(tmp_path / "a.zarr", count=100, size=16, bad_rows=[], seed=1, mark_ids=True)
    second = make_synthetic_store(tmp_path / "b.zarr", count=70, size=16, bad_rows=[5], seed=2, mark_ids=True)
    info = StoreInfo.read(first.path, second.path)
    assert info.paths == (str(first.path), str(second.path)) and info.first_chunks == (0, 2)
    assert info.locate(3) == (1, slice(64, 70))
    dataset = StoreDataset(info, buffer_size=16, hflip=False)
    assert len(dataset) == 169
    samples = list(dataset)
    assert len(samples) == 169
    ids = Counter(int(image[0, 0, 0]) + 256 * int(image[1, 0, 0]) for image, _ in samples)
    expected = Counter(range(100)) + Counter(i for i in range(70) if i != 5)
    assert ids == expected  # every ok row of both stores exactly once
    with pytest.raises(ValueError, match="crop sizes"):
        StoreInfo.read(first.path, make_synthetic_store(tmp_path / "c.zarr", count=8, size=32).path)
