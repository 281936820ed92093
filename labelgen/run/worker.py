"""One shard task, inside a worker: label a shard's images and write them, then its completion record.

(And one image task: an image of a shard whose worker died, labelled alone;
the driver writes such a shard, see :mod:`~labelgen.run.distributor`.)

The models load once per worker thread and stay (:func:`_worker_state`); a
task reads its rows' bytes, labels them in batches of :data:`PROGRESS_ROWS`
(reporting progress after each), writes whole shards and then its completion
record. A process that stops labelling (a signal, a worker shutting down)
sets a stop flag that every task checks before it writes anything, so a shard
is recorded whole or not at all.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

from labelgen.chain import LabelChain, LabelResult
from labelgen.run.chain_start import ChainCannotStart, explain
from labelgen.run.job import Job
from labelgen.sources import Source
from labelgen.status import Status
from labelgen.store import LabelStore, ManifestEntry, results_to_columns

MAX_ERRORS_PER_SHARD = 1000  # messages kept in a shard record; counts are always complete

_states: dict[int, tuple[str, LabelChain, Source]] = {}  # per thread: job fingerprint, chain, source
_states_lock = threading.Lock()
# Set when this process stops labelling (a signal, a worker shutting down). A shard task
# checks it after labelling and before writing anything, and it is set before any chain
# is closed: so a shard whose images met a closed chain never gets a completion record.
_stopping = threading.Event()
_task_count_lock = threading.Condition()
_running = 0  # shard tasks running in this process
PROGRESS_ROWS = 32  # images labelled between two progress reports (and two checks of the stop flag)
STOP_WAIT_S = 60.0  # how long a shutting-down worker waits for its tasks to notice the stop flag


class ShardInterrupted(Exception):
    """The process is stopping: this shard's work is dropped, without a completion record (it stays pending)."""


def _worker_state(job: Job) -> tuple[LabelChain, Source]:
    """The chain and source of this worker thread, built on first use and then reused.

    Raises:
        ChainCannotStart: they cannot be built here (a native library or model file missing, the
            source unreadable): every shard would fail the same way, so the run stops.
    """
    fingerprint = json.dumps(job.fingerprint(), sort_keys=True)
    thread = threading.get_ident()
    state = _states.get(thread)
    if state is None or state[0] != fingerprint:
        import cv2

        cv2.setNumThreads(0)  # parallelism comes from Dask workers, not from OpenCV threads
        if state is not None:
            state[1].close()
        try:
            state = (fingerprint, LabelChain(job.config), job.open_source())
        except Exception as error:  # whatever it is, no image of this job can be labelled by this thread
            raise ChainCannotStart(explain(error)) from error
        with _states_lock:
            _states[thread] = state
    return state[1], state[2]


def stop_shard_tasks() -> None:
    """Set this process's stop flag: from now on no shard task of this process records a shard."""
    _stopping.set()


def close_worker_state() -> None:
    """Stop this process's shard tasks, then close every chain it holds (FaceLandmarker must be closed before exit).

    The stop flag is set first and running tasks are given time to notice it
    (between two batches of :data:`PROGRESS_ROWS` images) and end, so models
    are closed only after their tasks ended; a task still running after
    :data:`STOP_WAIT_S` cannot record its shard anyway.
    """
    stop_shard_tasks()
    with _task_count_lock:
        _task_count_lock.wait_for(lambda: _running == 0, timeout=STOP_WAIT_S)
    with _states_lock:
        for _, chain, _ in _states.values():
            chain.close()
        _states.clear()


@contextmanager
def _shard_task():
    """Count a running shard task (see :func:`close_worker_state`)."""
    global _running
    with _task_count_lock:
        _running += 1
    try:
        yield
    finally:
        with _task_count_lock:
            _running -= 1
            _task_count_lock.notify_all()


