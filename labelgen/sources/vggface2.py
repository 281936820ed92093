"""VGGFace2: ``<root>/n<6 digits>/<file>.jpg``, with optional loose box and landmark CSVs.

The root is one split of the release (``train/`` or ``test/``); the class
folder ``n000002`` is identity 2. The release also ships

* ``loose_bb_<split>.csv``: header ``NAME_ID,X,Y,W,H``, one row per image,
  ``NAME_ID`` like ``n000002/0001_01`` (the path without ``.jpg``);
* ``loose_landmark_<split>.csv``: header ``NAME_ID,P1X,P1Y,...,P5X,P5Y``.

When given, each CSV is read once into a dict keyed by ``NAME_ID``. That is
the one place a source holds per-image data in memory: the CSVs are at most a
few hundred MB (3.1 M rows for the training split), and looking rows up by
name is the only way to stay correct when the CSV and the tree disagree
(missing rows, extra rows, a different sort order).
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path

from labelgen.sources.base import Entry, Source, SourceError, register_source, walk_identity_folders

_FOLDER = re.compile(r"n(\d{6})")
_BOX_HEADER = ["NAME_ID", "X", "Y", "W", "H"]
_LANDMARK_HEADER = ["NAME_ID"] + [f"P{i}{axis}" for i in range(1, 6) for axis in "XY"]


def _number(text: str) -> int | float:
    """Parse a CSV cell, keeping integers integral (the released boxes are)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _read_csv(path: str | os.PathLike, header: list[str]) -> dict[str, tuple]:
    """Load a VGGFace2 metadata CSV into ``{NAME_ID: numbers}``.

    Raises:
        SourceError: The file is missing, has another header, or a malformed row.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"vggface2 source: metadata CSV '{path}' does not exist; "
                          f"expected a file with header {','.join(header)}")
    rows: dict[str, tuple] = {}
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        found = [cell.strip() for cell in next(reader, [])]
        if found != header:
            raise SourceError(f"vggface2 source: '{path}' starts with {','.join(found) or 'nothing'}; "
                              f"expected header {','.join(header)}")
        for row in reader:
            if not row:
                continue
            try:
                if len(row) != len(header):
                    raise ValueError(f"{len(row)} columns instead of {len(header)}")
                rows[row[0].strip()] = tuple(_number(cell) for cell in row[1:])
            except ValueError as error:
                raise SourceError(f"vggface2 source: '{path}' line {reader.line_num} "
                                  f"is malformed ({error})") from error
    return rows


@register_source("vggface2")
class VGGFace2Source(Source):
    """Reader of one VGGFace2 split.

    Args:
        root: The split folder holding ``n<6 digits>`` class folders.
        bbox_csv: Optional ``loose_bb_*.csv``; its boxes become
            :attr:`Entry.hint` as ``(x0, y0, x1, y1)``.
        landmark_csv: Optional ``loose_landmark_*.csv``, served by
            :meth:`landmarks`.

    Usage (on a real corpus)::

        source = VGGFace2Source(
            "/data/vggface2/train", bbox_csv="/data/vggface2/bb_landmark/loose_bb_train.csv")
        next(source.scan())
        Entry(key='n000002/0001_01.jpg', identity=2, locator='n000002/0001_01.jpg',
              hint=(161, 140, 385, 464))
    """

    layout = "'<root>/n<6-digit identity>/<file>.jpg'"

    def __init__(self, root: str | os.PathLike, bbox_csv: str | os.PathLike | None = None,
                 landmark_csv: str | os.PathLike | None = None):
        # scan() runs during validation, before the CSVs are loaded.
        self._boxes: dict[str, tuple] = {}
        self._landmarks: dict[str, tuple] = {}
        super().__init__(root)
        self.bbox_csv = Path(bbox_csv).expanduser().resolve() if bbox_csv else None
        self.landmark_csv = Path(landmark_csv).expanduser().resolve() if landmark_csv else None
        self._boxes = _read_csv(self.bbox_csv, _BOX_HEADER) if self.bbox_csv else {}
        self._landmarks = _read_csv(self.landmark_csv, _LANDMARK_HEADER) if self.landmark_csv else {}

    def _check_layout(self) -> None:
        self.require_directory()
        self.require_images()

    def scan(self) -> Iterator[Entry]:
        """Yield images sorted by class folder, then file name."""
        for _, folder, file in walk_identity_folders(
                self.root, _FOLDER.fullmatch, lambda _, name: name.lower().endswith(".jpg"), self.new_report()):
            key = f"{folder}/{file}"
            yield Entry(key=key, identity=int(folder[1:]), locator=key, hint=self._box(key))

    def landmarks(self, key: str) -> tuple:
        """The five loose landmarks ``(x1, y1, ..., x5, y5)`` of ``key``, ``()`` when unknown."""
        return self._landmarks.get(_name_id(key), ())

    def describe(self) -> dict:
        description = super().describe()
        description["bbox_csv"] = str(self.bbox_csv) if self.bbox_csv else None
        description["landmark_csv"] = str(self.landmark_csv) if self.landmark_csv else None
        return description

    def _box(self, key: str) -> tuple:
        row = self._boxes.get(_name_id(key))
        if row is None:
            return ()
        x, y, width, height = row
        return (x, y, x + width, y + height)


def _name_id(key: str) -> str:
    """CSV ``NAME_ID`` of an entry key: the relative path without its extension."""
    return key.rsplit(".", 1)[0]
