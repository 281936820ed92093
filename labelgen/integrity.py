"""What a shard wrote, and whether it is still there: the chunk checks of a label store.

A shard task writes its rows of every array, then its completion record. The
record lists what the shard's rows are stored in: one Zarr chunk key per array
(the store's Zarr shards align with the work shards), with the size and CRC-32C
of its bytes as stored, or ``null`` for a chunk Zarr did not store because
every value in it is the fill value (a shard of failed images has no ``image``
chunk). Checking a shard compares the store with that record:

- **cheap** (``labelgen run`` when it resumes, ``stats``, ``report``, training):
  every recorded key is there with its recorded size, and every ``null`` key is
  absent; one size query per chunk, no bytes read;
- **full** (``labelgen verify``): the bytes are read and their CRC-32C compared.

A record without chunk descriptions (a store made before they were recorded)
leaves its shard *unverifiable*, which is not damage. Everything goes through
the Zarr store API (``get``, ``getsize``), so the checks work on any Zarr store,
a folder or object storage. This module knows Zarr, not faces or the schema.

Example:
    >>> import numpy as np, zarr
    >>> group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    >>> group.create_array("status", shape=(8,), dtype="uint8", chunks=(4,), fill_value=255)[:4] = 0
    >>> recorded = describe_chunks(group.store, chunk_keys(group, ["status"], slice(0, 8)))
    >>> recorded["status/c/0"]["bytes"] > 0, recorded["status/c/1"]  # rows 4-7 hold only the fill value
    (True, None)
    >>> check_chunks(group.store, recorded, full=True)
    []
    >>> _ = run(group.store.delete("status/c/0"))
    >>> check_chunks(group.store, recorded, full=False)
    ['status/c/0 missing']
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

import google_crc32c
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync

BUFFERS = default_buffer_prototype()  # how the store hands over and takes bytes
CHECKSUM = "crc32c"  # of the stored (encoded) bytes of a chunk
CONCURRENT_KEYS = 256  # store queries in flight at once (object storage answers them in parallel)

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one of the Zarr store's coroutines from synchronous code (on Zarr's own event loop)."""
    return sync(coroutine)


def _gather(coroutines: list[Coroutine]) -> list:
    """Results of ``coroutines`` in order, at most :data:`CONCURRENT_KEYS` at a time; an exception is a result."""
    async def bounded() -> list:
        limit = asyncio.Semaphore(CONCURRENT_KEYS)

        async def one(coroutine: Coroutine):
            async with limit:
                return await coroutine

        return await asyncio.gather(*(one(c) for c in coroutines), return_exceptions=True)

    return run(bounded())


def list_keys(store, prefix: str) -> list[str]:
    """The keys of ``store`` that start with ``prefix`` (the completion records: ``"shards/"``)."""
    async def listed() -> list[str]:
        return [key async for key in store.list_prefix(prefix)]

    return run(listed())


