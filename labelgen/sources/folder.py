"""Any tree of images: ``<root>/**/<name>.<jpg|png|gif|webp|tif|...>``.

The fallback for corpora without a dedicated reader. Files are recognised by
extension only (case-insensitive): :data:`EXTENSIONS` are the formats
``labelgen.stages.decode`` reads. Photos in formats it does not read (HEIC,
camera raw, ...: :data:`NOT_DECODED`) are listed in the scan report with the
reason; other files, hidden files and hidden folders are skipped. Every entry
named like an image that is not a directory
is a row, whatever it is (a FIFO, a dangling link: its read gives it a
status); a directory is walked whatever its name. Folders that cannot be
listed and symlink loops go to the scan report. Identities are unknown (``-1``) unless
``identity_from_folder`` is set, in which case they follow torchvision's
``ImageFolder``: the index of the top-level folder among all top-level
folders in sorted order (images directly under the root stay ``-1``).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from labelgen.sources.base import Entry, ScanReport, Source, is_directory, register_source, sorted_listing

EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".avif", ".jp2")
# Photo formats a photo folder may hold that the decoder does not read, by extension: the scan
# report lists each such file with this name, so they do not vanish without a word.
NOT_DECODED = {".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".psd": "Photoshop", ".svg": "SVG",
               **dict.fromkeys((".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"), "camera raw")}


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS)


def _not_decoded(name: str) -> str | None:
    """Why a file named ``name`` is not labelled, when it is a photo in a format the decoder does not read."""
    kind = NOT_DECODED.get(os.path.splitext(name)[1].lower())
    return None if kind is None else f"not decoded: {kind} images are not a format labelgen reads; convert to JPEG"


@register_source("folder")
class FolderSource(Source):
    """Reader of an arbitrary image tree.

    Args:
        root: Top of the tree.
        identity_from_folder: Label images by their top-level folder.

    Usage (on a real corpus)::

        source = FolderSource("/data/faces", identity_from_folder=True)
        next(source.scan())
        Entry(key='alice/1.png', identity=0, locator='alice/1.png', hint=())
    """

    layout = f"'<root>/**/<name>.<{'|'.join(e[1:] for e in EXTENSIONS)}>' (any depth, extension case ignored)"

    def __init__(self, root: str | os.PathLike, identity_from_folder: bool = False):
        self.identity_from_folder = bool(identity_from_folder)
        super().__init__(root)

    def _check_layout(self) -> None:
        self.require_directory()
        self.require_images()

    def scan(self) -> Iterator[Entry]:
        """Yield images depth-first, each directory's entries sorted by name."""
        yield from self._walk(self.root, "", -1, frozenset(), self.new_report())

    def describe(self) -> dict:
        description = super().describe()
        description["identity_from_folder"] = self.identity_from_folder
        return description

    def _walk(self, directory: Path, prefix: str, identity: int,
              ancestors: frozenset[str], report: ScanReport) -> Iterator[Entry]:
        # Symlinked folders are followed (corpora are often assembled from
        # links), but a link back to an ancestor would loop forever.
        real = os.path.realpath(directory)
        if real in ancestors:
            report.skip(directory, f"symlink loop: back to {real}")
            return
        ancestors = ancestors | {real}
        folders = -1
        for entry in sorted_listing(directory, report):
            relative = prefix + entry.name
            image_name = _is_image(entry.name)
            # An image-named entry whose type cannot be told (a looping link) is a row: its read says why.
            if is_directory(entry, None if image_name else report):
                folders += 1
                top_level = self.identity_from_folder and not prefix
                yield from self._walk(Path(entry.path), relative + "/",
                                      folders if top_level else identity, ancestors, report)
            elif image_name:
                yield Entry(key=relative, identity=identity, locator=relative)
            elif reason := _not_decoded(entry.name):
                report.skip(entry.path, reason)
