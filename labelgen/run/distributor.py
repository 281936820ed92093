"""The distributor: a store's pending shards to wherever they are labelled, then the store consolidated.

:func:`run_job` sends one shard task per shard without a completion record to
a Dask cluster (a local process cluster, or an existing scheduler's), or
labels them one after the other in this process (``--serial``), with a live
progress bar; a run over the whole store consolidates it at the end.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from labelgen.run.job import shards_of_part
from labelgen.run.progress import Progress
from labelgen.run.signals import Interrupted, dask_setup
from labelgen.run.worker import ShardInterrupted, close_chains_plugin, label_in_this_process, label_shard
from labelgen.store import LabelStore

PROGRESS_TOPIC = "labelgen-progress"  # Dask event topic of the workers' per-batch counts
WAIT_NOTICE_S = 30.0  # a cluster without workers for this long is said to be waiting, not stuck
POLL_S = 0.25  # how often the driver looks at finished tasks, progress and workers


class ClusterError(Exception):
    """The Dask cluster cannot be reached or started."""


def run_job(store: LabelStore, *, workers: int = 2, threads_per_worker: int = 1, scheduler: str | None = None,
            serial: bool = False, progress: bool = True, part: tuple[int, int] | None = None,
            wait_notice_s: float = WAIT_NOTICE_S) -> dict:
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

    Raises:
        Interrupted: a signal stopped the run (see :func:`~labelgen.run.signals.signals_stop_the_run`);
            the tasks were cancelled and the cluster closed first.
    """
    pending = shards_of_part(store.pending_shards(), part)
    bar = Progress(store.images_in(pending), progress)
    path = str(store.path.absolute())  # workers resolve relative paths from their own directory
    try:
        if serial:
            label_in_this_process(path, pending, bar.report_and_refresh, bar.record)
        elif pending:
            _run_on_dask(path, pending, bar, workers, threads_per_worker, scheduler, wait_notice_s)
    finally:
        bar.close()
    summary = store.summary()
    if part is None:
        store.consolidate(summary)
    return summary


def _dask_label_shard(store_path: str, index: int) -> dict | None:
    """:func:`~labelgen.run.worker.label_shard` as a Dask task: progress goes to the client as events.

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


def _run_on_dask(path: str, pending: list[int], bar: Progress, workers: int, threads_per_worker: int,
                 scheduler: str | None, wait_notice_s: float) -> None:
    from distributed import Client, LocalCluster, as_completed

    cluster = client = None
    futures = []
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                   dashboard_address=None, preload=[dask_setup.__module__])  # see dask_setup
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
