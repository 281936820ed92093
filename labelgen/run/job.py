"""What a run labels (:class:`Job`), and its store: created once, then only ever resumed by the same job.

:func:`prepare_store` scans the source once, fixes the manifest (a seeded
permutation, streamed through disk: see :mod:`labelgen.manifest`) and
creates the store; on an existing store it checks that the job
is the same one and otherwise refuses.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from labelgen import locations
from labelgen.chain import ChainConfig, as_recorded_before_the_options
from labelgen.manifest import ORDER_RULE, SpooledManifest
from labelgen.model_files import centerface_path, face_landmarker_path, file_sha256
from labelgen.run_lock import FolderLock, lock_for
from labelgen.sources import Source, open_source
from labelgen.store import (DEFAULT_SHARD_SIZE, LabelStore, ShardCheck, StoreDamaged, StoreError,
                            create_store, describe_damage, remove_store_objects, store_objects,
                            unfinished_creation)
from labelgen.teachers import resolve


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


def shards_of_part(shards: Iterable[int], part: tuple[int, int] | None) -> list[int]:
    """The shards of ``--part K/N`` ``(k, n)``: those ``i`` with ``i % n == k`` (all of them for ``None``).

    Example:
        >>> shards_of_part(range(7), (1, 3)), shards_of_part([4, 5], None)
        ([1, 4], [4, 5])
    """
    return [index for index in shards if part is None or index % part[1] == part[0]]


def _normalise(values):
    """JSON round trip, so tuples and lists compare equal."""
    return json.loads(json.dumps(values))


def model_file_records(config: ChainConfig) -> dict:
    """Path and sha256 of every model file the chain loads (the teacher's too, when it has one)."""
    files = {"centerface.onnx": centerface_path(), "face_landmarker.task": face_landmarker_path()}
    teacher = resolve(config.teacher).file()
    if teacher is not None:
        files["teacher"] = teacher
    return {name: {"path": str(path), "sha256": file_sha256(str(path))} for name, path in files.items()}


def prepare_store(out: str | Path, job: Job, overwrite: bool = False, progress: bool = True, *, lock: bool = False,
                  part: tuple[int, int] | None = None, slots: int = 1) -> LabelStore:
    """Create the store for ``job`` at ``out``, or reopen it to resume.

    Creation is atomic (see :func:`~labelgen.store.create_store`): a killed
    creation leaves no store, and the rerun starts again.

    On object storage (``out`` a URL) the run lock is taken first, before
    the store is looked at or created: nothing there is atomic but the lock
    object itself (see :mod:`labelgen.object_lock`).

    Args:
        out: the store folder (made absolute: Dask workers have their own
            working directory), or its URL (``s3://bucket/labels.zarr``).
        job: what to label; a ``shard_size`` of ``None`` is chosen for the
            corpus and ``slots`` (see :meth:`Job.sized`), or taken from the
            store being resumed.
        overwrite: replace a store of another job (or a Zarr group that is not
            a label store). Other folders are never deleted.
        progress: show a progress bar while scanning.
        lock: return with the store's run lock held (``store.lock``, a
            :class:`~labelgen.run_lock.FolderLock`; release it when done).
        part: the ``--part`` this run does, for the lock.
        slots: parallel tasks of the run (workers x threads), for the adaptive shard size.

    Raises:
        StoreError: ``out`` is a file, a non-empty folder that is not a label
            store, a store of another job (and not ``overwrite``), or cannot
            be written. :class:`~labelgen.run_lock.FolderLocked` when another run
            holds the store.
    """
    out = locations.normalise(out)
    if lock and locations.is_url(out):
        held = lock_for(out, part).acquire()
        try:
            store = prepare_store(out, job, overwrite, progress, lock=False, part=part, slots=slots)
        except BaseException:
            held.release()
            raise
        store.lock = held
        return store
    if _holds_a_store(out):
        store = _reopen(out, job, overwrite, lock, part)
        if store is not None:
            return store
    source = job.open_source()
    with _scan(source, job.seed, progress) as manifest:
        job = job.sized(len(manifest), slots)
        attributes = {
            "job": _normalise(job.fingerprint()), "source": source.describe(), "config": job.config.to_dict(),
            "models": model_file_records(job.config), "teacher": resolve(job.config.teacher).record(),
            "manifest_order": ORDER_RULE.format(seed=job.seed), "scan_report": source.scan_report.to_dict(),
        }
        try:
            store = create_store(out, manifest, crop_size=job.config.crop_size, shard_size=job.shard_size,
                                 attributes=attributes)
        except StoreError:
            if not _holds_a_store(out):
                raise
            return _reopen(out, job, False, lock, part)  # another run created it meanwhile: resume it (or refuse)
    if lock:
        store.lock = lock_for(out, part).acquire()
    return store


def reset_damaged_shards(store: LabelStore, part: tuple[int, int] | None = None,
                         check: ShardCheck | None = None) -> ShardCheck:
    """Make the damaged done shards of ``part`` pending again, so that the next run relabels them; return the check.

    Args:
        store: the store, opened for writing, with its run lock held.
        part: the ``--part`` whose shards to check; all by default.
        check: what a check already found (``labelgen verify``'s full one); by default the cheap
            check (chunks present, sizes as recorded) runs here.

    Raises:
        StoreDamaged: chunks of the manifest (keys, locators, identities, box hints) are damaged: they hold
            what the scan of the source found, which relabelling cannot restore.
    """
    if check is None:
        check = store.check_shards(shards=shards_of_part(range(store.shard_count), part))
    lost = check.manifest_damage()
    if lost:
        raise StoreDamaged(f"{store.path}: the manifest of {len(lost)} shard{'s' * (len(lost) > 1)} is damaged "
                           f"({describe_damage(lost)}): it holds what the scan of the "
                           f"source found, which relabelling cannot restore; label the corpus into a new --out")
    for index in check.damaged:
        store.mark_shard_pending(index)
    return check


def _holds_a_store(out: str) -> bool:
    """Whether ``out`` holds a Zarr store; ``False`` when it is free to create one.

    Raises:
        StoreError: ``out`` is something a store cannot be made in (a file, a
            non-empty folder without ``zarr.json``): never deleted, whatever
            the options, since it may be anything.
    """
    if locations.is_url(out):
        return _holds_a_store_at_url(out)
    out = Path(out)
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


def _holds_a_store_at_url(out: str) -> bool:
    """:func:`_holds_a_store` on object storage (a store whose creation was cut off is none: it is built again)."""
    try:
        keys = store_objects(out)
    except (OSError, ValueError) as error:
        raise StoreError(f"cannot use {out}: {str(error).splitlines()[0] if str(error) else error}") from None
    if not keys or unfinished_creation(out):
        return False
    if "zarr.json" in keys:
        return True
    raise StoreError(f"{out} holds other objects, not a label store; give a new URL as --out")


def _reopen(out: str, job: Job, overwrite: bool, lock: bool, part: tuple[int, int] | None) -> LabelStore | None:
    """The store at ``out`` if it is ``job``'s (locked when asked); ``None`` once ``overwrite`` deleted it."""
    try:
        store = LabelStore(out)
    except StoreDamaged:
        raise  # a label store, damaged: never replaced, whatever the options ('labelgen verify' says what to do)
    except StoreError as error:
        if not overwrite:
            raise StoreError(f"{error}; use another --out, or --overwrite to replace it") from None
        store = None
    changed = _job_differences(store, job) if store is not None else None
    if changed == []:
        if lock:
            store.lock = lock_for(out, part).acquire()
        return store
    if not overwrite:
        raise StoreError(f"{out} was made by a different job (differs in: {', '.join(changed)}); "
                         f"use another --out, or --overwrite to start it again")
    if locations.is_url(out):
        remove_store_objects(out)  # prepare_store holds the run lock of a store on object storage
        return None
    with FolderLock(out):  # never delete a store another run is working on
        shutil.rmtree(out)
    return None


def stored_settings(out: str | Path) -> dict:
    """The labelling settings (``teacher``, ``detector``, ``max_pixels``, ...) of the label store at ``out``,
    read once (a store made before an option: its value then); ``{}`` when ``out`` holds no readable store."""
    try:
        config = LabelStore(locations.normalise(out), mode="r").attrs["job"]["config"]
        return as_recorded_before_the_options(config)
    except Exception:  # no store, or not one of ours: prepare_store says what is wrong with it
        return {}


def stored_setting(out: str | Path, name: str):
    """The labelling setting ``name`` of the label store at ``out`` (see :func:`stored_settings`);
    ``None`` when ``out`` holds no readable store."""
    return stored_settings(out).get(name)


def stored_detector(out: str | Path) -> str | None:
    """The detector of the label store at ``out``; see :func:`stored_setting`."""
    return stored_setting(out, "detector")


def _job_differences(store: LabelStore, job: Job) -> list[str]:
    """What differs between ``job`` and the job that made ``store`` (a job without a shard size takes the store's).

    A store made before the ``detector`` or ``max_pixels`` option records no such setting: it
    was made with the value then, and compares as such (:func:`~labelgen.chain.as_recorded_before_the_options`).
    """
    stored = _normalise(store.attrs.get("job", {}))
    if isinstance(stored.get("config"), dict):
        stored["config"] = as_recorded_before_the_options(stored["config"])
    if job.shard_size is None:
        job = dataclasses.replace(job, shard_size=stored.get("shard_size"))
    wanted = _normalise(job.fingerprint())
    return sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))


def _scan(source: Source, seed: int, progress: bool) -> SpooledManifest:
    """The source's entries, spooled to disk to be handed out in manifest order (a block in memory at a time)."""
    from tqdm import tqdm

    manifest = SpooledManifest(tqdm(source.scan(), desc=f"scanning {source.name}", unit=" files",
                                    disable=not progress), seed)
    if not len(manifest):
        manifest.close()
        raise StoreError(f"source {source.name} at {source.root} has no images")
    return manifest
