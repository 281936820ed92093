"""The run lock of a label store on object storage (an ``s3://`` or other fsspec URL).

Object storage has no ``flock``. The lock is an object, ``run.lock`` (a
``--part K/N`` run: ``run.part-K-of-N.lock``) inside the store's prefix,
created with an exclusive create (fsspec's ``mode="xb"``: on S3 a conditional
put, ``If-None-Match: *``, which fails when the object exists), so of two runs
that create it at once exactly one succeeds. It holds its holder's host, pid,
start time, command and a random id; releasing the lock deletes it.

A whole-store run and the part runs exclude each other the same way as with
:class:`~labelgen.run_lock.FolderLock`: a whole-store run creates
``run.lock`` and then looks for part locks; a part run creates its own lock
and then looks for ``run.lock``. Each looks after it has created its own, so
of two that start together at least one sees the other and steps back (S3
reads are strongly consistent after writes).

Stale locks: a run killed by SIGKILL, or a machine that went away, leaves its
lock object behind. A lock whose holder is a process of *this* host that no
longer exists is stale and taken over; the takeover first creates
``run.lock.taken-<id>`` exclusively, so of several runs that find the same
stale lock only one takes it over. A holder on another host cannot be checked
from here: the run is refused with the holder named and the command that
removes the lock (``labelgen unlock STORE``) for when that run is known to be gone.
There is no heartbeat: a refused run never guesses from the age of a lock.
"""
from __future__ import annotations

import json
import uuid

import labelgen.locations as locations
from labelgen.run_lock import FolderLocked, describe_holder, holder_alive, holder_record
from labelgen.store import StoreError

LOCK_OBJECT = "run.lock"
# Filesystems whose exclusive create is one atomic request (S3: a conditional put). fsspec's generic
# "xb" checks and then writes, which two runs can pass together: runs on other schemes are refused.
EXCLUSIVE_CREATE = ("s3", "s3a")


def part_lock_name(part: tuple[int, int]) -> str:
    return f"run.part-{part[0]}-of-{part[1]}.lock"


class ObjectLock:
    """A run's lock on a label store on object storage; the same interface as :class:`~labelgen.run_lock.FolderLock`.

    Args:
        url: the store's URL.
        part: ``(k, n)`` for a ``--part K/N`` run, ``None`` for a whole-store run.
        holder: what holds such locks, for the refusal message.
    """

    def __init__(self, url: str, part: tuple[int, int] | None = None, holder: str = "labelgen run"):
        self.url = locations.normalise(url)
        self.part = part
        self.holder = holder
        self.fs, root = locations.filesystem(self.url)
        self.root = root.rstrip("/")
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else tuple(self.fs.protocol)
        if not set(protocols) & set(EXCLUSIVE_CREATE):
            raise StoreError(f"{self.url}: a run needs a lock that only one run can take, which this project makes "
                             f"on S3 (s3://, any S3-compatible server) and in local folders; "
                             f"{protocols[0]}:// stores can be read, not labelled into")
        self.record = {**holder_record(), "id": uuid.uuid4().hex}
        self._held: str | None = None  # the name of the lock object we created

    def _key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def acquire(self) -> "ObjectLock":
        """Take the lock, or raise :class:`~labelgen.run_lock.FolderLocked` naming the run that holds it.

        Raises:
            FolderLocked: another run holds the store (or this part of it), or holds a part of it.
            StoreError: the lock object cannot be created (no such bucket, no permission).
        """
        own = LOCK_OBJECT if self.part is None else part_lock_name(self.part)
        self._create(own)
        try:
            others = self._part_locks() if self.part is None else [LOCK_OBJECT]
            for name in others:
                holder = self._read(name)
                if holder is not None and holder_alive(holder):
                    raise FolderLocked(self._refusal(name, holder))
        except BaseException:
            self.release()
            raise
        return self

    def _create(self, name: str, takeover: bool = True) -> None:
        """Create lock object ``name`` with our record, taking over a stale one once."""
        try:
            with self.fs.open(self._key(name), "xb") as file:
                file.write(json.dumps(self.record).encode())
        except FileExistsError:
            holder = self._read(name)
            if holder is None:  # released between our create and our read: try again
                return self._create(name, takeover)
            if not takeover or holder_alive(holder):
                raise FolderLocked(self._refusal(name, holder)) from None
            self._take_over(name, holder)
            return
        except OSError as error:
            raise StoreError(f"cannot create the run lock {locations.join(self.url, name)}: {error}") from None
        except (ValueError, NotImplementedError) as error:  # an S3-compatible server without conditional puts
            raise StoreError(f"{self.url}: the server cannot create an object only if it does not exist ({error}), "
                             f"so a run could not keep others out") from None
        self._held = name

    def _take_over(self, name: str, stale: dict) -> None:
        """Replace the stale lock ``name`` (its holder died on this host); only one of several runs may."""
        marker = f"{name}.taken-{stale.get('id', 'unknown')}"
        try:
            with self.fs.open(self._key(marker), "xb") as file:
                file.write(json.dumps(self.record).encode())
        except FileExistsError:
            raise FolderLocked(f"{self.url} is in use by another {self.holder}: one is taking over the lock "
                               f"left by a run that died ({describe_holder(stale)})") from None
        self.fs.rm_file(self._key(name))
        self._create(name, takeover=False)

    def _read(self, name: str) -> dict | None:
        """The holder record of lock object ``name``; ``None`` when there is none (``{}`` when unreadable)."""
        try:
            return json.loads(self.fs.cat_file(self._key(name)) or b"{}")
        except FileNotFoundError:
            return None
        except ValueError:
            return {}

    def _part_locks(self) -> list[str]:
        try:
            names = [key.rsplit("/", 1)[-1] for key in self.fs.ls(self.root, detail=False, refresh=True)]
        except FileNotFoundError:
            return []
        return sorted(name for name in names if name.startswith("run.part-") and name.endswith(".lock"))

    def _refusal(self, name: str, holder: dict) -> str:
        return (f"{self.url} is in use by another {holder_kind(name, self.holder)} ({describe_holder(holder)}); wait "
                f"for it to end or stop it (if it is gone, its machine too: 'labelgen unlock {self.url}')")

    def release(self) -> None:
        """Delete our lock object (only if it still holds our record)."""
        if self._held is None:
            return
        name, self._held = self._held, None
        if (self._read(name) or {}).get("id") == self.record["id"]:
            self.fs.rm_file(self._key(name))

    def __enter__(self) -> "ObjectLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_kind(name: str, holder: str) -> str:
    return f"{holder} (part {name.split('-')[1]} of {name.split('-')[3].split('.')[0]})" if name.startswith(
        "run.part-") else holder


def remove_locks(url: str) -> list[str]:
    """Delete every run lock object of the store at ``url`` (``labelgen unlock``); return their names."""
    fs, root = locations.filesystem(locations.normalise(url))
    root = root.rstrip("/")
    try:
        names = [key.rsplit("/", 1)[-1] for key in fs.ls(root, detail=False, refresh=True)]
    except FileNotFoundError:
        return []
    names = sorted(name for name in names if name.startswith("run.") and ".lock" in name)
    for name in names:
        fs.rm_file(f"{root}/{name}")
    return names
