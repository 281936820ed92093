"""The local Dask cluster of a run: worker processes that ignore Ctrl-C, and a dashboard only on request.

``LocalCluster(dashboard_address=None)`` does not turn the dashboard off: the
scheduler always starts its HTTP server (Prometheus metrics, JSON and HTML
pages about workers and tasks) and, without an address, binds it to port 8787,
so a second run on a shared host warns "Port 8787 is already in use". Here the
server is started on a free loopback port without the dashboard's pages and
closed at once, unless ``--dashboard`` asks for it.

A task whose worker dies fails at once with ``KilledWorker`` (``allowed_failures``
0): the distributor retries it its own way, image by image (see
:mod:`~labelgen.run.distributor`), rather than running a whole shard again into
the same crash.
"""
from __future__ import annotations

import importlib.util

from labelgen.run.signals import dask_setup

DEFAULT_DASHBOARD = "127.0.0.1:8787"  # --dashboard without an address: this host only (tunnel to it with ssh -L)
ALLOWED_FAILURES = 0  # a task whose worker died fails with KilledWorker (Dask's default: 3 more tries)
# Memory per local worker that --workers' default keeps: the room --max-pixels' default is sized for
# (docs/labelling.md); the local cluster splits the machine's memory evenly among its workers.
WORKER_MEMORY = 2 * 2**30


def default_local_workers(cores: int | None = None, memory: int | None = None) -> int:
    """Local workers when ``--workers`` is not given: one per core, as many as get ``WORKER_MEMORY`` each.

    Labelling is CPU-bound (on a GPU machine too: docs/benchmarks.md), so every core should label.

    Args:
        cores: the cores this process may use (default: Dask's count, which honours affinity and cgroup quotas).
        memory: bytes of memory (default: the machine's total, which the local cluster divides).

    Example:
        >>> default_local_workers(cores=16, memory=64 * 2**30), default_local_workers(cores=16, memory=24 * 2**30)
        (16, 12)
    """
    if cores is None:
        from dask.system import CPU_COUNT

        cores = CPU_COUNT
    if memory is None:
        import psutil

        memory = psutil.virtual_memory().total
    return max(1, min(cores, memory // WORKER_MEMORY))


def start_local_cluster(workers: int, threads_per_worker: int, dashboard: str | None = None):
    """A local cluster of ``workers`` processes with ``threads_per_worker`` threads each.

    Args:
        workers, threads_per_worker: its size.
        dashboard: the address of Dask's dashboard (``127.0.0.1:8787``, ``:8787`` for
            every interface); ``None``: no dashboard and no HTTP server at all.

    Returns:
        The started :class:`distributed.LocalCluster`; its ``dashboard_link`` when ``dashboard`` is given.
    """
    import dask
    from distributed import LocalCluster

    # The user's own worker preloads (Dask's config) run too, before ours.
    preload = [*dask.config.get("distributed.worker.preload", []), dask_setup.__module__]  # see dask_setup
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
        dashboard_address=dashboard or "127.0.0.1:0",
        scheduler_kwargs={"dashboard": dashboard is not None, "allowed_failures": ALLOWED_FAILURES},
        preload=preload)
    if dashboard is None:
        cluster.sync(_stop_http_server, cluster.scheduler)
    return cluster


async def _stop_http_server(scheduler) -> None:
    scheduler.http_server.stop()  # on the cluster's event loop, where tornado wants it


def dashboard_note(cluster) -> str:
    """The line that says where the dashboard is (and what it needs to show more than a notice)."""
    needs = "" if importlib.util.find_spec("bokeh") else " (it shows only a notice until bokeh is installed: " \
                                                         "pip install 'bokeh>=3.1')"
    return f"dashboard: {cluster.dashboard_link}{needs}"
