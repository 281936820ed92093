"""Any tree of images: ``<root>/**/<name>.<jpg|jpeg|png|bmp|webp>``.

The fallback for corpora without a dedicated reader. Files are recognised by
extension only (case-insensitive); other files, hidden files and hidden
folders are skipped. Identities are unknown (``-1``) unless
``identity_from_folder`` is set, in which case they follow torchvision's
``ImageFolder``: the index of the top-level folder among all top-level
folders in sorted order (images directly under the root stay ``-1``).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from labelgen.sources.base import Entry, Source, register_source, sorted_listing

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS)


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

    layout = "'<root>/**/<name>.<jpg|jpeg|png|bmp|webp>' (any depth, extension case ignored)"

    def __init__(self, root: str | os.PathLike, identity_from_folder: bool = False):
        self.identity_from_folder = bool(identity_from_folder)
        super().__init__(root)

    def _check_layout(self) -> None:
        self.require_directory()
        self.require_images()

    def scan(self) -> Iterator[Entry]:
        """Yield images depth-first, each directory's entries sorted by name."""
        yield from self._walk(self.root, "", -1, frozenset())

    def describe(self) -> dict:
        description = super().describe()
        description["identity_from_folder"] = self.identity_from_folder
        return description

    def _walk(self, directory: Path, prefix: str, identity: int,
              ancestors: frozenset[str]) -> Iterator[Entry]:
        # Symlinked folders are followed (corpora are often assembled from
        # links), but a link back to an ancestor would loop forever.
        real = os.path.realpath(directory)
        if real in ancestors:
            return
        ancestors = ancestors | {real}
        folders = -1
        for entry in sorted_listing(directory):
            relative = prefix + entry.name
            if entry.is_dir():
                folders += 1
                top_level = self.identity_from_folder and not prefix
                yield from self._walk(Path(entry.path), relative + "/",
                                      folders if top_level else identity, ancestors)
            elif _is_image(entry.name) and entry.is_file():
                yield Entry(key=relative, identity=identity, locator=relative)
