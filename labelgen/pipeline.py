"""Dask orchestration: a corpus in, a sharded Zarr label store out, resumable.

1. :func:`prepare_store` scans the source once, fixes the manifest (a seeded
   shuffle) and creates the store; on an existing store it checks that the job
   is the same one and otherwise refuses.
2. :func:`run_job` sends one :func:`label_shard` task per shard without a
   completion record to a Dask cluster (a local process cluster, or an
   existing scheduler), shows progress, and consolidates at the end.
3. :func:`label_shard` runs inside a worker: the models load once per worker
   thread and stay; the task reads its rows' bytes, labels them, writes whole
   shards and then its completion record.

The stages know nothing about Dask; this module knows nothing about faces.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelgen.chain import ChainConfig, LabelChain, LabelResult
from labelgen.models import centerface_path, face_landmarker_path, file_sha256
from labelgen.sources import Source, open_source
from labelgen.status import Status
from labelgen.store import (DEFAULT_SHARD_SIZE, LabelStore, ManifestEntry, StoreError, array_specs, create_store,
                            shuffled_order)

MAX_ERRORS_PER_SHARD = 1000  # messages kept in a shard record; counts are always complete


@dataclass(frozen=True)
class Job:
    """What decides a store's content; a resumed run must match it exactly."""

    source: str
    root: str | None
    source_options: dict = field(default_factory=dict)
    config: ChainConfig = field(default_factory=ChainConfig)
    shard_size: int = DEFAULT_SHARD_SIZE
    seed: int = 0

    def open_source(self) -> Source:
        return open_source(self.source, self.root, **self.source_options)

    def fingerprint(self) -> dict:
        return {"source": self.source, "root": self.root, "source_options": self.source_options,
                "config": self.config.to_dict(), "shard_size": self.shard_size, "seed": self.seed}

    @classmethod
    def from_fingerprint(cls, values: dict) -> "Job":
        return cls(values["source"], values["root"], dict(values["source_options"]),
                   ChainConfig.from_dict(values["config"]), values["shard_size"], values["seed"])


def _normalise(values):
    """JSON round trip, so tuples and lists compare equal."""
    return json.loads(json.dumps(values))


def model_files(config: ChainConfig) -> dict:
    files = {"centerface.onnx": centerface_path(), "face_landmarker.task": face_landmarker_path()}
    if config.teacher not in ("classical", "hull"):
        files["teacher"] = Path(config.teacher)
    return {name: {"path": str(path), "sha256": file_sha256(str(path))} for name, path in files.items()}


def prepare_store(out: str | Path, job: Job, overwrite: bool = False, progress: bool = True) -> LabelStore:
    """Create the store for ``job`` at ``out``, or reopen it to resume.

    Raises:
        StoreError: ``out`` holds a store of another job (and not ``overwrite``),
            or something that is not a label store.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if overwrite:
            import shutil

            shutil.rmtree(out)
        else:
            store = LabelStore(out)
            stored = _normalise(store.attrs.get("job", {}))
            wanted = _normalise(job.fingerprint())
            if stored != wanted:
                changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
                raise StoreError(f"{out} was made by a different job (differs in: {', '.join(changed)}); "
                                 f"use another --out, or --overwrite to start it again")
            return store
    source = job.open_source()
    entries = _scan(source, progress)
    order = shuffled_order(len(entries), job.seed)
    manifest = [entries[i] for i in order]
    return create_store(out, manifest, crop_size=job.config.crop_size, shard_size=job.shard_size, attributes={
        "job": _normalise(job.fingerprint()), "source": source.describe(), "config": job.config.to_dict(),
        "models": model_files(job.config), "manifest_order": f"numpy default_rng({job.seed}).permutation",
    })


def _scan(source: Source, progress: bool) -> list[ManifestEntry]:
    from tqdm import tqdm

    entries = [ManifestEntry(e.key, e.identity, e.locator, tuple(e.hint))
               for e in tqdm(source.scan(), desc=f"scanning {source.name}", unit=" files", disable=not progress)]
    if not entries:
        raise StoreError(f"source {source.name} at {source.root} has no images")
    return entries


# -- inside a worker -------------------------------------------------------------------------------
_states: dict[int, tuple[str, LabelChain, Source]] = {}  # per thread: job fingerprint, chain, source
_states_lock = threading.Lock()


def _worker_state(job: Job) -> tuple[LabelChain, Source]:
    """The chain and source of this worker thread, built on first use and then reused."""
    fingerprint = json.dumps(job.fingerprint(), sort_keys=True)
    thread = threading.get_ident()
    state = _states.get(thread)
    if state is None or state[0] != fingerprint:
        import cv2

        cv2.setNumThreads(0)  # parallelism comes from Dask workers, not from OpenCV threads
        if state is not None:
            state[1].close()
        state = (fingerprint, LabelChain(job.config), job.open_source())
        with _states_lock:
            _states[thread] = state
    return state[1], state[2]


def close_worker_state() -> None:
    """Close every chain this process holds (FaceLandmarker must be closed before exit)."""
    with _states_lock:
        for _, chain, _ in _states.values():
            chain.close()
        _states.clear()


def close_chains_plugin():
    """A Dask worker plugin that closes the worker's chains when the worker shuts down."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class CloseChainsOnTeardown(WorkerPlugin):
        name = "labelgen-close-chains"

        def teardown(self, worker) -> None:
            close_worker_state()

    return CloseChainsOnTeardown()


