"""Labeled Faces in the Wild, as released or flattened.

Two layouts are accepted:

* nested, as in the LFW archives: ``<root>/<Name>/<Name>_<NNNN>.jpg``;
* flat, as in LFW Part Labels copies: ``<root>/images/<Name>_<NNNN>.jpg``.

In both, the identity of an image is the index of its person's name in the
sorted list of names that have at least one image, so the same images get the
same identities whichever layout holds them. Names are compared as code
points: ``Abdullah`` sorts before ``Abdullah_Nasseef`` although
``Abdullah_Nasseef_0001.jpg`` may sort before ``Abdullah_0002.jpg`` as a file
name, which is why the flat layout needs a first pass over the names.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from labelgen.sources.base import (Entry, ScanReport, Source, register_source, sorted_listing,
                                   walk_identity_folders)

_FILE = re.compile(r"(?P<name>.+)_(?P<number>\d{4})\.jpg")
_FLAT_FOLDER = "images"


def _is_image_of(folder: str, file: str) -> bool:
    match = _FILE.fullmatch(file)
    return bool(match) and match["name"] == folder


@register_source("lfw")
class LFWSource(Source):
    """Reader of an LFW tree, nested or flat.

    Example (needs LFW Part Labels):
        >>> from labelgen.eval.lfw_parts import default_lfw_parts_root
        >>> source = LFWSource(default_lfw_parts_root())
        >>> next(source.scan()).key
        'images/AJ_Cook_0001.jpg'
    """

    layout = "'<root>/<Name>/<Name>_<NNNN>.jpg' or '<root>/images/<Name>_<NNNN>.jpg'"

    def _check_layout(self) -> None:
        self.require_directory()
        # A person called "images" does not exist in LFW, so the folder name
        # is enough to tell the layouts apart.
        self.flat = (self.root / _FLAT_FOLDER).is_dir()
        self.require_images()

    def scan(self) -> Iterator[Entry]:
        """Yield images sorted by relative path (name folder then file, or file)."""
        if self.flat:
            yield from self._scan_flat()
            return
        for identity, folder, file in walk_identity_folders(self.root, lambda _: True, _is_image_of,
                                                            self.new_report()):
            key = f"{folder}/{file}"
            yield Entry(key=key, identity=identity, locator=key)

    def _scan_flat(self) -> Iterator[Entry]:
        directory = self.root / _FLAT_FOLDER
        report = self.new_report()
        # The set of names (thousands), not of images, is what is held.
        names = sorted({match["name"] for match in self._flat_matches(directory, report)})
        identities = {name: index for index, name in enumerate(names)}
        for match in self._flat_matches(directory, report):
            key = f"{_FLAT_FOLDER}/{match.string}"
            yield Entry(key=key, identity=identities[match["name"]], locator=key)

    @staticmethod
    def _flat_matches(directory: Path, report: ScanReport) -> Iterator[re.Match]:
        # Every entry named like an image is a row, whatever it is: its read gives its status.
        for entry in sorted_listing(directory, report):
            match = _FILE.fullmatch(entry.name)
            if match:
                yield match
