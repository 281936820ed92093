"""The one Zarr schema that joins ``labelgen`` (writer) and ``train`` (reader).

See ``docs/store.md`` for the layout. In short: a Zarr v3 group whose arrays
all have length N, in the order of a manifest fixed at creation (a seeded
shuffle of the source, so every shard mixes identities). The unit of work is
a shard of ``shard_size`` consecutive images: exactly one task writes a
shard's rows of every array, then a completion record
``shards/<index>.json``. A shard without its record is (re)done on resume;
rows are addressed by position, so nothing is ever duplicated. The record
also says what the shard's rows are stored in (chunk keys, sizes, CRC-32C), so
a lost or damaged chunk is found (:meth:`LabelStore.check_shards`, see
:mod:`labelgen.integrity`) and its shard relabelled instead of read as data.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence, TypeVar

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

import labelgen.integrity as integrity
import labelgen.locations as locations
from labelgen.status import Status

T = TypeVar("T")
SCHEMA_VERSION = 1
STORE_KIND = "structure-via-consensus/labels"
CLASS_MEANINGS = {"0": "background (outside the face region)", "1": "visible face",
                  ">=2": "occlusion blob; each connected blob has its own id"}
CONTOUR_VERTICES = 64
DEFAULT_SHARD_SIZE = 256
CHUNK_IMAGES = 64  # images per chunk: the unit of a training read

# Images are photographic: byte-shuffle + zstd. Label maps and statuses are
# long runs of a few small values: bit-shuffle + zstd squeezes them to almost nothing.
IMAGE_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle)
LABEL_CODEC = BloscCodec(cname="zstd", clevel=5, shuffle=BloscShuffle.bitshuffle)
FLOAT_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.shuffle)


class StoreError(Exception):
    """The path is not a label store this code can use, or it does not match the job."""


class StoreDamaged(StoreError):
    """The store is a label store, but part of it is damaged.

    Attributes:
        damaged: shard -> what is wrong with it, where the damage is in shards (empty for metadata).
    """

    def __init__(self, message: str, damaged: dict[int, list[str]] | None = None):
        super().__init__(message)
        self.damaged = damaged or {}


# -- names -----------------------------------------------------------------------------------------
# File names are bytes; Python hands them over as text with undecodable bytes
# as lone surrogates (os.fsdecode), which Zarr's UTF-8 string arrays reject.
# Stored text escapes each such byte as \xNN and a backslash as \\, so the
# common name is stored as it is and every name decodes back exactly.
_ESCAPED = re.compile(rb"\\(\\|x[0-9a-f]{2})")


def encode_name(name: str) -> str:
    """The storable text of a key or locator (any file name, losslessly)."""
    if "\\" not in name:
        try:
            name.encode("utf-8")
            return name
        except UnicodeEncodeError:
            pass
    return os.fsencode(name).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def decode_name(text: str) -> str:
    """Inverse of :func:`encode_name`: the name as ``os.fsdecode`` gives it (the exact path)."""
    if "\\" not in text:
        return text
    raw = _ESCAPED.sub(lambda m: b"\\" if m[1] == b"\\" else bytes([int(m[1][1:], 16)]), text.encode("utf-8"))
    return os.fsdecode(raw)


@dataclass(frozen=True)
class ArraySpec:
    """One per-image array: trailing shape (after N), dtype, fill value and codec."""

    tail: tuple[int, ...]
    dtype: str
    fill: object
    codec: object | None
    description: str


def array_specs(crop_size: int) -> dict[str, ArraySpec]:
    """The schema's per-image arrays for crops of ``crop_size`` pixels."""
    s = crop_size
    nan = float("nan")
    return {
        "image": ArraySpec((s, s, 3), "uint8", 0, IMAGE_CODEC, "aligned RGB face crop"),
        "label": ArraySpec((s, s), "uint8", 0, LABEL_CODEC, "0 background, 1 face, >=2 occlusion blob ids"),
        "status": ArraySpec((), "uint8", int(Status.PENDING), LABEL_CODEC, "labelgen.status.Status code"),
        "identity": ArraySpec((), "int32", -1, LABEL_CODEC, "identity from the source, -1 unknown"),
        "faces_seen": ArraySpec((), "int16", -1, LABEL_CODEC, "faces the detector found"),
        "blobs": ArraySpec((), "uint8", 0, LABEL_CODEC, "number of occlusion blobs in the label"),
        "bbox": ArraySpec((4,), "float32", nan, FLOAT_CODEC, "primary face box x0, y0, x1, y1 (original pixels)"),
        "box_hint": ArraySpec((4,), "float32", nan, FLOAT_CODEC,
                              "face box given by the source (e.g. VGGFace2 CSV), used instead of detection"),
        "pose": ArraySpec((6,), "float32", nan, FLOAT_CODEC, "Rodrigues rotation (3) and translation (3, cm)"),
        "camera": ArraySpec((3,), "float32", nan, FLOAT_CODEC, "intrinsics: focal (px), cx, cy (original pixels)"),
        "contour": ArraySpec((CONTOUR_VERTICES, 2), "float32", nan, FLOAT_CODEC,
                             "projected 64-vertex face contour (original pixels)"),
        "crop_matrix": ArraySpec((2, 3), "float32", nan, FLOAT_CODEC, "affine map original pixels -> crop"),
    }


