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

import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelgen.chain import DETECTOR_BEFORE_THE_OPTION, ChainConfig, LabelChain, LabelResult
from labelgen.models import centerface_path, face_landmarker_path, file_sha256
from labelgen.sources import Source, open_source
from labelgen.status import Status
from labelgen.store import (DEFAULT_SHARD_SIZE, LabelStore, ManifestEntry, StoreError, StoreLock, array_specs,
                            create_store, shuffled_order)
from labelgen.teachers import BUILTIN_TEACHERS, is_shipped, shipped_teacher_file

MAX_ERRORS_PER_SHARD = 1000  # messages kept in a shard record; counts are always complete


@dataclass(frozen=True)
class Job:
    """What decides a store's content; a resumed run must match it exactly."""

    source: str
    root: str | None
    source_options: dict = field(default_factory=dict)
    config: ChainConfig = field(default_factory=ChainConfig)
    shard_size: int | None = DEFAULT_SHARD_SIZE  # None: chosen for the corpus and the cluster (see sized)
    seed: int = 0

    def sized(self, count: int, slots: int) -> "Job":
        """This job with a shard size: its own, or the adaptive default for ``count`` images.

        The default, ``min(256, ceil(count / (4 x slots)))`` for ``slots``
        parallel tasks, gives every slot at least four shards (so the last
        shards do not leave slots idle, and progress moves) without making
        shards of a big corpus smaller than 256 images. The store records the
        size it got, so a resumed run does not depend on the cluster it runs on.
        """
        if self.shard_size is not None:
            return self
        return dataclasses.replace(self, shard_size=max(1, min(DEFAULT_SHARD_SIZE, -(-count // (4 * max(1, slots))))))

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
    """Path and sha256 of every model file the chain loads (the teacher's too, when it has one)."""
    files = {"centerface.onnx": centerface_path(), "face_landmarker.task": face_landmarker_path()}
    teacher = teacher_file(config.teacher)
    if teacher is not None:
        files["teacher"] = teacher
    return {name: {"path": str(path), "sha256": file_sha256(str(path))} for name, path in files.items()}


def teacher_file(teacher: str) -> Path | None:
    """The model file behind a teacher name or path; ``None`` for the built-in ones."""
    if teacher in BUILTIN_TEACHERS:
        return None
    return shipped_teacher_file(teacher) if is_shipped(teacher) else Path(teacher)


def teacher_record(teacher: str) -> dict:
    """What the store's ``teacher`` attribute says: the name, and the file's hash when there is a file."""
    path = teacher_file(teacher)
    return {"name": teacher if path is None or is_shipped(teacher) else path.name,
            "sha256": None if path is None else file_sha256(str(path))}


def prepare_store(out: str | Path, job: Job, overwrite: bool = False, progress: bool = True, *, lock: bool = False,
                  part: tuple[int, int] | None = None, slots: int = 1) -> LabelStore:
    """Create the store for ``job`` at ``out``, or reopen it to resume.

    Creation is atomic (see :func:`~labelgen.store.create_store`): a killed
    creation leaves no store, and the rerun starts again.

    Args:
        out: the store folder (made absolute: Dask workers have their own
            working directory).
        job: what to label; a ``shard_size`` of ``None`` is chosen for the
            corpus and ``slots`` (see :meth:`Job.sized`), or taken from the
            store being resumed.
        overwrite: replace a store of another job (or a Zarr group that is not
            a label store). Other folders are never deleted.
        progress: show a progress bar while scanning.
        lock: return with the store's run lock held (``store.lock``, a
            :class:`~labelgen.store.StoreLock`; release it when done).
        part: the ``--part`` this run does, for the lock.
        slots: parallel tasks of the run (workers x threads), for the adaptive shard size.

    Raises:
        StoreError: ``out`` is a file, a non-empty folder that is not a label
            store, a store of another job (and not ``overwrite``), or cannot
            be written. :class:`~labelgen.store.StoreLocked` when another run
            holds the store.
    """
    out = Path(out).absolute()
    if _holds_a_store(out):
        store = _reopen(out, job, overwrite, lock, part)
        if store is not None:
            return store
    source = job.open_source()
    entries = _scan(source, progress)
    job = job.sized(len(entries), slots)
    order = shuffled_order(len(entries), job.seed)
    manifest = [entries[i] for i in order]
    try:
        store = create_store(out, manifest, crop_size=job.config.crop_size, shard_size=job.shard_size, attributes={
            "job": _normalise(job.fingerprint()), "source": source.describe(), "config": job.config.to_dict(),
            "models": model_files(job.config), "teacher": teacher_record(job.config.teacher),
            "manifest_order": f"numpy default_rng({job.seed}).permutation",
            "scan_report": source.scan_report.to_dict(),
        })
    except StoreError:
        if not _holds_a_store(out):
            raise
        return _reopen(out, job, False, lock, part)  # another run created it meanwhile: resume it (or refuse)
    if lock:
        store.lock = StoreLock(out, part).acquire()
    return store


def _holds_a_store(out: Path) -> bool:
    """Whether ``out`` holds a Zarr store; ``False`` when it is free to create one.

    Raises:
        StoreError: ``out`` is something a store cannot be made in (a file, a
            non-empty folder without ``zarr.json``): never deleted, whatever
            the options, since it may be anything.
    """
    if not out.exists() and not out.is_symlink():
        return False
    if not out.is_dir():
        raise StoreError(f"{out} exists and is not a folder; give a new path (or an empty folder) as --out")
    try:
        if (out / "zarr.json").is_file():
            return True
        if not any(out.iterdir()):
            return False
    except PermissionError:
        raise StoreError(f"{out} cannot be read (permission denied)") from None
    raise StoreError(f"{out} is a folder with other files in it, not a label store; give a new path "
                     f"(or an empty folder) as --out")


def _reopen(out: Path, job: Job, overwrite: bool, lock: bool, part: tuple[int, int] | None) -> LabelStore | None:
    """The store at ``out`` if it is ``job``'s (locked when asked); ``None`` once ``overwrite`` deleted it."""
    try:
        store = LabelStore(out)
    except StoreError as error:
        if not overwrite:
            raise StoreError(f"{error}; use another --out, or --overwrite to replace it") from None
        store = None
    changed = _job_differences(store, job) if store is not None else None
    if changed == []:
        if lock:
            store.lock = StoreLock(out, part).acquire()
        return store
    if not overwrite:
        raise StoreError(f"{out} was made by a different job (differs in: {', '.join(changed)}); "
                         f"use another --out, or --overwrite to start it again")
    with StoreLock(out):  # never delete a store another run is working on
        shutil.rmtree(out)
    return None


def stored_detector(out: str | Path) -> str | None:
    """The detector of the label store at ``out`` (a store made before the option: its detector then);
    ``None`` when ``out`` holds no readable store."""
    try:
        config = LabelStore(Path(out).absolute(), mode="r").attrs["job"]["config"]
        return config.get("detector", DETECTOR_BEFORE_THE_OPTION)
    except Exception:  # no store, or not one of ours: prepare_store says what is wrong with it
        return None


def _job_differences(store: LabelStore, job: Job) -> list[str]:
    """What differs between ``job`` and the job that made ``store`` (a job without a shard size takes the store's).

    A store made before the ``detector`` option records no detector: it was made with
    :data:`~labelgen.chain.DETECTOR_BEFORE_THE_OPTION`, and compares as such.
    """
    stored = _normalise(store.attrs.get("job", {}))
    if isinstance(stored.get("config"), dict):
        stored["config"].setdefault("detector", DETECTOR_BEFORE_THE_OPTION)
    if job.shard_size is None:
        job = dataclasses.replace(job, shard_size=stored.get("shard_size"))
    wanted = _normalise(job.fingerprint())
    return sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))


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
    """Stop this process's shard tasks, then close every chain it holds (FaceLandmarker must be closed before exit).

    The stop flag is set first and running tasks are given time to notice it
    (between two batches of :data:`PROGRESS_ROWS` images) and end, so models
    are closed only after their tasks ended; a task still running after
    :data:`STOP_WAIT_S` cannot record its shard anyway.
    """
    _stopping.set()
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


def dask_setup(worker) -> None:
    """Worker preload (``LocalCluster(preload=["labelgen.pipeline"])``): ignore SIGINT in local workers.

    A terminal's Ctrl-C goes to the whole foreground process group, the local
    cluster's worker processes included. The driver handles it (cancels the
    tasks, closes the cluster, which stops the tasks cleanly); a worker that
    also handled it would die with a traceback in the middle of its tasks.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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
        return _write_shard(store, index, rows, results, start)


def _write_shard(store: LabelStore, index: int, rows: slice, results: list[LabelResult], start: float) -> dict:
    """Write a labelled shard's rows, then its completion record; return the record."""
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
PROGRESS_TOPIC = "labelgen-progress"  # Dask event topic of the workers' per-batch counts
WAIT_NOTICE_S = 30.0  # a cluster without workers for this long is said to be waiting, not stuck
POLL_S = 0.25  # how often the driver looks at finished tasks, progress and workers


class ClusterError(Exception):
    """The Dask cluster cannot be reached or started."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped the run; the shards that were running stay pending.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except
    Exception`` between the signal and the driver can swallow it.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


@contextmanager
def signals_stop_the_run():
    """While active (main thread only), SIGINT and SIGTERM stop the run cleanly; a second one exits at once.

    The first signal sets the stop flag, so no shard task of this process
    records anything after it, and raises :class:`Interrupted` in the main
    thread: :func:`run_job` then cancels its tasks and closes its cluster
    (whose workers stop their tasks before closing their models) and
    re-raises. A second signal (an impatient Ctrl-C) ends the process at
    once; local workers exit with it (Dask's nanny watches its parent), and
    since rows are only ever followed by a completion record written
    atomically, the shards that were running simply stay pending.
    """
    received: list[int] = []

    def handle(signum, frame) -> None:
        if received:
            try:  # straight to the descriptor: no buffer to flush, nothing to re-enter in a signal handler
                os.write(sys.stderr.fileno(), b"\ninterrupted again: exiting now; run the same command to resume\n")
            except (OSError, ValueError):
                pass
            os._exit(128 + signum)
        received.append(signum)
        _stopping.set()
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Progress:
    """The live bar: images done, with ok and failed counts, as the tasks go.

    Counts come from reports every :data:`PROGRESS_ROWS` images of a running
    shard; the shard's completion record replaces its reports when it comes
    (a shard retried after a worker died reports twice, but counts once).
    """

    def __init__(self, images: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=images, unit="img", desc="labelling", disable=not enabled, smoothing=0.05)
        self.lock = threading.Lock()  # reports come from the Dask client's thread
        self.live: dict[int, Counter] = {}
        self.recorded: set[int] = set()
        self.counts: Counter = Counter()

    def report(self, shard: int, counts: Counter) -> None:
        with self.lock:
            if shard not in self.recorded:
                self.live.setdefault(shard, Counter()).update(counts)
                self.counts.update(counts)

    def record(self, record: dict) -> None:
        with self.lock:
            self.recorded.add(record["shard"])
            self.counts.subtract(self.live.pop(record["shard"], Counter()))
            self.counts.update(record["counts"])
        self.refresh()

    def refresh(self) -> None:
        """Redraw (from the driver's thread)."""
        with self.lock:
            done, ok = sum(self.counts.values()), self.counts[Status.OK.label]
        self.bar.set_postfix(ok=ok, failed=done - ok, refresh=False)
        self.bar.update(done - self.bar.n)

    def note(self, text: str) -> None:
        """A line above the bar."""
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run_job(store: LabelStore, *, workers: int = 2, threads_per_worker: int = 1, scheduler: str | None = None,
            serial: bool = False, progress: bool = True, part: tuple[int, int] | None = None,
            wait_notice_s: float = WAIT_NOTICE_S) -> dict:
    """Label every shard without a completion record; return the status counts.

    Args:
        store: a store made by :func:`prepare_store`.
        workers, threads_per_worker: size of the local Dask process cluster.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``)
            to use instead of a local cluster.
        serial: label in this process, without Dask (for debugging and tests).
        progress: show a live progress bar (advancing every few images).
        part: ``(k, n)``: only shards ``i`` with ``i % n == k``, for ``n``
            independent batch jobs sharing one store. A part does not
            consolidate (parts may finish together); a final run without
            ``part`` finds nothing to do and consolidates.
        wait_notice_s: with no worker in the cluster for this long, say so
            (and again every ``wait_notice_s``).

    Raises:
        Interrupted: a signal stopped the run (see :func:`signals_stop_the_run`);
            the tasks were cancelled and the cluster closed first.
    """
    pending = store.pending_shards()
    if part is not None:
        pending = [index for index in pending if index % part[1] == part[0]]
    images = sum(len(range(*store.shard_rows(i).indices(store.count))) for i in pending)
    bar = _Progress(images, progress)
    path = str(store.path.absolute())  # workers resolve relative paths from their own directory
    try:
        if serial:
            _run_serial(path, pending, bar)
        elif pending:
            _run_on_dask(path, pending, bar, workers, threads_per_worker, scheduler, wait_notice_s)
    finally:
        bar.close()
    summary = store.summary()
    if part is None:
        store.consolidate(summary)
    return summary


def _run_serial(path: str, pending: list[int], bar: _Progress) -> None:
    _stopping.clear()  # a previous run in this process set it when it closed its chains

    def report(shard: int, counts: Counter) -> None:
        bar.report(shard, counts)
        bar.refresh()

    try:
        for index in pending:
            bar.record(label_shard(path, index, report))
    finally:
        close_worker_state()


def _dask_label_shard(store_path: str, index: int) -> dict | None:
    """:func:`label_shard` as a Dask task: progress goes to the client as events.

    An interrupted shard returns ``None`` rather than raising, so that a worker
    shutting down does not log a failed task per shard it was running.
    """
    from distributed import get_worker

    worker = get_worker()

    def report(shard: int, counts: Counter) -> None:
        worker.log_event(PROGRESS_TOPIC, {"shard": shard, "counts": dict(counts)})

    try:
        return label_shard(store_path, index, report)
    except ShardInterrupted:
        return None


def _run_on_dask(path: str, pending: list[int], bar: _Progress, workers: int, threads_per_worker: int,
                 scheduler: str | None, wait_notice_s: float) -> None:
    from distributed import Client, LocalCluster, as_completed

    cluster = client = None
    futures = []
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                   dashboard_address=None, preload=[__name__])  # see dask_setup
        try:
            client = Client(scheduler or cluster)
        except (OSError, TimeoutError) as error:  # distributed's "Timed out trying to connect" is an OSError
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        client.register_plugin(close_chains_plugin())
        client.subscribe_topic(PROGRESS_TOPIC, lambda event: bar.report(event[1]["shard"], Counter(event[1]["counts"])))
        futures = client.map(_dask_label_shard, [path] * len(pending), pending, pure=False)
        finished = as_completed(futures)
        waiting = _WaitingNotice(client, wait_notice_s, bar.note)
        while not finished.is_empty():
            for future in finished.next_batch(block=False):
                record = future.result()
                if record is not None:
                    bar.record(record)
            bar.refresh()
            waiting.check()
            time.sleep(POLL_S)
    except Interrupted:
        # What Dask says while a cluster is torn down under running tasks is noise here:
        # the tasks are being stopped on purpose, and the user gets one line about it.
        _quiet_dask()
        if client is not None and cluster is not None:  # not the workers of someone else's cluster
            try:
                client.run(_quiet_dask)
            except Exception:
                pass
        raise
    finally:
        if client is not None:
            client.cancel(futures)
            client.close()
        if cluster is not None:
            cluster.close()


def _quiet_dask() -> None:
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)


class _WaitingNotice:
    """Says so when the cluster has no worker for ``wait_s`` (and again every ``wait_s``): waiting, not stuck."""

    def __init__(self, client, wait_s: float, note: Callable[[str], None]):
        self.client, self.wait_s, self.note = client, wait_s, note
        self.idle_since = self.said = time.monotonic()
        self.checked = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now - self.checked < min(1.0, self.wait_s):  # one question to the scheduler a second at most
            return
        self.checked = now
        if self.client.nthreads():
            self.idle_since = None
            return
        if self.idle_since is None:
            self.idle_since = self.said = now
        if now - self.said >= self.wait_s:
            address = self.client.scheduler.address
            self.note(f"waiting for workers: the scheduler at {address} has had none for "
                      f"{now - self.idle_since:.0f} s (start some with 'dask worker {address}'); "
                      f"Ctrl-C stops, and the same command resumes")
            self.said = now
