"""MS-Celeb-1M style TSV files: one image per line, base64 JPEG in the last column.

The released ``FaceImageCroppedWithAlignment.tsv`` has seven tab-separated
columns (Freebase MID, image search rank, image URL, page URL, face id, face
rectangle, base64 JPEG); derived dumps keep the identity first and the image
last, which is all this reader relies on.

The root is one ``.tsv`` file or a folder of them (not recursive). A scan
streams the lines and records where each one lies, so an entry's locator is
the span ``"<file>@<offset>+<length>"`` of its line (without the line break)
and :meth:`MSCelebTSVSource.read` seeks straight to it. Nothing is decoded
while scanning: a multi-GB file is listed at disk speed.

Identity strings become integers in order of first appearance, over the
files in sorted order; blank lines are skipped, every other line is listed
(a line without an image column fails in ``read``, where the pipeline
records it per image).
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path

from labelgen.sources.base import (
    Entry,
    Source,
    SourceError,
    format_span,
    read_span,
    register_source,
    sorted_listing,
)

_SUFFIX = ".tsv"


@register_source("msceleb-tsv")
class MSCelebTSVSource(Source):
    """Reader of MS-Celeb-1M style TSV dumps.

    Usage (on a real corpus)::

        source = MSCelebTSVSource("/data/FaceImageCroppedWithAlignment.tsv")
        next(source.scan())
        Entry(key='FaceImageCroppedWithAlignment.tsv:1', identity=0,
              locator='FaceImageCroppedWithAlignment.tsv@0+61812', hint=())
    """

    layout = ("'<root>.tsv' or '<root>/<part>.tsv', lines "
              "'<identity>\\t...\\t<base64 JPEG>'")

    def _check_layout(self) -> None:
        # Locators name files relative to the folder holding them.
        self.base = self.root if self.root.is_dir() else self.root.parent
        files = self._files()
        if not files:
            problem = (f"found no {_SUFFIX} files in '{self.root}'" if self.root.is_dir()
                       else f"'{self.root}' is not a {_SUFFIX} file")
            raise self.layout_error(problem)
        first_line = self._first_line(self.base / files[0])
        if first_line is not None and b"\t" not in first_line:
            raise self.layout_error(f"the first line of '{self.base / files[0]}' has no tab")

    def scan(self) -> Iterator[Entry]:
        """Yield one entry per non-blank line, files in sorted order, lines in file order."""
        identities: dict[bytes, int] = {}
        for file in self._files():
            with open(self.base / file, "rb") as stream:
                offset = 0
                for number, line in enumerate(stream, start=1):
                    start, offset = offset, offset + len(line)
                    body = line.rstrip(b"\r\n")
                    if not body.strip():
                        continue
                    name = body.split(b"\t", 1)[0].strip()
                    identity = identities.setdefault(name, len(identities))
                    yield Entry(key=f"{file}:{number}", identity=identity,
                                locator=format_span(file, start, len(body)))

    def read(self, locator: str) -> bytes:
        """Return the decoded last column of the line at ``locator``.

        Raises:
            OSError: The TSV file is missing.
            SourceError: The line has no image column or it is not base64.
        """
        columns = read_span(self.base, locator).split(b"\t")
        if len(columns) < 2:
            raise SourceError(f"{locator}: line has no image column (no tab)")
        try:
            return base64.b64decode(columns[-1].strip(), validate=True)
        except binascii.Error as error:
            raise SourceError(f"{locator}: last column is not base64 ({error})") from error

    def _files(self) -> list[str]:
        if not self.root.is_dir():
            return [self.root.name] if self.root.name.lower().endswith(_SUFFIX) else []
        return [entry.name for entry in sorted_listing(self.root)
                if entry.name.lower().endswith(_SUFFIX) and entry.is_file()]

    @staticmethod
    def _first_line(path: Path) -> bytes | None:
        """First non-blank line of ``path``, ``None`` for a blank file."""
        with open(path, "rb") as stream:
            for line in stream:
                if line.strip():
                    return line
        return None