def close_chains_plugin():
    """A Dask worker plugin that stops the worker's tasks and closes its chains when the worker shuts down."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class CloseChainsOnTeardown(WorkerPlugin):
        name = "labelgen-close-chains"

        def teardown(self, worker) -> None:
            close_worker_state()

    return CloseChainsOnTeardown()


def label_entries(chain: LabelChain, source: Source, entries: list[ManifestEntry]) -> list[LabelResult]:
    """Read and label manifest entries, in order; the teacher runs on batches of their crops.

    An entry whose bytes cannot be read gets ``read_error`` and costs nothing else.
    """
    results: list[LabelResult | None] = [None] * len(entries)
    readable = []
    for row, entry in enumerate(entries):
        try:
            readable.append((row, (entry.key, source.read(entry.locator), entry.hint)))
        except Exception as error:  # missing file, I/O error, bad span: that image only
            results[row] = LabelResult.unreadable(entry.key, error)
    labelled = chain.label_many([image for _, image in readable])
    for (row, _), result in zip(readable, labelled):
        results[row] = result
    return results


def label_shard(store_path: str, index: int, report: Callable[[int, Counter], None] | None = None) -> dict:
    """Label the rows of shard ``index`` and write them and the shard's completion record.

    The record is written only if every row was labelled by a live chain:
    once this process is stopping (see :func:`close_worker_state`) the task
    raises :class:`ShardInterrupted` instead, before writing anything.

    Args:
        store_path: the store folder (absolute: workers have their own working directory).
        index: the shard.
        report: called with ``(index, counts per status)`` after every
            :data:`PROGRESS_ROWS` images, for live progress.

    Returns:
        The completion record: counts per status, error messages per failed
        key, seconds spent.

    Raises:
        ShardInterrupted: the process is stopping; the shard stays pending.
        ChainCannotStart: the chain cannot be built in this process (see :func:`_worker_state`).
    """
    start = time.perf_counter()
    with _shard_task():
        store = LabelStore(store_path)
        job = Job.from_fingerprint(store.attrs["job"])
        chain, source = _worker_state(job)
        rows = store.shard_rows(index)
        entries = store.manifest(rows)
        results: list[LabelResult] = []
        for first in range(0, len(entries), PROGRESS_ROWS):
            if _stopping.is_set():
                raise ShardInterrupted(f"shard {index}: stopped after {len(results)} of {len(entries)} images")
            batch = label_entries(chain, source, entries[first:first + PROGRESS_ROWS])
            results += batch
            if report is not None:
                report(index, Counter(result.status.label for result in batch))
        if _stopping.is_set():  # the last batch may have met a closed chain
            raise ShardInterrupted(f"shard {index}: stopped after its last image, before writing it")
        return write_shard(store, index, rows, results, start)


def label_image(store_path: str, row: int) -> LabelResult:
    """Label row ``row`` of the store alone, and return its result (nothing is written).

    The task of an image of a shard whose worker died: in a task of its own, an
    image that kills its worker again takes nothing else with it.

    Raises:
        ShardInterrupted: the process is stopping; the image's shard stays pending.
        ChainCannotStart: the chain cannot be built in this process (see :func:`_worker_state`).
    """
    with _shard_task():
        store = LabelStore(store_path, mode="r")
        chain, source = _worker_state(Job.from_fingerprint(store.attrs["job"]))
        entries = store.manifest(slice(row, row + 1))
        if _stopping.is_set():
            raise ShardInterrupted(f"row {row}: stopped before labelling it")
        result = label_entries(chain, source, entries)[0]
        if _stopping.is_set():  # it may have met a closed chain
            raise ShardInterrupted(f"row {row}: stopped after labelling it, before returning it")
        return result


def worker_lost(entry: ManifestEntry) -> LabelResult:
    """The result of an image whose worker process died each time it was labelled, the last time alone."""
    return LabelResult(key=entry.key, status=Status.WORKER_LOST,
                       message="its worker process died each time it was labelled, the last time as this run's "
                               "only task (past the worker's memory limit, or a crash in a native library such as "
                               "an image decoder)")


def write_shard(store: LabelStore, index: int, rows: slice, results: list[LabelResult], start: float) -> dict:
    """Write a labelled shard's rows, then its completion record; return the record."""
    store.write_rows(rows, results_to_columns(results, store.crop_size))
    counts = Counter(result.status.label for result in results)
    errors = {r.key: f"{r.status.label}: {r.message}" for r in results if not r.ok}
    record = {"shard": index, "rows": [rows.start, rows.stop], "counts": dict(counts),
              "errors": dict(list(errors.items())[:MAX_ERRORS_PER_SHARD]), "seconds": round(time.perf_counter() - start, 3)}
    store.mark_shard_done(index, record)
    return record


def label_in_this_process(store_path: str, shards: list[int], report: Callable[[int, Counter], None],
                          done: Callable[[dict], None]) -> None:
    """Label ``shards`` one after the other in this process, without Dask (``--serial``).

    Args:
        store_path: the store folder.
        shards: the shards to label, in order.
        report: as for :func:`label_shard`.
        done: called with each shard's completion record.
    """
    _stopping.clear()  # a previous run in this process set it when it closed its chains
    try:
        for index in shards:
            done(label_shard(store_path, index, report))
    finally:
        close_worker_state()
