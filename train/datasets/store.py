"""The pseudo-label store as training data: a streaming reader and a train / validation split.

The store can hold millions of crops, so :class:`StoreDataset` never indexes
single rows: it reads whole ``CHUNK_IMAGES``-row chunks (one decompression per
chunk), drops the rows whose status is not OK, and mixes samples through a
bounded shuffle buffer. The unit that is shuffled and shared out is the chunk:

    epoch chunk order  = permutation(seed, epoch) of the split's chunks
    rank r             = order[r::world_size]         (DDP processes)
    worker w of rank r = order[r::world_size][w::num_workers]

so every chunk is read by exactly one worker of one rank per epoch, whatever the
number of processes, and memory is ``buffer_size`` samples plus one chunk,
independent of the store size. Only the path and a small per-chunk table live in
the object; the Zarr handle is opened on first use inside each worker, so the
dataset pickles cleanly for ``spawn`` workers.
"""

from __future__ import annotations

import bisect

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from labelgen.status import Status
from labelgen.store import CHUNK_IMAGES, LabelStore
from train.distributed import distributed_rank_world
from train.losses import class_map_from_label_map
from train.models import image_to_tensor

DEFAULT_BUFFER = 1024


def chunk_ok_counts(store: LabelStore, chunk_rows: int = CHUNK_IMAGES) -> np.ndarray:
    """Number of OK rows in each ``chunk_rows``-row chunk of the store.

    Reads the status column one chunk-sized block at a time so that even this
    bookkeeping pass stays bounded in memory.
    """
    num_chunks = math.ceil(store.count / chunk_rows)
    counts = np.zeros(num_chunks, dtype=np.int64)
    block = chunk_rows * 1024  # status is 1 byte per row: 64 Ki rows per read
    for start in range(0, store.count, block):
        status = store.read("status", slice(start, min(start + block, store.count)))
        ok = (status == Status.OK).astype(np.int64)
        chunk_index = (start + np.arange(len(ok))) // chunk_rows
        counts += np.bincount(chunk_index, weights=ok, minlength=num_chunks).astype(np.int64)
    return counts