def label_shard(store_path: str, index: int) -> dict:
    """Label the rows of shard ``index`` and write them and the shard's completion record.

    Returns the completion record: counts per status, error messages per
    failed key, seconds spent.
    """
    start = time.perf_counter()
    store = LabelStore(store_path)
    job = Job.from_fingerprint(store.attrs["job"])
    chain, source = _worker_state(job)
    rows = store.shard_rows(index)
    results = []
    for entry in store.manifest(rows):
        try:
            data = source.read(entry.locator)
        except Exception as error:  # missing file, I/O error, bad span: that image only
            results.append(LabelResult.unreadable(entry.key, error))
            continue
        results.append(chain.label_bytes(data, entry.key, entry.hint))
    store.write_rows(rows, results_to_columns(results, store.crop_size))
    counts = Counter(result.status.label for result in results)
    errors = {r.key: f"{r.status.label}: {r.message}" for r in results if not r.ok}
    record = {"shard": index, "rows": [rows.start, rows.stop], "counts": dict(counts),
              "errors": dict(list(errors.items())[:MAX_ERRORS_PER_SHARD]), "seconds": round(time.perf_counter() - start, 3)}
    store.mark_shard_done(index, record)
    return record


def results_to_columns(results: list[LabelResult], crop_size: int) -> dict[str, np.ndarray]:
    """Stack per-image results into the store's per-shard columns (fill values where missing)."""
    specs = array_specs(crop_size)
    columns = {name: np.full((len(results),) + spec.tail, spec.fill, spec.dtype)
               for name, spec in specs.items() if name not in ("identity", "box_hint")}
    for row, result in enumerate(results):
        columns["status"][row] = int(result.status)
        columns["faces_seen"][row] = result.faces_seen
        if result.box is not None:
            columns["bbox"][row] = result.box
        if result.rotation is not None:
            columns["pose"][row] = np.concatenate([result.rodrigues, result.translation])
            columns["camera"][row] = [result.camera[0, 0], result.camera[0, 2], result.camera[1, 2]]
        if result.contour is not None:
            columns["contour"][row] = result.contour
        if result.ok:
            columns["image"][row] = result.image
            columns["label"][row] = result.label
            columns["blobs"][row] = result.blobs
            columns["crop_matrix"][row] = result.crop.matrix
    return columns


# -- the driver ------------------------------------------------------------------------------------
def run_job(store: LabelStore, *, workers: int = 2, threads_per_worker: int = 1, scheduler: str | None = None,
            serial: bool = False, progress: bool = True, part: tuple[int, int] | None = None) -> dict:
    """Label every shard without a completion record; return the status counts.

    Args:
        store: a store made by :func:`prepare_store`.
        workers, threads_per_worker: size of the local Dask process cluster.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``)
            to use instead of a local cluster.
        serial: label in this process, without Dask (for debugging and tests).
        progress: show a live progress bar.
        part: ``(k, n)``: only shards ``i`` with ``i % n == k``, for ``n``
            independent batch jobs sharing one store. A part does not
            consolidate (parts may finish together); a final run without
            ``part`` finds nothing to do and consolidates.
    """
    from tqdm import tqdm

    pending = store.pending_shards()
    if part is not None:
        pending = [index for index in pending if index % part[1] == part[0]]
    images = sum(len(range(*store.shard_rows(i).indices(store.count))) for i in pending)
    bar = tqdm(total=images, unit="img", desc="labelling", disable=not progress, smoothing=0.05)
    failures = Counter()

    def account(record: dict) -> None:
        bar.update(record["rows"][1] - record["rows"][0])
        failures.update({k: v for k, v in record["counts"].items() if k != Status.OK.label})
        bar.set_postfix(failed=sum(failures.values()), refresh=False)

    if serial:
        try:
            for index in pending:
                account(label_shard(str(store.path), index))
        finally:
            close_worker_state()
    elif pending:
        from distributed import Client, LocalCluster, as_completed

        cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                                                      processes=True, dashboard_address=None)
        try:
            with Client(scheduler or cluster) as client:
                client.register_plugin(close_chains_plugin())
                futures = client.map(label_shard, [str(store.path)] * len(pending), pending, pure=False)
                for future in as_completed(futures):
                    account(future.result())
        finally:
            if cluster is not None:
                cluster.close()
    bar.close()
    summary = store.summary()
    if part is None:
        store.consolidate(summary)
    return summary
