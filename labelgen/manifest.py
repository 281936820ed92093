"""The manifest of a new store, streamed: the source's entries in manifest order without holding them in memory.

A store's rows are the source's entries permuted by a seeded bijection of
``[0, N)`` (:func:`manifest_rows`, a Feistel network, so no ``N``-long array is
ever made): the entry the scan yields ``j``-th is row ``manifest_rows(j)``.
:class:`SpooledManifest` takes the scan in three passes through a temporary
folder, each holding one block in memory:

1. the scan is written to a spool file in source order, in batches (its length ``N`` is then known);
2. the spool is read back and every entry appended to the bucket file of its
   row's block (``block_rows`` consecutive rows of the store);
3. :meth:`SpooledManifest.blocks` reads one bucket at a time, sorts it by row and
   hands it to the store's writer.

The client's memory is then a block's entries, whatever the corpus size.
Stores made before this rule recorded
``numpy default_rng(seed).permutation`` (:data:`ORDER_BEFORE`); they are
resumed from what they hold and never reordered.

Example:
    >>> rows = manifest_rows(np.arange(10), count=10, seed=0)
    >>> sorted(rows.tolist()) == list(range(10)), rows.tolist() == manifest_rows(np.arange(10), 10, 0).tolist()
    (True, True)
"""
from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from labelgen.store import ManifestEntry, glob_escape, pid_alive

