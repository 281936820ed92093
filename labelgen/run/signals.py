"""Signals: SIGINT and SIGTERM stop a run cleanly, and the same command resumes it.

The driver turns the first signal into :class:`Interrupted` (and sets the stop
flag of this process's shard tasks); local Dask workers ignore SIGINT, which a
terminal sends to the whole process group (:func:`dask_setup`), and are stopped
by the driver instead.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

from labelgen.run.worker import stop_shard_tasks


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
    thread: :func:`~labelgen.run.distributor.run_job` then cancels its tasks and closes its cluster
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
        stop_shard_tasks()
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def dask_setup(worker) -> None:
    """Worker preload (``LocalCluster(preload=["labelgen.run.signals"])``): ignore SIGINT in local workers.

    A terminal's Ctrl-C goes to the whole foreground process group, the local
    cluster's worker processes included. The driver handles it (cancels the
    tasks, closes the cluster, which stops the tasks cleanly); a worker that
    also handled it would die with a traceback in the middle of its tasks.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
