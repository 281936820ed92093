"""Keep the native libraries' log chatter out of the terminal (``--verbose`` lets it through).

MediaPipe (absl C++ logging) and TensorFlow Lite write lines such as
``WARNING: Logging before InitGoogle() is written to STDERR``,
``W0000 ... inference_feedback_manager.cc:121] Feedback manager requires a model
with a single signature inference ...`` and ``INFO: Created TensorFlow Lite
XNNPACK delegate for CPU.`` straight to file descriptor 2, from their own
threads, at model creation and at the first inferences, in every process that
loads the landmarker. Environment variables do not reach them (absl ignores
``GLOG_minloglevel``; ``TF_CPP_MIN_LOG_LEVEL`` does not cover TFLite's minimal
logger: tried), so :func:`filter_native_logs` filters the descriptor itself:

- fd 2 becomes a pipe; a thread forwards every line to the real stderr except
  the known chatter (absl/glog ``I``/``W`` lines from C++ sources, TFLite
  ``INFO:`` lines, the InitGoogle warning). Errors (``E``/``F`` lines) and
  everything else pass.
- Python's ``sys.stderr`` (progress bars, messages, tracebacks) writes to the real
  stderr directly, so nothing Python prints waits on the thread.
- Processes started afterwards inherit the pipe as their fd 2, so the local Dask
  cluster's worker processes are filtered by the same thread.
"""
from __future__ import annotations

import atexit
import io
import os
import re
import sys
import threading

# absl / glog prefix: severity letter, MMDD, time, thread id, source file:line]
_NATIVE_LINE = re.compile(rb"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_CHATTER = (b"WARNING: Logging before InitGoogle() is written to STDERR", b"INFO: ")

_installed = False


def is_chatter(line: bytes) -> bool:
    """Whether a line on fd 2 is native log chatter (info and warnings of MediaPipe / TFLite / absl).

    Example:
        >>> is_chatter(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
        True
        >>> is_chatter(b"W0000 00:00:1796000216.133364   11261 inference_feedback_manager.cc:121] Feedback ...")
        True
        >>> is_chatter(b"E0000 00:00:1796000216.133364   11261 graph.cc:12] Calculator failed")
        False
        >>> is_chatter(b"Traceback (most recent call last):")
        False
    """
    return line.startswith(_CHATTER) or bool(_NATIVE_LINE.match(line))


def _forward(source: int, target: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(source, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not is_chatter(line))
        if kept:
            os.write(target, kept)
    if pending and not is_chatter(pending):
        os.write(target, pending)
    os.close(source)


def filter_native_logs() -> bool:
    """Route fd 2 through the chatter filter, once per process; return whether it is now installed.

    Does nothing where Python's stderr is not fd 2 (e.g. captured by click's test
    runner or pytest): there is then no terminal to keep clean, and swapping the
    descriptor under a capture would confuse it.
    """
    global _installed
    if _installed:
        return True
    try:
        if sys.stderr.fileno() != 2:
            return False
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_forward, args=(read_end, real), name="native-log-filter", daemon=True)
    thread.start()
    sys.stderr = open(real, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace",
                      closefd=False)

    def restore() -> None:
        # Put the real stderr back on fd 2: the pipe's last write end in this process closes, and the
        # thread drains what is left (children that still hold the pipe only delay it, up to the timeout).
        sys.stderr.flush()
        os.dup2(real, 2)
        thread.join(timeout=2)

    atexit.register(restore)
    _installed = True
    return True