def _split_order(num_chunks: int, seed: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(num_chunks)


@dataclass(frozen=True)
class ChunkSelection:
    """The rows one side of a train / validation split reads: whole chunks, and part of at most one.

    Attributes:
        chunks: Global chunk numbers, sorted.
        ok_per_chunk: OK rows this side owns, for every chunk of the stores (0 outside ``chunks``).
        row_ranges: Chunk -> ``(start, stop)`` row offsets inside it, for a chunk this side owns only part of.
    """

    chunks: np.ndarray
    ok_per_chunk: np.ndarray
    row_ranges: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def ok_images(self) -> int:
        return int(self.ok_per_chunk.sum())


def split_store(info: "StoreInfo", val_fraction: float, seed: int = 0) -> tuple[ChunkSelection, ChunkSelection]:
    """Deterministic train / validation split holding out ``val_fraction`` of the OK images, to the image.

    Chunks go to validation in a seeded order until the next one would overshoot;
    that chunk is cut at the row where the held-out count is reached, its first
    rows validating and the rest training. Training still reads whole chunks
    (one of them once partly). With a positive fraction at least one image is
    held out and at least one kept for training.

    Args:
        info: The stores' :class:`StoreInfo`.
        val_fraction: Fraction of the OK images held out, in [0, 1).
        seed: Seed of the chunk order (independent of the training seed on purpose:
            changing the training seed must not leak validation images into training).

    Returns:
        ``(train, val)`` selections for :class:`StoreDataset`.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ok = info.ok_per_chunk.astype(np.int64)
    target = int(round(val_fraction * ok.sum()))
    if val_fraction > 0 and ok.sum() > 1:
        target = min(max(target, 1), int(ok.sum()) - 1)
    order = _split_order(len(ok), seed)
    before = np.concatenate([[0], np.cumsum(ok[order])])  # OK rows held out before each chunk of the order
    whole = int(np.searchsorted(before, target, side="right")) - 1 if target else 0  # chunks that fit entirely
    val_ok, train_ok = np.zeros_like(ok), ok.copy()
    val_ok[order[:whole]], train_ok[order[:whole]] = ok[order[:whole]], 0
    val_ranges, train_ranges = {}, {}
    missing = target - int(before[whole])
    if missing > 0:  # cut the next chunk after its `missing`-th OK row
        cut = int(order[whole])
        index, rows = info.locate(cut)
        status = info.open(index).read("status", rows)
        stop = int(np.flatnonzero(status == Status.OK)[missing - 1]) + 1
        val_ranges[cut], train_ranges[cut] = (0, stop), (stop, len(status))
        val_ok[cut], train_ok[cut] = missing, ok[cut] - missing
    val_chunks = np.sort(np.concatenate([order[:whole], list(val_ranges)]).astype(np.int64))
    train_chunks = np.sort(np.setdiff1d(np.arange(len(ok)), order[:whole]))
    return ChunkSelection(train_chunks, train_ok, train_ranges), ChunkSelection(val_chunks, val_ok, val_ranges)


@dataclass(frozen=True)
class StoreInfo:
    """What the training side needs to know about one or more stores, read once.

    The chunks of several stores are numbered one after the other, so a
    dataset over several stores (pseudo-labels plus exact synthetic labels,
    say) shuffles and shards them as if they were one.
    """

    paths: tuple[str, ...]
    counts: tuple[int, ...]
    crop_size: int
    ok_per_chunk: np.ndarray
    first_chunks: tuple[int, ...]
    skipped: tuple[frozenset[int], ...] = ()  # per store, its damaged shards: never read (see open)

    @classmethod
    def read(cls, *paths: str | Path) -> "StoreInfo":
        """Opens the stores (raises ``StoreError`` for a bad path) and tallies OK rows per chunk.

        Damaged shards (``--allow-incomplete`` lets training use such a store) are
        skipped: their rows are not OK, and no reader of :meth:`open` reads them.
        """
        if not paths:
            raise ValueError("no label store given")
        stores = [LabelStore(path, mode="r") for path in paths]
        for store in stores:
            store.skip_damaged()
        sizes = {store.crop_size for store in stores}
        if len(sizes) > 1:
            raise ValueError(f"the label stores have different crop sizes {sorted(sizes)}; they cannot be mixed")
        tallies = [chunk_ok_counts(store) for store in stores]
        first = np.concatenate([[0], np.cumsum([len(t) for t in tallies])[:-1]]).astype(int)
        return cls(tuple(str(p) for p in paths), tuple(store.count for store in stores), sizes.pop(),
                   np.concatenate(tallies), tuple(int(f) for f in first), tuple(store.skipped for store in stores))

    def open(self, index: int) -> LabelStore:
        """Store ``index``, opened to read, skipping its damaged shards."""
        return LabelStore(self.paths[index], mode="r").skip_shards(self.skipped[index] if self.skipped else ())

    @property
    def path(self) -> str:
        """The first store's path (the only one for a single store)."""
        return self.paths[0]

    def locate(self, chunk: int) -> tuple[int, slice]:
        """``(store index, rows)`` of a global chunk number."""
        index = bisect.bisect_right(self.first_chunks, chunk) - 1
        local = chunk - self.first_chunks[index]
        return index, slice(local * CHUNK_IMAGES, min((local + 1) * CHUNK_IMAGES, self.counts[index]))


class StoreDataset(IterableDataset):
    """Streams ``(image, label)`` samples of OK rows from a label store.

    Items: ``image`` uint8 tensor 3 x S x S (RGB, 0..255; see
    :func:`train.models.normalize_image`) and ``label`` int64 S x S store label map
    (0 background, 1 face, >= 2 occlusion blob ids).

    Call :meth:`set_epoch` before each epoch: the chunk order, the buffer shuffle
    and the flips are functions of ``(seed, epoch, rank, worker)`` only, so an
    epoch is reproducible regardless of what ran before it.

    Args:
        info: The :class:`StoreInfo` of one or more stores (or a path, read here).
        chunks: Chunk indices this dataset covers, or a :class:`ChunkSelection`
            (one side of :func:`split_store`); ``None`` for all.
        shuffle: Permute the chunk order per epoch and pass samples through the
            shuffle buffer; ``False`` streams rows in store order (validation).
        buffer_size: Samples held by the shuffle buffer (bounds memory).
        hflip: Mirror image and label together with probability 0.5.
        seed: Base seed.
        rank, world_size: DDP position; ``None`` asks ``torch.distributed``.
    """

    def __init__(
        self,
        info: StoreInfo | str | Path,
        chunks: Sequence[int] | ChunkSelection | None = None,
        shuffle: bool = True,
        buffer_size: int = DEFAULT_BUFFER,
        hflip: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        super().__init__()
        self.info = info if isinstance(info, StoreInfo) else StoreInfo.read(info)
        if not isinstance(chunks, ChunkSelection):
            all_chunks = np.arange(len(self.info.ok_per_chunk))
            chunks = ChunkSelection(all_chunks if chunks is None else np.asarray(chunks, dtype=np.int64),
                                    self.info.ok_per_chunk)
        self.chunks = chunks.chunks
        self.ok_per_chunk = chunks.ok_per_chunk  # what this dataset owns of each chunk
        self.row_ranges = dict(chunks.row_ranges)
        self.shuffle = shuffle
        self.buffer_size = max(1, int(buffer_size))
        self.hflip = hflip
        self.seed = seed
        default_rank, default_world = distributed_rank_world()
        self.rank = default_rank if rank is None else rank
        self.world_size = default_world if world_size is None else world_size
        self.epoch = 0
        self._stores: dict[int, LabelStore] = {}

    def __getstate__(self) -> dict:
        # The Zarr handles stay behind: each worker opens its own on first use.
        state = self.__dict__.copy()
        state["_stores"] = {}
        return state

    def _store(self, index: int) -> LabelStore:
        if index not in self._stores:
            self._stores[index] = self.info.open(index)
        return self._stores[index]

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose order the next iteration produces."""
        self.epoch = int(epoch)

    def epoch_chunks(self, epoch: int | None = None) -> np.ndarray:
        """All chunks of the dataset in the order of ``epoch`` (before sharding)."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return self.chunks.copy()
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 0xC0]))
        return self.chunks[rng.permutation(len(self.chunks))]

    def shard_chunks(self, rank: int, worker: int, num_workers: int, epoch: int | None = None) -> np.ndarray:
        """Chunks one worker of one rank reads in ``epoch``; shards are disjoint."""
        return self.epoch_chunks(epoch)[rank :: self.world_size][worker :: max(1, num_workers)]

    def num_samples(self, rank: int | None = None, epoch: int | None = None) -> int:
        """OK samples one rank yields in an epoch (all its workers together)."""
        rank = self.rank if rank is None else rank
        return int(self.ok_per_chunk[self.shard_chunks(rank, 0, 1, epoch)].sum())

    def num_full_batches(self, batch_size: int, num_workers: int, epoch: int | None = None) -> int:
        """Full batches the *slowest* rank gets from a DataLoader with ``drop_last=True``.

        An iterable DataLoader batches inside each worker, so every worker drops
        its own remainder. DDP ranks must all run the same number of steps (or the
        all-reduce hangs), and every rank can compute every rank's count from the
        chunk table, so the minimum needs no communication.
        """
        workers = max(1, num_workers)
        counts = []
        for rank in range(self.world_size):
            full = 0
            for worker in range(workers):
                shard = self.shard_chunks(rank, worker, workers, epoch)
                full += int(self.ok_per_chunk[shard].sum()) // batch_size
            counts.append(full)
        return min(counts) if counts else 0

    def __len__(self) -> int:
        return self.num_samples()

    def _read_chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        index, rows = self.info.locate(chunk)
        if chunk in self.row_ranges:  # the chunk the train / validation split cuts: only this side's rows
            start, stop = self.row_ranges[chunk]
            rows = slice(rows.start + start, rows.start + stop)
        store = self._store(index)
        ok = store.read("status", rows) == Status.OK
        if not ok.any():
            return np.zeros((0,), np.uint8), np.zeros((0,), np.uint8)
        # Whole-chunk reads: one decompression per chunk; non-OK rows are dropped after.
        return store.read("image", rows)[ok], store.read("label", rows)[ok]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker = get_worker_info()
        worker_id, num_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        chunks = self.shard_chunks(self.rank, worker_id, num_workers)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, self.rank, worker_id, 0xB0]))
        buffer: list[tuple[np.ndarray, np.ndarray]] = []
        for chunk in chunks:
            if self.ok_per_chunk[chunk] == 0:
                continue  # skip the read entirely
            images, labels = self._read_chunk(int(chunk))
            for image, label in zip(images, labels):
                if not self.shuffle:
                    yield self._sample(image, label, rng)
                    continue
                if len(buffer) < self.buffer_size:
                    buffer.append((image, label))
                    continue
                # Reservoir-style swap: emit a random buffered sample, keep the new one.
                slot = int(rng.integers(len(buffer)))
                out, buffer[slot] = buffer[slot], (image, label)
                yield self._sample(*out, rng)
        for slot in rng.permutation(len(buffer)):
            yield self._sample(*buffer[slot], rng)

    def _sample(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        if self.hflip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        image_t = image_to_tensor(image)
        label_t = torch.from_numpy(np.ascontiguousarray(label)).long()
        return image_t, label_t


def collate_class_maps(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation collate for store samples: ``(images, class map)`` with class = min(id, 2)."""
    images = torch.stack([item[0] for item in batch])
    labels = torch.stack([item[1] for item in batch])
    return images, class_map_from_label_map(labels)
