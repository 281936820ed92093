"""The distributor: a store's pending shards to wherever they are labelled, then the store consolidated.

:func:`run_job` sends one shard task per shard without a completion record to
a Dask cluster (a local process cluster, or an existing scheduler's), or
labels them one after the other in this process (``--serial``), with a live
progress bar; a run over the whole store consolidates it at the end.

No image can block a corpus: a shard whose worker process died (past its
memory limit, a crash in a native decoder; Dask's ``KilledWorker``) is
labelled again image by image once the other shards are done, each image in
a task of its own; an image whose task dies too is tried once more as the
only task of the run, and if its worker dies again it gets the status
``worker_lost``. The driver writes the shard and its record, and the run
completes.

A full disk (or quota) stops the run: a task that meets it returns
:class:`_DiskFull` instead of raising (so no worker logs an error for it), the
driver cancels the other tasks quietly and raises the ``OSError``; shards
with a completion record are kept and the same command labels the rest. So
does a chain that cannot be built on a worker (a missing native library or
model file; :class:`~labelgen.run.chain_start.ChainCannotStart`): every shard
would fail the same way, so the first one stops the run with its cause.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from labelgen.disk_space import no_space_error

from labelgen.run.chain_start import ChainCannotStart
from labelgen.run.cluster import dashboard_note, start_local_cluster
from labelgen.run.job import shards_of_part
from labelgen.run.progress import Progress
from labelgen.run.signals import Interrupted
from labelgen.run.worker import (ShardInterrupted, close_chains_plugin, label_image, label_in_this_process, label_shard,
                                 worker_lost, write_shard)
from labelgen.store import LabelStore

PROGRESS_TOPIC = "labelgen-progress"  # Dask event topic of the workers' per-batch counts
WAIT_NOTICE_S = 30.0  # a cluster without workers for this long is said to be waiting, not stuck
POLL_S = 0.25  # how often the driver looks at finished tasks, progress and workers


class ClusterError(Exception):
    """The Dask cluster cannot be reached or started."""


def run_job(store: LabelStore, *, workers: int = 2, threads_per_worker: int = 1, scheduler: str | None = None,
            serial: bool = False, progress: bool = True, part: tuple[int, int] | None = None,
            wait_notice_s: float = WAIT_NOTICE_S, dashboard: str | None = None) -> dict:
    """Label every shard without a completion record; return the status counts.

    Args:
        store: a store made by :func:`~labelgen.run.job.prepare_store`.
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
        dashboard: the address of the local cluster's Dask dashboard; ``None``: none.

    Raises:
        Interrupted: a signal stopped the run (see :func:`~labelgen.run.signals.signals_stop_the_run`);
            the tasks were cancelled and the cluster closed first.
        OSError: with errno ``ENOSPC`` or ``EDQUOT``: the store's file system is full; likewise
            stopped, the finished shards kept.
        ChainCannotStart: a worker (or this process) cannot build the labelling chain; likewise stopped.
    """
    pending = shards_of_part(store.pending_shards(), part)
    bar = Progress(store.images_in(pending), progress)
    try:
        if serial:
            label_in_this_process(store.location, pending, bar.report_and_refresh, bar.record)
        elif pending:
            _run_on_dask(store, pending, bar, workers, threads_per_worker, scheduler, wait_notice_s, dashboard)
    finally:
        bar.close()
    summary = store.summary()
    if part is None:
        store.consolidate(summary)
    return summary


def _dask_label_shard(store_path: str, index: int) -> dict | None:
    """:func:`~labelgen.run.worker.label_shard` as a Dask task: progress goes to the client as events."""
    from distributed import get_worker

    worker = get_worker()

    def report(shard: int, counts: Counter) -> None:
        worker.log_event(PROGRESS_TOPIC, {"shard": shard, "counts": dict(counts)})

    return _task_outcome(label_shard, store_path, index, report)


def _dask_label_image(store_path: str, row: int):
    """:func:`~labelgen.run.worker.label_image` as a Dask task."""
    return _task_outcome(label_image, store_path, row)


def _task_outcome(label: Callable, *args):
    """``label(*args)``, or what a Dask task returns instead of raising, so that its worker logs no error:
    ``None`` when the task was interrupted (a worker shutting down would log every shard it was running),
    :class:`_DiskFull` when the disk is full and :class:`_CannotStart` when the chain cannot be built (for
    both, the driver stops the run with one line)."""
    try:
        return label(*args)
    except ShardInterrupted:
        return None
    except ChainCannotStart as error:
        return _CannotStart(str(error))
    except OSError as error:
        if no_space_error(error) is None:
            raise
        return _DiskFull.of(error)


@dataclass(frozen=True)
class _DiskFull:
    """A task's outcome when the disk is full: returned, not raised, so that its worker logs no error."""

    errno: int
    filename: str | None

    @classmethod
    def of(cls, error: OSError) -> "_DiskFull":
        full = no_space_error(error)
        return cls(full.errno, full.filename)

    def error(self) -> OSError:
        return OSError(self.errno, os.strerror(self.errno), self.filename)


