"""Build small corpora in every supported layout from real LFW images, with their ground truth.

Each ``build_*`` function writes a corpus under a fresh folder of
``directory`` and returns a :class:`BuiltCorpus`: the registry name and
options to open it with, and what a reader must report for every image
(key -> identity, bytes, hint). Inputs are ``(person, bytes)`` pairs, so any
bytes (also corrupt ones) can be packed into any layout.

``write_recordio`` is an independent writer of insightface RecordIO packs
(dmlc-core's algorithm, re-implemented), kept here rather than in the
package because only tests need to create packs.
"""
from __future__ import annotations

import base64
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tests.helpers import lfw_parts_or_skip

RECORDIO_MAGIC = struct.pack("<I", 0xCED7230A)
_IRHEADER = struct.Struct("<IfQQ")


@dataclass(frozen=True)
class Expected:
    """What a reader must report for one image."""

    identity: int
    data: bytes
    hint: tuple = ()


@dataclass
class BuiltCorpus:
    """A corpus on disk and its ground truth.

    Attributes:
        source: Registry name of the reader.
        root: Root to open.
        options: Keyword options for ``open_source``.
        expected: Entry key -> :class:`Expected`, one per image written.
    """

    source: str
    root: Path
    options: dict = field(default_factory=dict)
    expected: dict[str, Expected] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Inputs


def lfw_images(people: int = 4, per_person: int = 3) -> list[tuple[str, bytes]]:
    """``(person, JPEG bytes)`` of the first ``people`` LFW persons with ``per_person`` images.

    Skips the calling test where LFW Part Labels is absent (fails instead under
    ``SVC_REQUIRE_LFW=1``, as in CI): see :func:`helpers.lfw_parts_or_skip`.
    """
    by_person: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((lfw_parts_or_skip() / "images").glob("*.jpg")):
        by_person[path.stem.rsplit("_", 1)[0]].append(path)
    chosen = [name for name in sorted(by_person) if len(by_person[name]) >= per_person][:people]
    return [(name, path.read_bytes()) for name in chosen for path in by_person[name][:per_person]]


