"""The lock a run holds on its folder, so two runs never work on one folder.

``labelgen run`` locks its label store (a ``--part K/N`` run only its part of
it); ``svc-train`` locks its run folder the same way. A store on object
storage has no folder to ``flock``: :func:`lock_for` gives it an
:class:`~labelgen.object_lock.ObjectLock` instead. The lock is a pair of
``flock`` files in the folder, each naming its holder, so a refused run is
told who holds the folder, and a killed holder never blocks the next run.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

from labelgen.store import StoreError, pid_alive


class FolderLocked(StoreError):
    """Another run holds the folder's lock (a label store's, or a training's run folder's)."""


LOCK_FILE = "run.lock"
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}  # file systems without flock


class FolderLock:
    """The lock a run holds on its folder: a ``labelgen run`` on its store, ``svc-train`` on its run folder.

    A whole-store run locks ``run.lock`` exclusively. A ``--part K/N`` run
    locks ``run.lock`` shared (parts run together; a whole-store run waits for
    none of them and is refused while any runs) and its own
    ``run.part-K-of-N.lock`` exclusively. Each lock file holds its holder's
    host, pid, start time and command, quoted when another run is refused.

    The locks are ``flock`` locks, which the kernel drops when the holder
    dies, so a killed run never blocks the next one. On a file system without
    ``flock`` the recorded holder decides: a live process, or any process of
    another host, holds the lock; a dead process of this host does not (a
    stale lock, taken over).

    ``svc-train`` locks its run folder the same way (``holder="svc-train"``),
    so two trainings never write one run.

    Args:
        folder: the store folder (or any folder to lock).
        part: ``(k, n)`` for a ``--part K/N`` run, ``None`` for a whole-store run.
        holder: what holds such locks, for the refusal message.
    """

    def __init__(self, folder: str | Path, part: tuple[int, int] | None = None, holder: str = "labelgen run"):
        self.folder = Path(folder)
        self.part = part
        self.holder = holder
        self._held: list[int] = []  # open descriptors, released in reverse order
        self._own: int | None = None  # the descriptor whose file carries our holder record

    def _path(self, part: tuple[int, int] | None) -> Path:
        return self.folder / (LOCK_FILE if part is None else f"run.part-{part[0]}-of-{part[1]}.lock")

    def acquire(self) -> "FolderLock":
        """Take the lock, or raise :class:`FolderLocked` naming the run that holds it.

        Raises:
            FolderLocked: another live run holds the store (or this part of it).
            StoreError: the lock file cannot be created (read-only store).
        """
        try:
            if self.part is None:
                self._own = self._take(self._path(None), exclusive=True)
            else:
                self._take(self._path(None), exclusive=False)
                self._own = self._take(self._path(self.part), exclusive=True)
        except BaseException:
            self.release()
            raise
        os.ftruncate(self._own, 0)
        os.pwrite(self._own, json.dumps(holder_record()).encode(), 0)
        return self

    def _take(self, path: Path, exclusive: bool) -> int:
        import fcntl

        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise StoreError(f"cannot write to {self.folder}: {error.strerror or error}") from None
        self._held.append(descriptor)
        try:
            fcntl.flock(descriptor, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLocked(self._refusal(path)) from None
        except OSError as error:
            if error.errno not in _NO_FLOCK:
                raise
            holder = _read_holder(path)
            if exclusive and holder and holder_alive(holder):
                raise FolderLocked(self._refusal(path)) from None
        return descriptor

    def _refusal(self, path: Path) -> str:
        holders = [_read_holder(path)]
        if path.name == LOCK_FILE and not holders[0]:  # held shared: by part runs
            holders = [_read_holder(p) for p in sorted(self.folder.glob("run.part-*.lock"))]
        described = "; ".join(describe_holder(h) for h in holders if h) or "a run that did not say who it is"
        return f"{self.folder} is in use by another {self.holder} ({described}); wait for it to end or stop it"

    def release(self) -> None:
        """Drop the lock (the holder record is cleared first, so nobody reads a stale one)."""
        if self._own is not None:
            try:
                os.ftruncate(self._own, 0)
            except OSError:
                pass
            self._own = None
        while self._held:
            os.close(self._held.pop())  # closing the last descriptor releases its flock

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_for(location: str | Path, part: tuple[int, int] | None = None, holder: str = "labelgen run"):
    """The run lock of a store: a :class:`FolderLock` for a folder, an
    :class:`~labelgen.object_lock.ObjectLock` for a store on object storage (a URL)."""
    from labelgen.locations import is_url

    if is_url(location):
        from labelgen.object_lock import ObjectLock

        return ObjectLock(str(location), part, holder)
    return FolderLock(location, part, holder)


def holder_record() -> dict:
    """Who holds a lock: host, pid, start time and command line."""
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv)[:500]}


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def holder_alive(holder: dict) -> bool:
    """A holder on another host is taken to be alive: its pid cannot be checked from here."""
    return holder.get("host") != socket.gethostname() or pid_alive(int(holder.get("pid", 0)))


def describe_holder(holder: dict) -> str:
    return (f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, started {holder.get('started', '?')}"
            + (f": {holder['command']}" if holder.get("command") else ""))