@dataclass(frozen=True)
class _CannotStart:
    """A task's outcome when its worker cannot build the chain: returned, not raised, as :class:`_DiskFull`."""

    message: str

    def error(self) -> ChainCannotStart:
        return ChainCannotStart(self.message)


def _run_on_dask(store: LabelStore, pending: list[int], bar: Progress, workers: int, threads_per_worker: int,
                 scheduler: str | None, wait_notice_s: float, dashboard: str | None) -> None:
    from distributed import Client, KilledWorker

    path = store.location  # workers resolve relative paths from their own directory
    cluster = client = None
    tasks: set = set()  # the futures not finished yet, to cancel them if the run is stopped
    try:
        if scheduler is None:
            cluster = start_local_cluster(workers, threads_per_worker, dashboard)
            if dashboard is not None:
                bar.note(dashboard_note(cluster))
        try:
            client = Client(scheduler or cluster)
        except (OSError, TimeoutError) as error:  # distributed's "Timed out trying to connect" is an OSError
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        client.register_plugin(close_chains_plugin())
        client.subscribe_topic(PROGRESS_TOPIC, lambda event: bar.report(event[1]["shard"], Counter(event[1]["counts"])))
        waiting = _WaitingNotice(client, wait_notice_s, bar.note)
        lost: list[int] = []  # shards whose worker died
        for index, outcome in _outcomes(client, tasks, _dask_label_shard, path, pending, bar, waiting):
            if isinstance(outcome, KilledWorker):
                lost.append(index)
            elif outcome is not None:
                bar.record(outcome)
        if lost:
            _relabel_image_by_image(client, tasks, store, sorted(lost), bar, waiting)
    except BaseException as error:
        if not isinstance(error, (Interrupted, ChainCannotStart)) and no_space_error(error) is None:
            raise
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
            client.cancel(list(tasks))
            client.close()
        if cluster is not None:
            cluster.close()


def _outcomes(client, tasks: set, function: Callable, path: str, items: list[int], bar: Progress,
              waiting: "_WaitingNotice"):
    """``(item, function(path, item))`` of each of ``items`` as its task finishes, in a task each.

    A task whose worker died (more often than the scheduler allows) gives its
    ``KilledWorker`` exception as its outcome; a full disk's ``OSError`` and any
    other error are raised. A
    finished task is released at once, so that a worker dying later does not
    make the scheduler run it again. The bar is redrawn, and an empty cluster
    watched for, while the tasks run.
    """
    from distributed import KilledWorker, as_completed

    futures = client.map(function, [path] * len(items), items, pure=False)
    tasks.update(futures)
    item_of = dict(zip((future.key for future in futures), items))
    finished = as_completed(futures)
    del futures  # as_completed and tasks hold them until each is done
    while not finished.is_empty():
        for future in finished.next_batch(block=False):
            try:
                outcome = future.result()
            except KilledWorker as error:
                outcome = error
            if isinstance(outcome, (_DiskFull, _CannotStart)):
                raise outcome.error()
            tasks.discard(future)
            future.release()
            yield item_of[future.key], outcome
        bar.refresh()
        waiting.check()
        time.sleep(POLL_S)


def _relabel_image_by_image(client, tasks: set, store: LabelStore, shards: list[int], bar: Progress,
                            waiting: "_WaitingNotice") -> None:
    """Label the images of ``shards`` (whose worker died) each in a task of its own, then write each shard.

    First all at once; an image whose task fails too (``KilledWorker``) may have
    shared a worker with the culprit, so those are tried again one at a time,
    each the only task this run has in the cluster: an image that kills its
    worker then is ``worker_lost``. The bar counts each image as it comes; a
    shard with an interrupted image stays pending.
    """
    from distributed import KilledWorker

    start = time.perf_counter()
    path = store.location
    rows = {index: list(range(*store.shard_rows(index).indices(store.count))) for index in shards}
    bar.note(f"the worker labelling shard{'s' * (len(shards) > 1)} {', '.join(map(str, shards))} died: labelling "
             f"{'their' if len(shards) > 1 else 'its'} {sum(map(len, rows.values()))} images again, each in a task "
             f"of its own")
    shard_of = {row: index for index in shards for row in rows[index]}
    results = {}
    for row, result in _outcomes(client, tasks, _dask_label_image, path, list(shard_of), bar, waiting):
        results[row] = result
        if result is not None and not isinstance(result, KilledWorker):
            bar.report(shard_of[row], Counter({result.status.label: 1}))
    suspects = [row for row, result in results.items() if isinstance(result, KilledWorker)]
    if suspects:
        bar.note(f"{len(suspects)} image{'s' * (len(suspects) > 1)} killed or shared a dying worker: trying "
                 f"{'them' if len(suspects) > 1 else 'it'} alone, one at a time")
    for row in suspects:
        (_, result), = _outcomes(client, tasks, _dask_label_image, path, [row], bar, waiting)
        if isinstance(result, KilledWorker):
            result = worker_lost(store.manifest(slice(row, row + 1))[0])
        results[row] = result
    for index in shards:
        labelled = [results[row] for row in rows[index]]
        if None not in labelled:  # None: an interrupted task
            bar.record(write_shard(store, index, store.shard_rows(index), labelled, start))


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
