"""Stopping a training run on Ctrl-C (SIGINT) or SIGTERM without losing the steps it has done.

The first signal only asks the run to stop: the trainer finishes the optimiser
step it is in, writes ``last.ckpt`` (mid-epoch if need be; ``--resume``
continues exactly there) and :class:`TrainingInterrupted` ends the command
with 128 + the signal number (130 for SIGINT, 143 for SIGTERM). A second
signal exits at once; the checkpoints on disk stay valid, because each is
written to a temporary file and renamed.

A terminal's Ctrl-C reaches every process of the foreground group, and SLURM's
SIGTERM every process of the job, DataLoader workers included. Workers
therefore ignore both signals (:func:`ignore_stop_signals`, their
``worker_init_fn``): a worker killed under the trainer would end the run with
an error in the middle of a step. The trainer shuts its workers down itself.

Example:
    >>> import os, signal
    >>> with StopRequest() as stop:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     stop.signum == signal.SIGTERM
    True
"""
from __future__ import annotations

import os
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """A stop signal ended the run after its last checkpoint.

    Attributes:
        signum: The signal.
        step: Optimiser steps done (all of them are in ``checkpoint`` when it is set).
        checkpoint: ``last.ckpt`` of the run, or ``None`` when no step was done.
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number."""
        return 128 + self.signum


class StopRequest:
    """While active (in the main thread), the first SIGINT / SIGTERM sets :attr:`signum`; a second exits.

    Elsewhere than the main thread (where Python cannot install handlers) it is
    inactive and :attr:`signum` stays ``None``.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            try:  # straight to the descriptor: nothing to flush or re-enter in a signal handler
                os.write(sys.stderr.fileno(), b"\ninterrupted again: exiting now; the last checkpoint is kept\n")
            except (OSError, ValueError):
                pass
            os._exit(128 + signum)
        self.signum = signum
        try:
            os.write(sys.stderr.fileno(), f"\n{signal.Signals(signum).name}: stopping after this step "
                                          "(again to exit at once)\n".encode())
        except (OSError, ValueError):
            pass

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of the DataLoaders: workers leave SIGINT and SIGTERM to the trainer."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