STRING_ARRAYS = {"key": "source key of the image", "locator": "where the source reads its bytes"}
ARRAY_NAMES = (*array_specs(1), *STRING_ARRAYS)  # every array of the schema
# Written once, from the scan, when the store is created; a shard task writes the others.
MANIFEST_ARRAYS = ("key", "locator", "identity", "box_hint")


class LabelledImage(Protocol):
    """What the store keeps of one image's labelling (:class:`labelgen.chain.LabelResult` is one).

    The store reads these fields by name and imports nothing that makes them.
    Arrays are ``None`` where the chain did not get that far.
    """

    status: Status
    ok: bool
    faces_seen: int
    box: np.ndarray | None  # (4,)
    rotation: np.ndarray | None  # (3, 3); with it rodrigues (3,), translation (3,) and camera (3, 3)
    rodrigues: np.ndarray | None
    translation: np.ndarray | None
    camera: np.ndarray | None
    contour: np.ndarray | None  # (CONTOUR_VERTICES, 2)
    image: np.ndarray | None  # (S, S, 3), when ok
    label: np.ndarray | None  # (S, S), when ok
    blobs: int
    crop: object | None  # has .matrix (2, 3), when ok


def results_to_columns(results: Sequence[LabelledImage], crop_size: int) -> dict[str, np.ndarray]:
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


@dataclass(frozen=True)
class ManifestEntry:
    """One row of the manifest: what the source calls the image and how to read it."""

    key: str
    identity: int
    locator: str
    hint: tuple = ()  # known face box (x0, y0, x1, y1), () when none


def shuffled_order(count: int, seed: int) -> np.ndarray:
    """The order of stores made before :mod:`labelgen.manifest`'s rule (synth's small stores still use it)."""
    return np.random.default_rng(seed).permutation(count)


def shard_slice(index: int, shard_size: int, total: int) -> slice:
    return slice(index * shard_size, min((index + 1) * shard_size, total))


def _create_array(group: zarr.Group, name: str, length: int, shard_size: int, spec: ArraySpec):
    shape = (length,) + spec.tail
    # Shards (files) align with work units; chunks (reads) are smaller and divide them.
    shard_rows = max(1, min(shard_size, length))
    chunk_rows = max(1, min(CHUNK_IMAGES if spec.tail and len(spec.tail) >= 2 else shard_rows, shard_rows))
    while shard_rows % chunk_rows:
        chunk_rows -= 1
    return group.create_array(
        name, shape=shape, dtype=spec.dtype, fill_value=spec.fill,
        chunks=(chunk_rows,) + spec.tail, shards=(shard_rows,) + spec.tail,
        compressors=spec.codec, attributes={"description": spec.description})


