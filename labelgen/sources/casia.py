"""CASIA-WebFace: ``<root>/<7-digit identity>/<3-digit>.jpg``.

The folder name is the identity number (``0000045`` is identity 45), as in
the released archive; anything else under the root is ignored.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from labelgen.sources.base import Entry, Source, register_source, walk_identity_folders

_FOLDER = re.compile(r"\d{7}")
_FILE = re.compile(r"\d{3}\.jpg")


@register_source("casia")
class CasiaSource(Source):
    """Reader of a CASIA-WebFace tree.

    Usage (on a real corpus)::

        source = CasiaSource("/data/CASIA-WebFace")
        next(source.scan())
        Entry(key='0000045/001.jpg', identity=45, locator='0000045/001.jpg', hint=())
    """

    layout = "'<root>/<7-digit identity>/<3-digit>.jpg'"

    def _check_layout(self) -> None:
        self.require_directory()
        self.require_images()

    def scan(self) -> Iterator[Entry]:
        """Yield images sorted by identity folder, then file name."""
        for _, folder, file in walk_identity_folders(
                self.root, _FOLDER.fullmatch, lambda _, name: bool(_FILE.fullmatch(name)), self.new_report()):
            key = f"{folder}/{file}"
            yield Entry(key=key, identity=int(folder), locator=key)
