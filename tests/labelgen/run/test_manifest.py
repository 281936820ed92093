"""The manifest of a new store is streamed through disk: its rows are what the order rule says, block by block.

The order rule (``labelgen.manifest.manifest_rows``) is a seeded bijection of ``[0, N)``; the store's row
``manifest_rows(j)`` holds the ``j``-th entry of the scan, however the scan is cut into spool batches and the
store into written blocks. Stores made before the rule keep the order they recorded.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import labelgen.manifest as manifest_module
import labelgen.store as store_module
from labelgen.chain import ChainConfig
from labelgen.manifest import ORDER_BEFORE, SpooledManifest, manifest_order, manifest_rows
from labelgen.run import Job, prepare_store
from labelgen.sources import open_source
from labelgen.store import LabelStore, ManifestEntry

IDENTITIES = 7


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 16, 17, 1000, 4096, 4097])
def test_the_order_is_a_bijection_of_the_rows(count):
    for seed in (0, 1, 12345):
        rows = manifest_rows(np.arange(count), count, seed)
        assert sorted(rows.tolist()) == list(range(count))
        # Any block alone gives the same rows as the whole: no O(N) state.
        assert manifest_rows(np.arange(count // 2, count), count, seed).tolist() == rows[count // 2:].tolist()


def test_the_order_is_pinned_and_depends_on_the_seed():
    # Pinned: the rule is recorded in every store made with it (manifest_order); it must never drift.
    assert manifest_order(10, 0).tolist() == PINNED_10_SEED_0
    assert manifest_order(1000, 0).tolist() != manifest_order(1000, 1).tolist()


PINNED_10_SEED_0 = [7, 2, 9, 5, 6, 1, 4, 0, 3, 8]


def test_the_order_mixes_what_the_scan_keeps_together():
    """Consecutive entries of the scan (one identity's folder) land all over the store, like a random shuffle's."""
    count, shard, folder = 100_000, 256, 100

    def crowding(rows: np.ndarray) -> float:
        """Mean over folders of 100 consecutive entries of the most that share one shard of 256 rows."""
        return float(np.mean([np.bincount(rows[first:first + folder] // shard).max()
                              for first in range(0, count, folder)]))

    shuffled = crowding(np.random.default_rng(0).permutation(count))  # about 2.6
    # Within 10% of a random permutation's; the scan order itself crowds about 90 of 100 into one shard.
    assert abs(crowding(manifest_rows(np.arange(count), count, 0)) - shuffled) < 0.1 * shuffled
    assert crowding(np.arange(count)) > 10 * shuffled


def _entries(count: int) -> list[ManifestEntry]:
    return [ManifestEntry(f"id{index % IDENTITIES}/{index:05d}.jpg", index % IDENTITIES,
                          f"id{index % IDENTITIES}/{index:05d}.jpg", (1.0, 2.0, 3.0, float(index)) if index % 3 else ())
            for index in range(count)]


@pytest.mark.parametrize("batch,block", [(5, 7), (1000, 64), (3, 1000)])
def test_spooled_blocks_are_the_entries_in_manifest_order(monkeypatch, batch, block):
    monkeypatch.setattr(manifest_module, "SPOOL_BATCH", batch)
    entries = _entries(301)
    with SpooledManifest(iter(entries), seed=3) as manifest:
        assert len(manifest) == 301
        blocks = list(manifest.blocks(block))
        folder = manifest.folder
    assert [first for first, _ in blocks] == list(range(0, 301, block))
    assert [entry for _, block_entries in blocks for entry in block_entries] == \
        [entries[index] for index in manifest_order(301, 3)]
    assert not folder.exists()


def _tsv_corpus(folder, count: int):
    folder.mkdir()
    (folder / "corpus.tsv").write_text("".join(f"m.{index % IDENTITIES}\t{index}\tQUJD\n" for index in range(count)))
    return folder / "corpus.tsv"


def _job(tsv, seed=0, shard_size=16) -> Job:
    return Job("msceleb-tsv", str(tsv), config=ChainConfig(teacher="hull"), shard_size=shard_size, seed=seed)


def test_a_streamed_store_holds_the_scan_in_the_rules_order(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "SPOOL_BATCH", 100)
    monkeypatch.setattr(store_module, "MANIFEST_BLOCK_ROWS", 40)  # blocks of 32 rows: two shards of 16
    tsv = _tsv_corpus(tmp_path / "corpus", 1000)
    scan = list(open_source("msceleb-tsv", tsv).scan())
    store = prepare_store(tmp_path / "labels.zarr", _job(tsv, seed=5), progress=False)
    order = manifest_order(len(scan), 5)
    assert store.count == 1000 and store.attrs["manifest_order"] == "feistel-6 over [0, N), seed 5"
    assert store.read("key", slice(None)).tolist() == [scan[index].key for index in order]
    assert store.read("locator", slice(None)).tolist() == [scan[index].locator for index in order]
    assert store.read("identity", slice(None)).tolist() == [scan[index].identity for index in order]
    assert store.manifest(slice(990, 1000)) == [ManifestEntry(scan[index].key, scan[index].identity,
                                                              scan[index].locator) for index in order[990:]]
    # Another run (a --part job's own creation attempt, another machine) makes the same manifest.
    again = prepare_store(tmp_path / "again.zarr", _job(tsv, seed=5), progress=False)
    assert again.read("key", slice(None)).tolist() == store.read("key", slice(None)).tolist()


def test_box_hints_follow_their_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "MANIFEST_BLOCK_ROWS", 16)
    entries = _entries(50)
    with SpooledManifest(iter(entries), seed=0) as manifest:
        store = store_module.create_store(tmp_path / "labels.zarr", manifest, crop_size=32, shard_size=8,
                                          attributes={})
    order = manifest_order(50, 0)
    hints = store.read("box_hint", slice(None))
    for row, index in enumerate(order):
        expected = entries[index].hint or (np.nan,) * 4
        np.testing.assert_array_equal(hints[row], np.array(expected, np.float32))


def test_a_store_made_before_the_rule_resumes_in_its_recorded_order(tmp_path):
    """Resuming never scans again: a store keeps the order it was made with (here the numpy shuffle of before)."""
    tsv = _tsv_corpus(tmp_path / "corpus", 100)
    scan = list(open_source("msceleb-tsv", tsv).scan())
    store = prepare_store(tmp_path / "labels.zarr", _job(tsv), progress=False)
    before = np.random.default_rng(0).permutation(len(scan))
    store.write_rows(slice(None), {"key": np.array([scan[index].key for index in before]),
                                   "locator": np.array([scan[index].locator for index in before]),
                                   "identity": np.array([scan[index].identity for index in before], np.int32)})
    store.group.attrs.update({"manifest_order": ORDER_BEFORE.format(seed=0)})
    resumed = prepare_store(tmp_path / "labels.zarr", _job(tsv), progress=False)
    assert resumed.read("key", slice(None)).tolist() == [scan[index].key for index in before]
    assert resumed.attrs["manifest_order"] == "numpy default_rng(0).permutation"


def test_a_spool_left_by_a_killed_process_is_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # tempfile reads TMPDIR again
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f"{SpooledManifest.PREFIX}{socket.gethostname()}-{dead.stdout.strip()}-abc"
    leftover.mkdir()
    (leftover / "scan.pickle").write_bytes(b"x")
    alive = tmp_path / f"{SpooledManifest.PREFIX}{socket.gethostname()}-{os.getpid()}-def"
    alive.mkdir()
    with SpooledManifest(iter(_entries(3)), seed=0) as manifest:
        assert manifest.folder.parent == tmp_path
    assert not leftover.exists() and alive.exists()