def create_store(path: str | Path, entries: Sequence[ManifestEntry], *, crop_size: int, shard_size: int,
                 attributes: dict) -> "LabelStore":
    """Create the group, its arrays and the manifest (key, identity, locator) in manifest order.

    The store is built in a hidden sibling folder and renamed into place, so a
    process killed at any moment leaves either no store or a whole one, never
    a half-made one that every rerun refuses. ``entries`` must already be in
    manifest order: a sequence, or a streamed manifest written a block at a
    time (:class:`labelgen.manifest.SpooledManifest`, whose order rule new runs use).

    On object storage (``path`` a URL) nothing can be renamed: the store is
    built in place and its group attributes (``kind`` and the rest) are written
    last, so a killed creation leaves a group marked ``creating``, which
    :func:`unfinished_creation` recognises and the next creation removes (the
    caller holds the store's run lock, see :mod:`labelgen.object_lock`).

    Raises:
        StoreError: ``path`` exists and is not an empty folder (possibly
            because another process created it first), or its folder is not
            writable.
    """
    if locations.is_url(path):
        return _create_at_url(locations.normalise(path), entries, crop_size=crop_size, shard_size=shard_size,
                              attributes=attributes)
    path = Path(path).absolute()
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise StoreError(f"{path} already exists and is not empty")
    _remove_dead_builds(path)
    building = path.with_name(f"{BUILD_PREFIX.format(name=path.name)}{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        building.mkdir(parents=False)
    except OSError as error:
        raise StoreError(f"cannot create {path}: {error.strerror or error} ({path.parent})") from None
    try:
        _build(building, entries, crop_size=crop_size, shard_size=shard_size, attributes=attributes)
        os.rename(building, path)  # atomic; replaces an empty folder, fails on a non-empty one
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise StoreError(f"{path} already exists and is not empty") from None
        raise
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return LabelStore(path)


def _create_at_url(url: str, entries: Sequence[ManifestEntry], *, crop_size: int, shard_size: int,
                   attributes: dict) -> "LabelStore":
    """:func:`create_store` on object storage: built in place, its attributes last."""
    if unfinished_creation(url):
        remove_store_objects(url)
    elif store_objects(url):
        raise StoreError(f"{url} already exists and is not empty")
    try:
        _build(url, entries, crop_size=crop_size, shard_size=shard_size, attributes=attributes)
    except OSError as error:
        raise StoreError(f"cannot create {url}: {error.strerror or error}") from None
    return LabelStore(url)


def store_objects(url: str) -> list[str]:
    """The objects under ``url``, as keys relative to it, except the run lock's (see :mod:`labelgen.object_lock`)."""
    fs, root = locations.filesystem(url)
    fs.invalidate_cache()  # fsspec caches listings: another process may have written since
    try:
        found = fs.find(root)
    except FileNotFoundError:
        return []
    keys = [key[len(root.rstrip("/")) + 1:] for key in found if key.startswith(root.rstrip("/") + "/")]
    return [key for key in keys if not key.startswith(LOCK_OBJECT_PREFIX)]


LOCK_OBJECT_PREFIX = "run."  # run.lock, run.part-K-of-N.lock and their takeover markers


def unfinished_creation(url: str) -> bool:
    """Whether ``url`` holds a store whose creation on object storage was cut off (see :func:`create_store`)."""
    fs, root = locations.filesystem(url)
    try:
        document = json.loads(fs.cat_file(f"{root.rstrip('/')}/zarr.json"))
    except (FileNotFoundError, ValueError):
        return False
    return bool(document.get("attributes", {}).get("creating"))


def remove_store_objects(url: str) -> None:
    """Delete the objects of the store at ``url``, except the run lock the caller holds."""
    fs, root = locations.filesystem(url)
    keys = [f"{root.rstrip('/')}/{key}" for key in store_objects(url)]
    if keys:
        fs.rm(keys)


MANIFEST_BLOCK_ROWS = 65_536  # about this many manifest rows are written at once (a whole number of shards)


def _manifest_blocks(entries, block_rows: int) -> Iterable[tuple[int, Sequence[ManifestEntry]]]:
    """``(first row, entries)`` blocks of a manifest: a streamed one's own (``entries.blocks``, see
    :class:`labelgen.manifest.SpooledManifest`), or slices of a sequence."""
    if hasattr(entries, "blocks"):
        return entries.blocks(block_rows)
    return ((first, entries[first:first + block_rows]) for first in range(0, len(entries), block_rows))


def _write_manifest_rows(group: zarr.Group, first: int, entries: Sequence[ManifestEntry]) -> None:
    """Write the manifest arrays (key, locator, identity, box hint) of rows ``first`` onwards."""
    rows = slice(first, first + len(entries))
    for name in STRING_ARRAYS:
        group[name][rows] = np.array([encode_name(getattr(entry, name)) for entry in entries], dtype=object).astype(str)
    group["identity"][rows] = np.array([entry.identity for entry in entries], np.int32)
    hints = np.full((len(entries), 4), np.nan, np.float32)
    for row, entry in enumerate(entries):
        if entry.hint:
            hints[row] = entry.hint
    group["box_hint"][rows] = hints


BUILD_PREFIX = ".{name}.creating-"  # + host-pid: a store being built, renamed into place when whole


def _remove_dead_builds(path: Path) -> None:
    """Delete build folders left beside ``path`` by killed processes of this host."""
    prefix = BUILD_PREFIX.format(name=path.name) + socket.gethostname() + "-"
    for leftover in path.parent.glob(glob_escape(prefix) + "*"):
        pid = leftover.name[len(prefix):]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:  # 0 and negative ids name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _build(path: Path | str, entries: Sequence[ManifestEntry], *, crop_size: int, shard_size: int,
           attributes: dict) -> None:
    # "creating" until the attributes are written, last (on object storage a cut-off build stays recognisable)
    # (mode "a": on object storage the prefix already holds the run lock's object)
    group = zarr.open_group(locations.zarr_store(str(path), read_only=False), mode="a", zarr_format=3,
                            attributes={"creating": True})
    count = len(entries)
    for name, spec in array_specs(crop_size).items():
        _create_array(group, name, count, shard_size, spec)
    for name, description in STRING_ARRAYS.items():
        group.create_array(name, shape=(count,), dtype=str, chunks=(max(1, min(shard_size, count)),),
                           attributes={"description": description})
    block_rows = shard_size * max(1, MANIFEST_BLOCK_ROWS // shard_size)  # whole shards: no shard written twice
    for first, block in _manifest_blocks(entries, block_rows):
        _write_manifest_rows(group, first, block)
    group.attrs.put({
        "kind": STORE_KIND, "schema_version": SCHEMA_VERSION, "count": count, "crop_size": crop_size,
        "shard_size": shard_size, "classes": CLASS_MEANINGS,
        "status_codes": {status.label: int(status) for status in Status},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **attributes,
    })
    if not locations.is_url(str(path)):
        (path / "shards").mkdir()


@dataclass(frozen=True)
class ShardCheck:
    """What :meth:`LabelStore.check_shards` found among the done shards (those with a completion record).

    Attributes:
        checked: the done shards looked at.
        damaged: shard -> what is wrong with it, one phrase per chunk (``image/c/3/0/0/0 missing``)
            or its unreadable completion record.
        unverifiable: done shards whose records describe no chunks (made before labelgen recorded
            them): nothing to compare with, which is not damage.
    """

    checked: list[int]
    damaged: dict[int, list[str]]
    unverifiable: list[int]

    def manifest_damage(self) -> dict[int, list[str]]:
        """The damage relabelling cannot undo: chunks of the manifest arrays, written once from the scan."""
        found = {index: [p for p in problems if p.split("/", 1)[0] in MANIFEST_ARRAYS]
                 for index, problems in self.damaged.items()}
        return {index: problems for index, problems in found.items() if problems}

    def describe(self, limit: int = 3) -> str:
        """The first damaged shards with their first problem (see :func:`describe_damage`)."""
        return describe_damage(self.damaged, limit)


def describe_damage(damaged: dict[int, list[str]], limit: int = 3) -> str:
    """The first ``limit`` damaged shards with their first problem.

    Example:
        >>> describe_damage({2: ["status/c/2 missing"], 5: ["image/c/5/0/0/0 missing", "label/c/5/0/0 missing"]})
        'shard 2 (status/c/2 missing), shard 5 (image/c/5/0/0/0 missing, ...)'
    """
    shown = [f"shard {index} ({problems[0]}{', ...' if len(problems) > 1 else ''})"
             for index, problems in sorted(damaged.items())[:limit]]
    more = len(damaged) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def repair_metadata(path: str | Path) -> list[str]:
    """Restore every array's damaged ``zarr.json`` from the group's consolidated copy; return the arrays restored.

    Raises:
        StoreDamaged: an array's metadata is damaged and the store keeps no copy of it.
    """
    store = zarr.open_group(locations.zarr_store(str(path), read_only=False), mode="r+", zarr_format=3).store
    damaged = integrity.metadata_problems(store, ARRAY_NAMES)
    lost = [problem for name, problem in damaged.items() if not integrity.restore_metadata(store, name)]
    if lost:
        raise StoreDamaged(f"{path} has damaged metadata that it keeps no copy of ({'; '.join(lost)}): "
                           f"it was never finished and consolidated; label the corpus into a new --out")
    return sorted(damaged)


def _metadata_damage(path: Path, store, damaged: dict[str, str]) -> StoreDamaged:
    kept = all(integrity.consolidated_copy(store, name) is not None for name in damaged)
    remedy = (f"'labelgen verify {path} --repair' restores it from the copy the store keeps" if kept else
              "the store keeps no copy of it (it was never finished): label the corpus into a new --out")
    return StoreDamaged(f"{path} has damaged metadata: {'; '.join(damaged.values())}; {remedy}")


class LabelStore:
    """A label store on disk: shard bookkeeping, writes of whole shards, and reads.

    Reads never touch the shards given to :meth:`skip_shards` (or found damaged by
    :meth:`skip_damaged`): their rows read as the fill value, and their status as
    :attr:`~labelgen.status.Status.DAMAGED`.

    Everything it reads and writes, completion records included, goes through
    the Zarr store, so a store on object storage (a URL, see
    :mod:`labelgen.locations`) works as a folder does.

    Args:
        path: the store folder, or its URL.
        mode: ``"r"`` to read, ``"r+"`` to write shards.

    Attributes:
        path: the store as given (a :class:`~pathlib.Path` for a folder, the URL for object storage), for messages.
        location: the store's absolute path or URL, as text (what Dask workers are given).

    Raises:
        StoreError: ``path`` is not a label store of this schema version.
        StoreDamaged: it is one, but the metadata of an array is damaged.
    """

    def __init__(self, path: str | Path, mode: str = "r+"):
        self.path = str(path).rstrip("/") if locations.is_url(path) else Path(path)
        self.location = locations.normalise(path)
        try:
            store = locations.zarr_store(self.location, read_only=mode == "r")
            found = integrity.run(store.exists("zarr.json"))
        except (OSError, ValueError) as error:
            raise StoreError(f"{self.path} cannot be read: {str(error).splitlines()[0] if str(error) else error}"
                             ) from None
        if not found:
            raise StoreError(f"{self.path} is not a Zarr v3 label store (no zarr.json); "
                             f"create one with 'labelgen run --out {self.path}'")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.group = zarr.open_group(store, mode=mode, zarr_format=3)
        except Exception as error:
            raise StoreError(f"{self.path} cannot be opened as a Zarr v3 group: "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
        attrs = dict(self.group.attrs)
        if attrs.get("kind") != STORE_KIND:
            raise StoreError(f"{self.path} is a Zarr group but not a label store (kind={attrs.get('kind')!r})")
        if attrs.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {attrs.get('schema_version')}, "
                             f"this code reads version {SCHEMA_VERSION}")
        # Readers of a consolidated store never look at an array's own metadata; a writer
        # does. Checked here, so that every command says the same one thing about it.
        damaged = integrity.metadata_problems(self.group.store, ARRAY_NAMES)
        if damaged:
            raise _metadata_damage(self.path, self.group.store, damaged)
        self.attrs = attrs
        self.count: int = attrs["count"]
        self.crop_size: int = attrs["crop_size"]
        self.shard_size: int = attrs["shard_size"]
        self.skipped: frozenset[int] = frozenset()  # shards whose rows reads do not touch
        self.damage: dict[int, list[str]] = {}  # what is wrong with the damaged shards found so far
        self.lock = None  # the run's labelgen.run_lock.FolderLock, when the opener holds it (see labelgen.run.job)

    # -- shards -------------------------------------------------------------------------------
    @property
    def shard_count(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_rows(self, index: int) -> slice:
        return shard_slice(index, self.shard_size, self.count)

    def images_in(self, shards: Iterable[int]) -> int:
        """How many images (rows) these shards hold together (the last shard may be short)."""
        return sum(len(range(*self.shard_rows(index).indices(self.count))) for index in shards)

    @staticmethod
    def _record_key(index: int) -> str:
        return f"shards/{index:06d}.json"

    def done_shards(self) -> set[int]:
        """Shards with a completion record (:meth:`check_shards` says whether what they wrote is still there)."""
        names = [key.rsplit("/", 1)[-1] for key in integrity.list_keys(self.group.store, "shards/")]
        return {int(name[:-5]) for name in names if name.endswith(".json") and name[:-5].isdigit()}

    def pending_shards(self) -> list[int]:
        done = self.done_shards()
        return [i for i in range(self.shard_count) if i not in done]

    def completeness(self) -> dict:
        """How far labelling got: intact shards done, damaged ones, the total, rows per status.

        Damaged shards (the cheap check of :meth:`check_shards`) are skipped from
        then on (:meth:`skip_shards`): their rows count as ``damaged``.
        """
        check = self.skip_damaged()
        done = len(check.checked) - len(check.damaged)
        return {"path": self.location, "shards_done": done, "shards": self.shard_count,
                "shards_damaged": sorted(check.damaged), "complete": done == self.shard_count,
                "counts": self.summary()}

    def check_complete(self, allow_incomplete: bool = False) -> dict:
        """:meth:`completeness`, refusing a store with pending or damaged shards unless ``allow_incomplete``.

        A consumer (training, evaluation) would otherwise use whatever part is
        labelled without a word (a biased sample of the corpus), or read a lost
        chunk as black images. With ``allow_incomplete`` this store's reads skip
        the damaged shards.

        Raises:
            StoreError: shards are pending or damaged and not ``allow_incomplete``.
        """
        state = self.completeness()
        if allow_incomplete:
            return state
        if self.damage:
            raise StoreError(f"{self.path} has {len(self.damage)} damaged shard{'s' * (len(self.damage) > 1)}: "
                             f"{describe_damage(self.damage)}; {self.repair_advice(len(self.damage))}, or pass "
                             f"--allow-incomplete to use the intact shards only")
        if not state["complete"]:
            raise StoreError(f"{self.path} is incomplete: {state['shards_done']} of {state['shards']} shards "
                             f"labelled ({state['counts'].get(Status.PENDING.label, 0)} images pending); finish "
                             f"it by running the same 'labelgen run' command again, or pass --allow-incomplete "
                             f"to use the labelled part only")
        return state

    def run_command(self) -> str:
        """The ``labelgen run`` command of this store's job: it labels the store's pending shards."""
        job = self.attrs.get("job", {})
        words = ["labelgen", "run", "--source", str(job.get("source"))]
        words += ["--root", str(job["root"])] if job.get("root") is not None else []
        for name, value in job.get("source_options", {}).items():
            words += ["--source-option", f"{name}={str(value).lower() if isinstance(value, bool) else value}"]
        words += ["--out", str(self.path)]
        config = job.get("config", {})
        words += ["--teacher", str(config["teacher"])] if "teacher" in config else []
        words += ["--crop-size", str(config["crop_size"])] if "crop_size" in config else []
        words += ["--seed", str(job["seed"])] if job.get("seed") else []
        return shlex.join(words)

    def repair_advice(self, shards: int) -> str:
        """The two commands that relabel ``shards`` damaged shards."""
        return (f"'labelgen verify {self.path} --repair' and then '{self.run_command()}' relabel "
                f"{'them' if shards > 1 else 'it'}")

    def shard_record(self, index: int) -> dict:
        """Shard ``index``'s completion record.

        Raises:
            FileNotFoundError: it has none. ValueError: it is not JSON.
        """
        document = integrity.run(self.group.store.get(self._record_key(index), prototype=integrity.BUFFERS))
        if document is None:
            raise FileNotFoundError(f"{self._record_key(index)} missing")
        return json.loads(document.to_bytes())

    def shard_chunk_keys(self, index: int, names: Iterable[str] = ARRAY_NAMES) -> list[str]:
        """The store keys of the chunks that hold shard ``index``'s rows of the arrays ``names``."""
        return integrity.chunk_keys(self.group, names, self.shard_rows(index))

    def mark_shard_done(self, index: int, record: dict) -> None:
        """Write the completion record atomically (it exists whole or not at all), with what the shard's rows are
        stored in: every array's chunk key, with the size and CRC-32C of its stored bytes."""
        record = {**record, "chunks": integrity.describe_chunks(self.group.store, self.shard_chunk_keys(index))}
        if locations.is_url(self.location):  # an object is written whole or not at all
            integrity.run(self.group.store.set(self._record_key(index), integrity.BUFFERS.buffer.from_bytes(
                json.dumps(record, indent=1).encode())))
            return
        target = Path(self.location, self._record_key(index))
        temporary = target.with_suffix(f".tmp{os.getpid()}")
        try:
            temporary.write_text(json.dumps(record, indent=1))
            os.replace(temporary, target)
        finally:  # a full disk: no half-written record left beside the others
            temporary.unlink(missing_ok=True)

    def mark_shard_pending(self, index: int) -> None:
        """Make shard ``index`` pending again, as if it had never been labelled (for a damaged shard).

        The record goes first, so the shard is pending from then on whatever
        happens next; then the chunks the shard task wrote (the manifest's stay:
        relabelling reads them).
        """
        integrity.run(self.group.store.delete(self._record_key(index)))
        for key in self.shard_chunk_keys(index, [name for name in ARRAY_NAMES if name not in MANIFEST_ARRAYS]):
            integrity.run(self.group.store.delete(key))

    def check_shards(self, full: bool = False, shards: Iterable[int] | None = None,
                     names: Iterable[str] = ARRAY_NAMES) -> ShardCheck:
        """Compare what the done shards (or the done ones of ``shards``) recorded with what the store holds.

        Args:
            full: read every chunk and compare its CRC-32C, and read the rows of
                shards made before checksums were recorded (``labelgen verify``);
                otherwise only presence and sizes are checked, no bytes read.
            shards: the shards to check; all by default.
            names: the arrays whose chunks to check; all by default.
        """
        names = tuple(names)
        done = self.done_shards()
        checked = sorted(done if shards is None else done & set(shards))
        recorded, damaged, unverifiable = {}, {}, []
        for index in checked:
            try:
                record = self.shard_record(index)
                recorded[index] = record["chunks"] if "chunks" in record else None
            except (OSError, ValueError, TypeError) as error:  # unreadable, not JSON, not an object
                damaged[index] = [f"completion record unreadable ({type(error).__name__}: {error})"]
                continue
            if recorded[index] is None:
                del recorded[index]
                unverifiable.append(index)
            else:
                recorded[index] = {key: chunk for key, chunk in recorded[index].items() if key.split("/")[0] in names}
        damaged.update(integrity.check_many(self.group.store, recorded, full))
        if full:
            for index in unverifiable:
                problems = self._read_through(index, names)
                if problems:
                    damaged[index] = problems
        return ShardCheck(checked, dict(sorted(damaged.items())), unverifiable)

    def _read_through(self, index: int, names: Iterable[str] = ARRAY_NAMES) -> list[str]:
        """What fails when shard ``index``'s rows of the arrays ``names`` are read (for shards without chunk records)."""
        rows, problems = self.shard_rows(index), []
        for name in names:
            try:
                values = self.group[name][rows]
            except Exception as error:  # a codec's or the store's error: the chunk cannot be decoded
                problems.append(f"{name} rows {rows.start}-{rows.stop} unreadable ({type(error).__name__}: {error})")
                continue
            if name == "status" and (values == Status.PENDING).any():
                problems.append(f"status rows {rows.start}-{rows.stop}: pending in a done shard (status chunk lost)")
        return problems

    def skip_shards(self, shards: Iterable[int]) -> "LabelStore":
        """From now on, reads do not touch ``shards``: their rows read as fill values, their status as ``damaged``."""
        self.skipped = frozenset(int(index) for index in shards)
        return self

    def skip_damaged(self) -> ShardCheck:
        """Check the done shards (cheaply, see :meth:`check_shards`) and skip the damaged ones; return the check.

        :attr:`damage` says what is wrong with them.
        """
        check = self.check_shards()
        self.damage = dict(check.damaged)
        self.skip_shards(check.damaged)
        return check

    def read_skipping_damage(self, read: Callable[[], T]) -> T:
        """``read()``, again without the shards each failed attempt found damaged, until it goes through.

        For readers that show a store as it is (``stats``, ``report``): damage
        the cheap check cannot see (changed bytes of the recorded size) is
        found when a chunk fails to decode; its shard joins :attr:`damage` and
        is skipped like the others.
        """
        while True:
            try:
                return read()
            except StoreDamaged as error:
                if not error.damaged:
                    raise
                self.damage.update(error.damaged)
                self.skip_shards(self.skipped | error.damaged.keys())

    def manifest(self, rows: slice) -> list[ManifestEntry]:
        keys, identities, locators = self.read("key", rows), self.read("identity", rows), self.read("locator", rows)
        hints = self.read("box_hint", rows)
        return [ManifestEntry(decode_name(str(k)), int(i), decode_name(str(loc)),
                              tuple(map(float, h)) if np.isfinite(h).all() else ())
                for k, i, loc, h in zip(keys, identities, locators, hints)]

    def write_rows(self, rows: slice, columns: dict[str, np.ndarray]) -> None:
        """Write whole-shard columns (one task per shard: no two writers share a shard file)."""
        for name, values in columns.items():
            self.group[name][rows] = values

    # -- reading ------------------------------------------------------------------------------
    def status(self) -> np.ndarray:
        return self.read("status", slice(None))

    def ok_indices(self) -> np.ndarray:
        return np.flatnonzero(self.status() == Status.OK)

    def read(self, name: str, rows: slice | np.ndarray) -> np.ndarray:
        """Rows of array ``name``: a slice, or an index array (rows of skipped shards are not read).

        Raises:
            StoreDamaged: a chunk cannot be decoded, and the full check of the
                shards read confirms it (damage the cheap check does not see,
                such as changed bytes of the recorded size); names the shards.
        """
        try:
            return self._read(name, rows)
        except Exception as error:  # a codec's or the store's error: which shard, if the store is to blame?
            touched = np.unique((np.arange(self.count)[rows] if isinstance(rows, slice) else np.asarray(rows))
                                // self.shard_size)
            damaged = self.check_shards(full=True, shards=set(touched.tolist()) - self.skipped, names=[name]).damaged
            if not damaged:
                raise
            raise StoreDamaged(f"{self.path}: {describe_damage(damaged)}; {self.repair_advice(len(damaged))}",
                               damaged) from error

    def _read(self, name: str, rows: slice | np.ndarray) -> np.ndarray:
        array = self.group[name]
        if self.skipped:
            indices = np.arange(self.count)[rows] if isinstance(rows, slice) else np.asarray(rows, np.int64)
            hidden = np.isin(indices // self.shard_size, np.fromiter(self.skipped, np.int64))
            if hidden.any():
                fill = Status.DAMAGED if name == "status" else array.fill_value
                values = np.full((len(indices), *array.shape[1:]), fill, dtype=array.dtype)
                if not hidden.all():
                    values[~hidden] = array.get_orthogonal_selection((indices[~hidden],))
                return values
        return array[rows] if isinstance(rows, slice) else array.get_orthogonal_selection((np.asarray(rows),))

    def summary(self) -> dict:
        """Counts per status, over all shards (pending rows included; rows of skipped shards as ``damaged``)."""
        codes, counts = np.unique(self.status(), return_counts=True)
        return {Status(int(c)).label: int(n) for c, n in zip(codes, counts)}

    def stored_bytes(self, names: Iterable[str] | None = None) -> dict[str, int]:
        names = list(names) if names else list(ARRAY_NAMES)
        fs, root = locations.filesystem(self.location)
        fs.invalidate_cache()  # fsspec caches listings
        return {name: int(fs.du(f"{root.rstrip('/')}/{name}")) for name in names}

    def consolidate(self, summary: dict) -> None:
        """Record the final summary in the attributes and consolidate the metadata."""
        self.group.attrs.update({"summary": summary})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated metadata is not (yet) in the v3 spec
            zarr.consolidate_metadata(self.group.store)