def chunk_keys(group: zarr.Group, names: Iterable[str], rows: slice) -> list[str]:
    """The store keys of the chunks (Zarr shards, where sharded) that hold ``rows`` of each array in ``names``.

    Arrays are chunked along their first axis only, so a row range maps to a
    run of chunk coordinates ``(c, 0, ..., 0)``.
    """
    keys = []
    for name in names:
        array = group[name]
        per_chunk = (array.shards or array.chunks)[0]
        zeros = (0,) * (array.ndim - 1)
        for chunk in range(rows.start // per_chunk, -(-rows.stop // per_chunk)):
            keys.append(f"{array.path}/{array.metadata.encode_chunk_key((chunk, *zeros))}")
    return keys


async def _describe(store, key: str) -> dict | None:
    value = await store.get(key, prototype=default_buffer_prototype())
    if value is None:
        return None
    data = value.to_bytes()
    return {"bytes": len(data), CHECKSUM: google_crc32c.value(data)}


def describe_chunks(store, keys: Iterable[str]) -> dict[str, dict | None]:
    """``{key: {"bytes": n, "crc32c": c} or None}``: what is stored under each key (``None``: nothing).

    Raises:
        OSError: a chunk cannot be read.
    """
    keys = list(keys)
    described = _gather([_describe(store, key) for key in keys])
    for result in described:
        if isinstance(result, BaseException):
            raise result
    return dict(zip(keys, described))


async def _stored_size(store, key: str) -> int | None:
    try:
        return await store.getsize(key)
    except FileNotFoundError:
        return None


def _problem(key: str, recorded: dict | None, stored) -> str | None:
    """What is wrong with ``key`` given its record and what the store answered (a size, a description, an error)."""
    if isinstance(stored, BaseException):
        return f"{key} unreadable ({type(stored).__name__}: {stored})"
    size = stored["bytes"] if isinstance(stored, dict) else stored
    if recorded is None:
        return None if size is None else f"{key} stored ({size} bytes) but recorded as all fill value"
    if size is None:
        return f"{key} missing"
    if size != recorded["bytes"]:
        return f"{key} {size} bytes, recorded {recorded['bytes']}{' (truncated)' if size < recorded['bytes'] else ''}"
    if isinstance(stored, dict) and stored[CHECKSUM] != recorded[CHECKSUM]:
        return f"{key} checksum mismatch ({CHECKSUM} {stored[CHECKSUM]:08x}, recorded {recorded[CHECKSUM]:08x})"
    return None


def check_many(store, recorded: Mapping[int, Mapping[str, dict | None]], full: bool) -> dict[int, list[str]]:
    """:func:`check_chunks` of several shards at once (``{shard: its recorded chunks}``); only damaged ones return.

    The queries of many shards go out together, so that a store with tens of
    thousands of shards is checked in seconds (and on object storage, in parallel).
    A full check reads the bytes of a few shards at a time, to bound memory.
    """
    shards = list(recorded)
    per_batch = 4 if full else 256
    damaged: dict[int, list[str]] = {}
    for first in range(0, len(shards), per_batch):
        batch = [(shard, key, chunk) for shard in shards[first:first + per_batch]
                 for key, chunk in recorded[shard].items()]
        query = _describe if full else _stored_size
        answers = _gather([query(store, key) for _, key, _ in batch])
        for (shard, key, chunk), answer in zip(batch, answers):
            problem = _problem(key, chunk, answer)
            if problem is not None:
                damaged.setdefault(shard, []).append(problem)
    return damaged


def check_chunks(store, recorded: Mapping[str, dict | None], full: bool) -> list[str]:
    """What differs between the store and ``recorded`` (see :func:`describe_chunks`), one phrase per chunk.

    Args:
        store: the Zarr store.
        recorded: the chunk descriptions a completion record holds.
        full: also read the bytes and compare their CRC-32C; otherwise only
            presence and size are checked.

    Returns:
        Problems such as ``image/c/3/0/0/0 missing``, ``label/c/3/0/0 1024 bytes,
        recorded 4096 (truncated)``; empty when the shard is intact.
    """
    return check_many(store, {0: recorded}, full).get(0, [])


def metadata_problems(store, names: Iterable[str]) -> dict[str, str]:
    """``{array name: what is wrong}`` for each array whose own ``zarr.json`` is missing or not array metadata.

    Zarr readers of a consolidated store take array metadata from the group's
    copy and never see a damaged ``zarr.json``; a writer does, so it is read here.
    """
    names = list(names)
    keys = [f"{name}/zarr.json" for name in names]
    documents = _gather([store.get(key, prototype=default_buffer_prototype()) for key in keys])
    problems = {}
    for name, key, document in zip(names, keys, documents):
        if isinstance(document, BaseException):
            problems[name] = f"{key} unreadable ({type(document).__name__}: {document})"
        elif document is None:
            problems[name] = f"{key} missing"
        elif (problem := _array_metadata_problem(document.to_bytes())) is not None:
            problems[name] = f"{key} {problem}"
    return problems


def _array_metadata_problem(data: bytes) -> str | None:
    """Why ``data`` is not the metadata document of a Zarr v3 array (``None`` when it is)."""
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"is not JSON ({error})"
    if not isinstance(parsed, dict) or parsed.get("node_type") != "array":
        return "is JSON but not the metadata of an array"
    try:
        ArrayV3Metadata.from_dict(parsed)
    except Exception as error:  # Zarr raises ValueError, TypeError, KeyError ... for what it cannot parse
        return f"is not valid Zarr v3 array metadata ({type(error).__name__}: {str(error).splitlines()[0]})"
    return None


def consolidated_copy(store, name: str) -> bytes | None:
    """Array ``name``'s metadata document as the group's consolidated metadata keeps it (``None``: not kept)."""
    root = run(store.get("zarr.json", prototype=default_buffer_prototype()))
    try:
        kept = json.loads(root.to_bytes())["consolidated_metadata"]["metadata"][name]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    document = json.dumps(kept, indent=2).encode()
    return document if _array_metadata_problem(document) is None else None


def restore_metadata(store, name: str) -> bool:
    """Write array ``name``'s ``zarr.json`` from the group's consolidated copy; ``False`` when there is none."""
    document = consolidated_copy(store, name)
    if document is None:
        return False
    run(store.set(f"{name}/zarr.json", default_buffer_prototype().buffer.from_bytes(document)))
    return True
