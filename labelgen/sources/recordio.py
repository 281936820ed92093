r"""insightface RecordIO packs: ``train.rec`` + ``train.idx``, parsed without MXNet.

Format (dmlc-core RecordIO, as written by ``mx.recordio.MXIndexedRecordIO``):

* ``train.idx`` is text, one ``<key>\t<byte offset>`` line per record.
* In ``train.rec`` a record is one or more *parts*, each ``uint32`` magic
  ``0xced7230a``, ``uint32 lrecord`` (``cflag = lrecord >> 29``,
  ``length = lrecord & (2**29 - 1)``), ``length`` payload bytes and zero
  padding to a multiple of 4. The writer splits a payload wherever the magic
  number occurs at an aligned position, dropping it, so that a reader can
  resynchronise; parts are flagged 1 (first), 2 (middle), 3 (last), or 0 for
  an unsplit record, and are joined again with the magic bytes in between.
* A payload starts with ``IRHeader`` ``<IfQQ`` (flag, label, id, id2). When
  ``flag > 0``, ``flag`` float32 labels follow and replace ``label``; the
  encoded image comes after.

insightface convention: record 0 is a header whose labels are
``(first identity record, end of identity records)``, so images are records
``1 .. label[0] - 1`` and records from ``label[0]`` hold one identity each
with its ``(start, end)`` image range. An image's identity is its first
label. Packs without that header (record 0's flag is 0) are all images.

Locators are spans ``"train.rec@<offset>+<length>"`` covering all parts of a
record, so ``read`` is one seek and one read.
"""
from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

from labelgen.sources.base import Entry, Source, SourceError, format_span, read_span, register_source

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
IRHEADER = struct.Struct("<IfQQ")
_PART = struct.Struct("<II")
_LABEL = struct.Struct("<f")
_FIRST_FLAGS, _NEXT_FLAGS, _LAST_FLAGS = (0, 1), (2, 3), (0, 3)


def read_record(stream: BinaryIO, where: str, keep: int | None = None) -> tuple[bytes, int]:
    """Read the record starting at the stream's position, joining its parts.

    Args:
        stream: Binary stream positioned on a part header.
        where: Names the record in error messages.
        keep: Stop collecting payload after this many bytes (the parts are
            still walked, to measure the record); ``None`` keeps everything.

    Returns:
        ``(payload, size)``: the joined payload (or its first ``keep``
        bytes) and the number of bytes the record occupies in the file.

    Raises:
        SourceError: No magic number, an impossible part flag or a file that
            ends inside the record.
    """
    chunks: list[bytes] = []
    kept = size = 0
    flags = _FIRST_FLAGS
    while True:
        head = stream.read(_PART.size)
        if len(head) < _PART.size:
            raise SourceError(f"{where}: file ends inside a record header")
        magic, lrecord = _PART.unpack(head)
        cflag, length = lrecord >> 29, lrecord & LENGTH_MASK
        if magic != MAGIC:
            raise SourceError(f"{where}: no RecordIO magic number (found {magic:#010x})")
        if cflag not in flags:
            raise SourceError(f"{where}: part flag {cflag} where one of {flags} was expected")
        padded = (length + 3) & ~3
        if chunks:
            chunks.append(MAGIC_BYTES)
            kept += len(MAGIC_BYTES)
        if keep is None or kept < keep:
            data = stream.read(padded)
            if len(data) < length:
                raise SourceError(f"{where}: file ends inside a record")
            chunks.append(data[:length])
            kept += length
        else:
            stream.seek(padded, io.SEEK_CUR)
        size += _PART.size + padded
        if cflag in _LAST_FLAGS:
            break
        flags = _NEXT_FLAGS
    payload = b"".join(chunks)
    return (payload if keep is None else payload[:keep]), size


def split_payload(payload: bytes, where: str) -> tuple[tuple[float, ...], bytes]:
    """Split a record payload into its labels and the encoded image.

    Raises:
        SourceError: The payload is shorter than its header says.
    """
    if len(payload) < IRHEADER.size:
        raise SourceError(f"{where}: record of {len(payload)} bytes has no IRHeader")
    flag, label, _, _ = IRHEADER.unpack_from(payload)
    if flag == 0:
        return (label,), payload[IRHEADER.size:]
    start = IRHEADER.size + _LABEL.size * flag
    if len(payload) < start:
        raise SourceError(f"{where}: IRHeader announces {flag} labels but the record ends first")
    return struct.unpack_from(f"<{flag}f", payload, IRHEADER.size), payload[start:]