ORDER_RULE = "feistel-6 over [0, N), seed {seed}"  # the attribute manifest_order of a store made by this rule
ORDER_BEFORE = "numpy default_rng({seed}).permutation"  # what stores made before it recorded
ROUNDS = 6
SPOOL_BATCH = 65_536  # entries per pickled batch of the source-order spool
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed, well-mixing bijection of uint64 (wrapping arithmetic)."""
    values = values.astype(np.uint64, copy=True)
    values ^= values >> np.uint64(30)
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    values ^= values >> np.uint64(31)
    return values


def _round_keys(seed: int) -> np.ndarray:
    """One key per round from the seed: plain arithmetic, so the order never depends on a library's version."""
    base = np.uint64((seed * ROUNDS) & 0xFFFFFFFFFFFFFFFF)
    return _mix(base + np.arange(1, ROUNDS + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def _feistel(values: np.ndarray, half_bits: int, keys: np.ndarray) -> np.ndarray:
    """A balanced Feistel network: a bijection of ``[0, 4^half_bits)``."""
    mask = np.uint64((1 << half_bits) - 1)
    left, right = values >> np.uint64(half_bits), values & mask
    for key in keys:
        left, right = right, left ^ (_mix(right ^ key) & mask)
    return (left << np.uint64(half_bits)) | right


def manifest_rows(indices: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The store rows of the source entries ``indices`` (their positions in the scan) of a corpus of ``count``.

    A seeded bijection of ``[0, count)``: the Feistel network on the smallest
    ``[0, 4^h)`` that holds ``count`` (under ``4 count``), applied again to a
    value that lands outside ``[0, count)`` until it lands inside (cycle walking:
    still a bijection, on average under 4 applications). Computed for any block
    of indices alone, in O(block) memory.
    """
    indices = np.asarray(indices, np.uint64)
    if len(indices) and int(indices.max()) >= count:
        raise ValueError(f"index {int(indices.max())} outside a corpus of {count}")
    half_bits = max(1, (max(count - 1, 1).bit_length() + 1) // 2)
    keys = _round_keys(seed)
    rows = _feistel(indices, half_bits, keys)
    outside = rows >= np.uint64(count)
    while outside.any():
        rows[outside] = _feistel(rows[outside], half_bits, keys)
        outside = rows >= np.uint64(count)
    return rows.astype(np.int64)


def manifest_order(count: int, seed: int) -> np.ndarray:
    """``order[row]``: the position in the scan of the entry at each row (for tests and small corpora: O(count))."""
    order = np.empty(count, np.int64)
    order[manifest_rows(np.arange(count), count, seed)] = np.arange(count)
    return order


class SpooledManifest:
    """The entries of a scan, spooled to a temporary folder, handed out in manifest order one block at a time.

    Use as a context manager (the folder is deleted on leaving it). The folder
    is in ``TMPDIR`` and named after this process, so one left by a killed
    process is deleted by the next one on this host.

    Args:
        entries: the scan, in source order.
        seed: the seed of the order (see :func:`manifest_rows`).
    """

    PREFIX = "labelgen-manifest-"

    def __init__(self, entries: Iterable[ManifestEntry], seed: int):
        self.seed = seed
        _remove_dead_spools()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{socket.gethostname()}-{os.getpid()}-"))
        try:
            self.count = self._spool(entries)
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return self.count

    def __enter__(self) -> "SpooledManifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _spool(self, entries: Iterable[ManifestEntry]) -> int:
        """Pass 1: the scan to the spool file in source order; the number of entries."""
        count, batch = 0, []
        with open(self.folder / "scan.pickle", "wb") as spool:
            for entry in entries:
                batch.append((entry.key, entry.identity, entry.locator, tuple(entry.hint)))
                if len(batch) == SPOOL_BATCH:
                    pickle.dump(batch, spool, pickle.HIGHEST_PROTOCOL)
                    count, batch = count + len(batch), []
            if batch:
                pickle.dump(batch, spool, pickle.HIGHEST_PROTOCOL)
        return count + len(batch)

    def blocks(self, block_rows: int) -> Iterator[tuple[int, list[ManifestEntry]]]:
        """``(first row, entries of rows first .. first + block_rows)``, for each block of rows in order."""
        buckets = self.folder / f"buckets-{block_rows}"
        if not buckets.exists():
            self._distribute(buckets, block_rows)
        for bucket, first in enumerate(range(0, self.count, block_rows)):
            rows, entries = [np.zeros(0, np.int64)], []
            path = buckets / f"{bucket}.pickle"
            if path.exists():
                for part_rows, part_entries in _pickles(path):
                    rows.append(part_rows)
                    entries += part_entries
            rows = np.concatenate(rows)
            order = np.argsort(rows, kind="stable")
            expected = np.arange(first, min(first + block_rows, self.count))
            if not np.array_equal(rows[order], expected):  # a bijection fills every row once: anything else is a bug
                raise RuntimeError(f"manifest block at row {first}: rows are not {first}..{expected[-1]}")
            yield first, [ManifestEntry(*entries[i]) for i in order]

    def _distribute(self, buckets: Path, block_rows: int) -> None:
        """Pass 2: every spooled entry to the bucket file of its row's block."""
        building = buckets.with_name(buckets.name + ".part")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        first = 0
        for batch in _pickles(self.folder / "scan.pickle"):
            rows = manifest_rows(np.arange(first, first + len(batch)), self.count, self.seed)
            first += len(batch)
            bucket_of = rows // block_rows
            order = np.argsort(bucket_of, kind="stable")
            bounds = np.flatnonzero(np.diff(bucket_of[order])) + 1
            for group in np.split(order, bounds):
                with open(building / f"{int(bucket_of[group[0]])}.pickle", "ab") as stream:
                    pickle.dump((rows[group], [batch[i] for i in group]), stream, pickle.HIGHEST_PROTOCOL)
        building.rename(buckets)


def _pickles(path: Path) -> Iterator:
    """The objects pickled one after the other into ``path``."""
    with open(path, "rb") as stream:
        while True:
            try:
                yield pickle.load(stream)
            except EOFError:
                return


def _remove_dead_spools() -> None:
    """Delete spool folders of this host's processes that no longer run (killed during a scan)."""
    prefix = f"{SpooledManifest.PREFIX}{socket.gethostname()}-"
    for leftover in Path(tempfile.gettempdir()).glob(glob_escape(prefix) + "*"):
        pid = leftover.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
