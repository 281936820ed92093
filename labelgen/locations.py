"""Where a label store is: a local folder, or an fsspec URL on object storage.

A location is text: a path (``labels.zarr``, ``/data/labels.zarr``) or a URL
that fsspec understands (``s3://bucket/labels.zarr``, ``gs://...``,
``memory://...``). Local folders keep everything they did before (atomic
renames, ``flock`` locks); URLs go through fsspec (s3fs for ``s3://``) and
Zarr's :class:`~zarr.storage.FsspecStore`. Credentials come from where the
filesystem's own library looks for them: for S3, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` (an
S3-compatible server), or fsspec's ``FSSPEC_S3_<OPTION>`` variables
(``FSSPEC_S3_ENDPOINT_URL``).

Example:
    >>> is_url("s3://bucket/labels.zarr"), is_url("labels.zarr"), is_url("/data/labels.zarr")
    (True, False, False)
    >>> join("s3://bucket/labels.zarr/", "shards", "000001.json")
    's3://bucket/labels.zarr/shards/000001.json'
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
S3_EXTRA_INSTALL = "pip install 's3fs'"  # the [s3] extra of setup.cfg


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a local path; ``file://`` counts as local."""
    text = str(location) if isinstance(location, str) else ""
    return bool(_SCHEME.match(text)) and not text.startswith("file://")


def normalise(location: str | os.PathLike) -> str:
    """A URL without its trailing slash, or a local path made absolute (Dask workers have their own directory)."""
    if is_url(location):
        return str(location).rstrip("/")
    text = str(location)
    return str(Path(text[len("file://"):] if text.startswith("file://") else text).absolute())


def join(location: str, *names: str) -> str:
    """``location`` with ``names`` appended, ``/``-separated for URLs."""
    if is_url(location):
        return "/".join([location.rstrip("/"), *names])
    return str(Path(location, *names))


def filesystem(location: str):
    """``(fsspec filesystem, path within it)`` for ``location``.

    Raises:
        ValueError: the URL's scheme needs a package that is not installed (its message names it).
    """
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except ImportError as error:
        raise ValueError(f"{location} needs a filesystem package that is not installed ({error}); "
                         f"for s3:// URLs: {S3_EXTRA_INSTALL}") from None


def zarr_store(location: str, read_only: bool):
    """The Zarr store at ``location``: a :class:`~zarr.storage.LocalStore`, or an
    :class:`~zarr.storage.FsspecStore` for a URL."""
    import zarr

    if not is_url(location):
        return zarr.storage.LocalStore(normalise(location), read_only=read_only)
    filesystem(location)  # a clear error when the scheme's package is missing
    return zarr.storage.FsspecStore.from_url(location, read_only=read_only)


def name(location: str) -> str:
    """The last part of ``location`` (``labels.zarr``)."""
    return location.rstrip("/").rsplit("/", 1)[-1]