def _first_label(head: bytes, where: str) -> float:
    """First label of a payload of which only the first bytes were kept."""
    if len(head) < IRHEADER.size:
        raise SourceError(f"{where}: record of {len(head)} bytes has no IRHeader")
    flag, label, _, _ = IRHEADER.unpack_from(head)
    if flag == 0:
        return label
    if len(head) < IRHEADER.size + _LABEL.size:
        raise SourceError(f"{where}: IRHeader announces {flag} labels but the record ends first")
    return _LABEL.unpack_from(head, IRHEADER.size)[0]


@register_source("insightface-rec")
class InsightFaceRecordSource(Source):
    """Reader of an insightface ``train.rec`` / ``train.idx`` pair.

    Args:
        root: Folder holding ``train.rec`` and ``train.idx``, or a ``.rec``
            file with its ``.idx`` beside it.

    Usage (on a real corpus)::

        source = InsightFaceRecordSource("/data/faces_emore")
        next(source.scan())
        Entry(key='train.rec#1', identity=0, locator='train.rec@32+8412', hint=())
    """

    layout = ("'<root>/train.rec' + '<root>/train.idx' (or '<name>.rec' beside '<name>.idx'), "
              "MXNet RecordIO as written by insightface")

    def _check_layout(self) -> None:
        if self.root.is_dir():
            self.rec = self.root / "train.rec"
        else:
            self.rec = self.root
        self.idx = self.rec.with_suffix(".idx")
        for path in (self.rec, self.idx):
            if not path.is_file():
                raise self.layout_error(f"'{path}' does not exist")
        with open(self.rec, "rb") as stream:
            if stream.read(len(MAGIC_BYTES)) != MAGIC_BYTES:
                raise self.layout_error(f"'{self.rec}' does not start with the RecordIO magic number")
        self.image_keys = self._image_keys()

    def scan(self) -> Iterator[Entry]:
        """Yield image records in ``.idx`` order (ascending keys in insightface packs)."""
        name = self.rec.name
        with open(self.rec, "rb") as stream:
            for key, offset in self._index():
                if self.image_keys is not None and key not in self.image_keys:
                    continue
                where = f"{name}#{key} at offset {offset}"
                stream.seek(offset)
                # Only the header is needed to list a record; the image is skipped.
                head, size = read_record(stream, where, keep=IRHEADER.size + _LABEL.size)
                yield Entry(key=f"{name}#{key}", identity=int(_first_label(head, where)),
                            locator=format_span(name, offset, size))

    def read(self, locator: str) -> bytes:
        """Return the encoded image of the record at ``locator``.

        Raises:
            OSError: The ``.rec`` file is missing.
            SourceError: The span does not hold exactly one well-formed record.
        """
        data = read_span(self.rec.parent, locator)
        payload, size = read_record(io.BytesIO(data), locator)
        if size != len(data):
            raise SourceError(f"{locator}: span holds {len(data)} bytes but the record {size}")
        return split_payload(payload, locator)[1]

    def describe(self) -> dict:
        description = super().describe()
        description["rec"], description["idx"] = str(self.rec), str(self.idx)
        return description

    def _index(self) -> Iterator[tuple[int, int]]:
        """Stream ``(key, offset)`` pairs from the ``.idx`` file."""
        with open(self.idx, encoding="ascii", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                fields = line.split()
                if not fields:
                    continue
                try:
                    key, offset = (int(field) for field in fields)
                except ValueError as error:
                    raise SourceError(f"'{self.idx}' line {number}: expected '<key>\\t<offset>', "
                                      f"found {line.strip()!r}") from error
                yield key, offset

    def _image_keys(self) -> range | None:
        """Keys of image records from the header record, ``None`` for "every key"."""
        offset = next((offset for key, offset in self._index() if key == 0), None)
        if offset is None:
            return None
        where = f"{self.rec.name}#0 at offset {offset}"
        with open(self.rec, "rb") as stream:
            stream.seek(offset)
            payload, _ = read_record(stream, where)
        flag = IRHEADER.unpack_from(payload)[0] if len(payload) >= IRHEADER.size else 0
        if flag == 0:
            return None
        labels, _ = split_payload(payload, where)
        return range(1, int(labels[0]))

