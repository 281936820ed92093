"""What every corpus reader shares: entries, errors, the reader contract and the registry.

A *source* turns one corpus on disk (CASIA-WebFace folders, a VGGFace2 tree,
an MS-Celeb TSV, an insightface RecordIO pair, ...) into a stream of
:class:`Entry` records and hands back the raw encoded bytes of any entry on
request. Sources never decode images (that is ``labelgen.stages.decode``'s
job) and never hold a corpus in memory: :meth:`Source.scan` is a generator,
so enumerating millions of files costs memory for one directory listing at a
time, not for the corpus.

Two kinds of locator exist:

* a relative POSIX path below the root, for corpora of one file per image;
* a *span* ``"<file>@<offset>+<length>"``, for container files (TSV,
  RecordIO) where an image is a byte range of a larger file.

Readers are looked up by name through a lazy registry, so that opening a
``casia`` source does not import the RecordIO parser, and a reader module
written elsewhere (``sample``) is found without this package importing it.
"""
from __future__ import annotations

import abc
import importlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from labelgen.status import StageError, Status

# Reader modules by source name. Importing a module registers its reader
# (see ``register_source``); nothing is imported until the name is opened.
_MODULES: dict[str, str] = {
    "casia": "labelgen.sources.casia",
    "folder": "labelgen.sources.folder",
    "insightface-rec": "labelgen.sources.recordio",
    "lfw": "labelgen.sources.lfw",
    "msceleb-tsv": "labelgen.sources.msceleb",
    "sample": "labelgen.sources.sample",
    "vggface2": "labelgen.sources.vggface2",
}
_REGISTRY: dict[str, type[Source]] = {}


@dataclass(frozen=True)
class Entry:
    """One image of a corpus, as listed by :meth:`Source.scan`.

    Attributes:
        key: Unique, stable id of the image within its source (a relative
            path, ``"train.rec#123"``, ``"part.tsv:17"``).
        identity: Integer identity label, ``-1`` when the corpus has none.
        locator: What :meth:`Source.read` needs to fetch the bytes: a path
            relative to the root or a span ``"<file>@<offset>+<length>"``.
        hint: Known face box ``(x0, y0, x1, y1)`` in pixels (for example from
            VGGFace2's loose bounding-box CSV), ``()`` when there is none.
    """

    key: str
    identity: int
    locator: str
    hint: tuple = ()


@dataclass
class ScanReport:
    """What a scan met that cannot be a row: a directory it cannot list, a symlink loop.

    Every such entry is counted; the first :attr:`MAX_LISTED` are listed with
    their problem. Entries that can be rows (an unreadable file, a FIFO, a
    dangling link named like an image) are rows, with a status, instead.
    """

    MAX_LISTED = 1000
    skipped: int = 0
    listed: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str | os.PathLike, problem: str) -> None:
        self.skipped += 1
        if len(self.listed) < self.MAX_LISTED:
            self.listed.append((os.fsdecode(path), problem))

    def to_dict(self) -> dict:
        return {"skipped": self.skipped, "listed": [[path, problem] for path, problem in self.listed]}


class SourceError(Exception):
    """A corpus is missing, laid out differently than expected, or damaged.

    The message is meant for the person who typed the path: it names the
    root and the layout the reader expected.
    """