def corrupt_images(jpeg: bytes) -> list[tuple[str, bytes]]:
    """Damaged files a web crawl really contains: empty, truncated, not an image."""
    return [
        ("Broken_Files", b""),
        ("Broken_Files", jpeg[: len(jpeg) // 2]),
        ("Broken_Files", b"<html><body>404 Not Found</body></html>\n"),
    ]


def jpeg_with_magic(jpeg: bytes) -> bytes:
    """A valid JPEG that contains the RecordIO magic number twice, at aligned positions.

    A comment segment (``FF FE``) right after the start-of-image marker holds
    the magic at image offsets 8 and 16. Behind a 24-byte IRHeader those are
    multiples of 4, so a RecordIO writer must split the record into a first,
    a middle and a last part.
    """
    comment = b"\x00\x00" + RECORDIO_MAGIC + b"mid!" + RECORDIO_MAGIC + b"end"
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return jpeg[:2] + segment + jpeg[2:]


def mixed_format_files(images: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``(relative path, bytes)`` of the images re-encoded in mixed formats and extension cases."""
    formats = [(".jpg", None), (".PNG", ".png"), (".Jpeg", None), (".bmp", ".bmp"), (".webp", ".webp")]
    files = []
    for index, (person, data) in enumerate(images):
        extension, encoding = formats[index % len(formats)]
        if encoding is not None:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            ok, encoded = cv2.imencode(encoding, pixels[::4, ::4])
            assert ok, encoding
            data = encoded.tobytes()
        files.append((f"{person}/{index:02d}{extension}", data))
    return files


def _by_person(images: list[tuple[str, bytes]]) -> list[tuple[str, list[bytes]]]:
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for person, data in images:
        grouped[person].append(data)
    return sorted(grouped.items())


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --------------------------------------------------------------------------
# Folder layouts


def build_casia(directory: Path, images: list[tuple[str, bytes]]) -> BuiltCorpus:
    """``<root>/<7-digit identity>/<3-digit>.jpg``; identities are sparse (37, 74, ...)."""
    corpus = BuiltCorpus("casia", directory / "casia")
    for rank, (_, items) in enumerate(_by_person(images)):
        identity = (rank + 1) * 37
        for number, data in enumerate(items, start=1):
            key = f"{identity:07d}/{number:03d}.jpg"
            _write(corpus.root / key, data)
            corpus.expected[key] = Expected(identity, data)
    _write(corpus.root / "cleaned_list.txt", b"not part of the corpus\n")
    return corpus


def build_vggface2(directory: Path, images: list[tuple[str, bytes]]) -> BuiltCorpus:
    """``<root>/n<6 digits>/<NNNN>_01.jpg`` plus loose box and landmark CSVs.

    The last image of every person has no CSV rows, as happens with
    hand-cleaned copies, so its hint must be ``()``.
    """
    corpus = BuiltCorpus("vggface2", directory / "vggface2" / "train")
    meta = directory / "vggface2" / "bb_landmark"
    meta.mkdir(parents=True)
    boxes = ['NAME_ID,X,Y,W,H']
    landmarks = ['NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y']
    for rank, (_, items) in enumerate(_by_person(images)):
        identity = (rank + 1) * 41
        for number, data in enumerate(items, start=1):
            name_id = f"n{identity:06d}/{number:04d}_01"
            _write(corpus.root / f"{name_id}.jpg", data)
            hint = ()
            if number < len(items):
                x, y, width, height = 10 + number, 20 + rank, 100, 120
                boxes.append(f'"{name_id}",{x},{y},{width},{height}')
                landmarks.append(f'"{name_id}",' + ",".join(f"{v + 0.5:.3f}" for v in range(10)))
                hint = (x, y, x + width, y + height)
            corpus.expected[f"{name_id}.jpg"] = Expected(identity, data, hint)
    (meta / "loose_bb_train.csv").write_text("\n".join(boxes) + "\n")
    (meta / "loose_landmark_train.csv").write_text("\n".join(landmarks) + "\n")
    corpus.options = {"bbox_csv": meta / "loose_bb_train.csv",
                      "landmark_csv": meta / "loose_landmark_train.csv"}
    return corpus


def build_lfw(directory: Path, images: list[tuple[str, bytes]], flat: bool = False) -> BuiltCorpus:
    """``<root>/<Name>/<Name>_<NNNN>.jpg``, or ``<root>/images/<Name>_<NNNN>.jpg`` when ``flat``.

    Identity is the rank of the name among the sorted names.
    """
    corpus = BuiltCorpus("lfw", directory / ("lfw-flat" if flat else "lfw"))
    for identity, (person, items) in enumerate(_by_person(images)):
        for number, data in enumerate(items, start=1):
            file = f"{person}_{number:04d}.jpg"
            key = f"images/{file}" if flat else f"{person}/{file}"
            _write(corpus.root / key, data)
            corpus.expected[key] = Expected(identity, data)
    _write(corpus.root / "lfw-names.txt", b"not part of the corpus\n")
    return corpus


def build_folder(directory: Path, files: list[tuple[str, bytes]],
                 identity_from_folder: bool = False) -> BuiltCorpus:
    """Any tree: ``files`` are ``(relative path, bytes)``; non-image files are added around them.

    Expected identities follow the reader's rule: index of the top-level
    folder among all (non-hidden) top-level folders, ``-1`` at the root.
    """
    corpus = BuiltCorpus("folder", directory / "folder",
                         options={"identity_from_folder": identity_from_folder})
    junk = {"notes.txt": b"not an image\n", "zz_meta/labels.csv": b"a,b\n",
            ".hidden/secret.jpg": b"\xff\xd8\xff", "._resource_fork.jpg": b"\x00\x05\x16\x07"}
    for relative, data in list(files) + list(junk.items()):
        _write(corpus.root / relative, data)
    folders = sorted({relative.split("/")[0] for relative, _ in list(files) + list(junk.items())
                      if "/" in relative and not relative.startswith(".")})
    for relative, data in files:
        identity = -1
        if identity_from_folder and "/" in relative:
            identity = folders.index(relative.split("/")[0])
        corpus.expected[relative] = Expected(identity, data)
    return corpus


# --------------------------------------------------------------------------
# Container layouts


def build_tsv(directory: Path, images: list[tuple[str, bytes]], parts: int = 2) -> BuiltCorpus:
    """MS-Celeb-1M style TSV dump split into ``parts`` files in one folder.

    Persons are interleaved and listed in reverse name order so that "first
    appearance" differs from sorted order; the second file uses CRLF line
    ends and a blank line, as Windows-made dumps do.
    """
    corpus = BuiltCorpus("msceleb-tsv", directory / "msceleb")
    corpus.root.mkdir(parents=True)
    grouped = _by_person(images)[::-1]
    lines = []
    for number in range(max(len(items) for _, items in grouped)):
        lines += [(f"m.{person.lower()}", items[number]) for person, items in grouped
                  if number < len(items)]
    identities: dict[str, int] = {}
    per_part = -(-len(lines) // parts)
    for part in range(parts):
        file, windows = f"part-{part}.tsv", part % 2 == 1
        rows: list = lines[part * per_part:(part + 1) * per_part]
        if windows:
            rows.insert(1, None)  # a blank line: skipped, but it still counts as a line
        body = []
        for number, row in enumerate(rows, start=1):
            if row is not None:
                mid, data = row
                body.append(b"\t".join([mid.encode(), b"1", b"http://x/a.jpg", b"http://x/", b"face-1",
                                        base64.b64encode(b"rect"), base64.b64encode(data)]))
                identity = identities.setdefault(mid, len(identities))
                corpus.expected[f"{file}:{number}"] = Expected(identity, data)
            else:
                body.append(b"")
        newline = b"\r\n" if windows else b"\n"
        (corpus.root / file).write_bytes(newline.join(body) + newline)
    (corpus.root / "README.txt").write_text("not part of the corpus\n")
    return corpus


def build_recordio(directory: Path, images: list[tuple[str, bytes]]) -> BuiltCorpus:
    """insightface ``train.rec`` / ``train.idx``; identity = rank of the person's name."""
    corpus = BuiltCorpus("insightface-rec", directory / "faces_rec")
    corpus.root.mkdir(parents=True)
    ranks = {person: rank for rank, (person, _) in enumerate(_by_person(images))}
    pairs = [(data, ranks[person]) for person, data in images]
    keys = write_recordio(corpus.root / "train.rec", corpus.root / "train.idx", pairs)
    for key, (data, identity) in zip(keys, pairs, strict=True):
        corpus.expected[f"train.rec#{key}"] = Expected(identity, data)
    return corpus


def write_recordio(rec_path: Path, idx_path: Path, images: list[tuple[bytes, int]]) -> list[int]:
    """Write an insightface-style RecordIO pack.

    Record 0 is the header ``(first identity record, end of identity
    records)``; images follow, grouped by identity (stable order), each with
    its identity as a scalar label; then one record per identity, in
    ascending order, with its ``(start, end)`` image range.

    Args:
        rec_path: ``train.rec`` to create.
        idx_path: ``train.idx`` to create.
        images: ``(encoded image, identity)`` pairs.

    Returns:
        The record key given to each input image, in input order.
    """
    order = sorted(range(len(images)), key=lambda index: images[index][1])
    identities = sorted({identity for _, identity in images})
    first_identity_record = len(images) + 1
    keys = [0] * len(images)
    ranges: dict[int, list[int]] = {}
    with open(rec_path, "wb") as rec, open(idx_path, "w") as idx:
        def put(key: int, payload: bytes) -> None:
            idx.write(f"{key}\t{rec.tell()}\n")
            rec.write(encode_record(payload))

        put(0, _irheader((first_identity_record, first_identity_record + len(identities)), 0))
        for key, index in enumerate(order, start=1):
            data, identity = images[index]
            keys[index] = key
            ranges.setdefault(identity, [key, key])[1] = key + 1
            put(key, _irheader(float(identity), key) + data)
        for key, identity in enumerate(identities, start=first_identity_record):
            put(key, _irheader(tuple(ranges[identity]), key))
    return keys


def encode_record(payload: bytes) -> bytes:
    """One RecordIO record, split at aligned magic numbers like dmlc-core's writer."""
    out, start = [], 0
    for position in range(0, len(payload) - 3, 4):
        if payload[position:position + 4] == RECORDIO_MAGIC:
            out.append(_part(1 if start == 0 else 2, payload[start:position]))
            start = position + 4
    out.append(_part(3 if start else 0, payload[start:]))
    return b"".join(out)


def _part(cflag: int, data: bytes) -> bytes:
    padding = b"\x00" * (-len(data) % 4)
    return RECORDIO_MAGIC + struct.pack("<I", (cflag << 29) | len(data)) + data + padding


def _irheader(label: float | tuple, record_id: int) -> bytes:
    if isinstance(label, tuple):
        return (_IRHEADER.pack(len(label), 0.0, record_id, 0)
                + struct.pack(f"<{len(label)}f", *label))
    return _IRHEADER.pack(0, label, record_id, 0)