class Source(abc.ABC):
    """Streaming reader of one corpus.

    Subclasses set :attr:`layout`, implement :meth:`scan` and
    :meth:`_check_layout`, and override :meth:`read` when their locators
    are not plain relative paths.

    Attributes:
        name: Registry name, set by :func:`register_source`.
        layout: Human-readable description of the expected layout, quoted in
            every :class:`SourceError` about the root.
        root: Absolute path of the corpus root.
    """

    name: str = ""
    layout: str = ""
    scan_report: ScanReport = ScanReport()  # replaced by each scan that can meet problems (see new_report)

    def __init__(self, root: str | os.PathLike):
        """Validate ``root`` cheaply (without enumerating the corpus).

        Raises:
            SourceError: ``root`` does not exist or does not look like the
                expected layout.
        """
        self.root = Path(root).expanduser().resolve()
        if not self.root.exists():
            raise self.layout_error(f"'{root}' does not exist")
        self._check_layout()

    @abc.abstractmethod
    def _check_layout(self) -> None:
        """Raise :class:`SourceError` unless :attr:`root` looks like this corpus."""

    @abc.abstractmethod
    def scan(self) -> Iterator[Entry]:
        """Yield every image of the corpus once, lazily, in a deterministic order.

        Trees are walked in sorted order (relative paths sorted by their
        components); container files in sorted file order, then in the
        order their records appear.
        """

    def read(self, locator: str) -> bytes:
        """Return the raw encoded bytes of the image at ``locator``.

        Raises:
            OSError: The file is missing or unreadable.
            StageError: ``Status.NOT_A_FILE``: the entry is a directory, FIFO, ...
            SourceError: The locator points outside the root.
        """
        return read_regular_file(inside(self.root, locator))

    def new_report(self) -> ScanReport:
        """Start the scan report of a new scan (a scan replaces the previous one's report)."""
        self.scan_report = ScanReport()
        return self.scan_report

    def describe(self) -> dict:
        """Provenance of this source, for manifests and logs."""
        return {"source": self.name, "root": str(self.root)}

    def require_directory(self) -> None:
        """Raise :class:`SourceError` unless :attr:`root` is a directory."""
        if not self.root.is_dir():
            raise self.layout_error(f"'{self.root}' is not a directory")

    def require_images(self) -> None:
        """Raise :class:`SourceError` unless :meth:`scan` yields at least one entry.

        Only the first entry is produced, so this stays cheap on big corpora
        whose first folders are populated.
        """
        entries = self.scan()
        try:
            first = next(entries, None)
        finally:
            entries.close()
        if first is None:
            skipped = self.scan_report.listed
            raise self.layout_error(f"found no images under '{self.root}'" + (
                f" (the scan skipped {self.scan_report.skipped}, e.g. {skipped[0][0]}: {skipped[0][1]})"
                if skipped else ""))

    def layout_error(self, problem: str) -> SourceError:
        """Build the error for a root that is not laid out as expected."""
        return SourceError(f"{self.name} source: {problem}; expected layout {self.layout}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"


# --------------------------------------------------------------------------
# Registry


def register_source(name: str) -> Callable[[type[Source]], type[Source]]:
    """Class decorator that makes a :class:`Source` subclass openable by ``name``.

    Usage::

        @register_source("my-corpus")
        class MyCorpus(Source): ...
    """

    def decorate(cls: type[Source]) -> type[Source]:
        previous = _REGISTRY.get(name)
        # Re-importing a module re-registers the same class; a second class
        # under one name is a bug that would otherwise pick a reader at random.
        if previous is not None and (previous.__module__, previous.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise ValueError(f"source name '{name}' is already registered by "
                             f"{previous.__module__}.{previous.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_sources() -> list[str]:
    """Names :func:`open_source` accepts, sorted."""
    return sorted(set(_MODULES) | set(_REGISTRY))


def source_class(name: str) -> type[Source]:
    """The reader class registered as ``name``, importing its module if needed.

    Raises:
        SourceError: No reader of that name exists or its module is missing.
    """
    if name not in _REGISTRY and name in _MODULES:
        module = _MODULES[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a dependency of the reader is missing: not our call
                raise
            raise SourceError(f"source '{name}' is declared but its module {module} "
                              f"cannot be found") from error
    if name not in _REGISTRY:
        raise SourceError(f"unknown source '{name}'; available: {', '.join(available_sources())}")
    return _REGISTRY[name]


def open_source(name: str, root: str | os.PathLike, **options) -> Source:
    """Open the corpus at ``root`` with the reader registered as ``name``.

    Args:
        name: A name from :func:`available_sources`.
        root: Corpus root (a folder, or a file for single-file formats).
        **options: Reader-specific options, e.g. ``bbox_csv`` for
            ``vggface2`` or ``identity_from_folder`` for ``folder``.

    Raises:
        SourceError: Unknown name, or a root that does not fit the reader.
    """
    return source_class(name)(root, **options)


# --------------------------------------------------------------------------
# Helpers shared by the readers


def inside(base: Path, relative: str) -> Path:
    """``base / relative``, refusing paths that would leave ``base``.

    Locators come from manifests that may have been edited by hand; reading
    ``../../etc/passwd`` through a source would be a surprise.

    Raises:
        SourceError: ``relative`` is absolute or climbs out of ``base``.
    """
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise SourceError(f"locator '{relative}' is not a path inside {base}")
    return base.joinpath(*parts)


def sorted_listing(directory: Path, report: ScanReport | None = None) -> list[os.DirEntry]:
    """Entries of one directory sorted by name, hidden ones left out.

    Names are compared as code points, not by locale, so the order is the
    same on every machine; walking a tree with it yields relative paths
    sorted by their components (``a/b.jpg`` before ``a.jpg``). Hidden
    entries (``.DS_Store``, macOS ``._x.jpg`` resource forks, ``.git``) are
    never corpus images. Only one directory's
    listing is held at a time.

    Args:
        directory: the directory to list.
        report: where a directory that cannot be listed is recorded (it
            then lists as empty); without one, the ``OSError`` is raised.
    """
    try:
        with os.scandir(directory) as listing:
            entries = [entry for entry in listing if not entry.name.startswith(".")]
    except OSError as error:
        if report is None:
            raise
        report.skip(directory, f"cannot list: {error.strerror or error}")
        return []
    entries.sort(key=lambda entry: entry.name)
    return entries


def is_directory(entry: os.DirEntry, report: ScanReport | None) -> bool | None:
    """Whether ``entry`` is a directory (following symlinks); ``None`` when that cannot be told.

    A symlink loop or an entry that cannot be examined has no type; it is
    recorded in ``report`` (pass ``None`` where the reader makes it a row).
    """
    try:
        return entry.is_dir()
    except OSError as error:
        if report is not None:
            report.skip(entry.path, f"cannot tell what it is: {error.strerror or error}")
        return None


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file (after symlinks).

    Opened non-blocking, so a FIFO named like an image is refused instead of
    hanging its worker forever waiting for a writer.

    Raises:
        OSError: missing file, dangling or looping symlink, permission denied, I/O error.
        StageError: ``Status.NOT_A_FILE`` for a directory, FIFO, socket or device.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(descriptor, "rb") as stream:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
            raise StageError(Status.NOT_A_FILE, f"{os.fsdecode(path)} is {kind}")
        return stream.read()


def walk_identity_folders(root: Path, folder_ok: Callable[[str], bool],
                          file_ok: Callable[[str, str], bool],
                          report: ScanReport | None = None) -> Iterator[tuple[int, str, str]]:
    """Stream ``<root>/<identity folder>/<image>`` corpora in sorted order.

    Every entry of an identity folder whose name is accepted is yielded,
    whatever it is: a directory, FIFO or dangling link named like an image
    becomes a row whose read fails with its own status, instead of vanishing.

    Args:
        root: Corpus root.
        folder_ok: Whether a sub-directory name is an identity folder.
        file_ok: Whether ``(folder name, file name)`` is an image of the corpus.
        report: Where folders that cannot be listed or examined are recorded
            (see :class:`ScanReport`); a fresh one when not given.

    Yields:
        ``(index, folder name, file name)``, where ``index`` counts identity
        folders holding at least one accepted image, from 0 in sorted order
        (so it does not depend on stray empty folders).
    """
    report = report if report is not None else ScanReport()
    index = -1
    for folder in sorted_listing(root, report):
        if not (folder_ok(folder.name) and is_directory(folder, report)):
            continue
        found = False
        for image in sorted_listing(Path(folder.path), report):
            if file_ok(folder.name, image.name):
                if not found:
                    index, found = index + 1, True
                yield index, folder.name, image.name


def format_span(file: str, offset: int, length: int) -> str:
    """Locator of ``length`` bytes at ``offset`` of ``file`` (relative to the root)."""
    return f"{file}@{offset}+{length}"


def parse_span(locator: str) -> tuple[str, int, int]:
    """Split ``"<file>@<offset>+<length>"`` into its parts.

    The last ``@`` and ``+`` are the separators, so file names may contain
    either character.

    Raises:
        SourceError: The locator is not a span.
    """
    file, at, span = locator.rpartition("@")
    offset, plus, length = span.partition("+")
    if not (file and at and plus and offset.isdigit() and length.isdigit()):
        raise SourceError(f"locator '{locator}' is not of the form '<file>@<offset>+<length>'")
    return file, int(offset), int(length)


def read_span(base: Path, locator: str) -> bytes:
    """Read exactly the bytes a span locator names.

    Raises:
        OSError: The file is missing or unreadable.
        SourceError: Malformed locator, or the file ends inside the span.
    """
    file, offset, length = parse_span(locator)
    with open(inside(base, file), "rb") as stream:
        stream.seek(offset)
        data = stream.read(length)
    if len(data) != length:
        raise SourceError(f"{base / file} ends inside {locator}: got {len(data)} of {length} bytes")
    return data
