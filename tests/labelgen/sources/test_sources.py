"""Corpus readers: every image listed once, right identity, exact bytes, clear errors."""
from __future__ import annotations

import struct
import types
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.corpus_builders import (
    RECORDIO_MAGIC,
    BuiltCorpus,
    build_casia,
    build_folder,
    build_lfw,
    build_recordio,
    build_tsv,
    build_vggface2,
    corrupt_images,
    jpeg_with_magic,
    lfw_images,
    mixed_format_files,
    write_recordio,
)

from labelgen.sources import Entry, Source, SourceError, available_sources, base, open_source, register_source
from labelgen.sources.base import format_span, parse_span, source_class


def _plain_folder(directory: Path, images, **options) -> BuiltCorpus:
    files = [(f"{person}/{index:02d}.jpg", data) for index, (person, data) in enumerate(images)]
    return build_folder(directory, files, **options)


def _mixed_folder(directory: Path, images, **options) -> BuiltCorpus:
    files = mixed_format_files(images) + [("at_root.JPG", images[0][1])]
    return build_folder(directory, files, **options)


def _tree_order(key: str) -> list[str]:
    return key.split("/")


def _tsv_order(key: str) -> tuple[str, int]:
    file, line = key.rsplit(":", 1)
    return file, int(line)


def _rec_order(key: str) -> int:
    return int(key.rsplit("#", 1)[1])


# name -> (builder for real images, builder that accepts any bytes, scan order)
FORMATS = {
    "casia": (build_casia, build_casia, _tree_order),
    "vggface2": (build_vggface2, build_vggface2, _tree_order),
    "lfw": (build_lfw, build_lfw, _tree_order),
    "lfw-flat": (partial(build_lfw, flat=True), partial(build_lfw, flat=True), _tree_order),
    "folder": (_mixed_folder, _plain_folder, _tree_order),
    "folder-by-identity": (partial(_mixed_folder, identity_from_folder=True),
                           partial(_plain_folder, identity_from_folder=True), _tree_order),
    "msceleb-tsv": (build_tsv, build_tsv, _tsv_order),
    "insightface-rec": (build_recordio, build_recordio, _rec_order),
}


@pytest.fixture(scope="module")
def images() -> list[tuple[str, bytes]]:
    return lfw_images(people=4, per_person=3)


def check_corpus(corpus: BuiltCorpus, order) -> tuple[Source, list[Entry]]:
    """Assert a reader reports exactly the corpus' ground truth."""
    source = open_source(corpus.source, corpus.root, **corpus.options)
    scan = source.scan()
    assert isinstance(scan, types.GeneratorType), "scan() must stream"
    entries = list(scan)
    keys = [entry.key for entry in entries]
    assert len(keys) == len(set(keys)), "duplicate keys"
    assert sorted(keys) == sorted(corpus.expected), "every image exactly once, nothing else"
    assert keys == sorted(keys, key=order), "scan order is sorted"
    for entry in entries:
        want = corpus.expected[entry.key]
        assert (entry.identity, entry.hint) == (want.identity, want.hint), entry.key
        assert source.read(entry.locator) == want.data, entry.key
    assert list(source.scan()) == entries, "two scans agree"
    assert source.describe()["source"] == corpus.source
    assert source.describe()["root"] == str(corpus.root.resolve())
    return source, entries


@pytest.mark.parametrize("layout", sorted(FORMATS))
def test_reader_lists_and_reads_every_image(layout, images, tmp_path):
    build, _, order = FORMATS[layout]
    check_corpus(build(tmp_path, images), order)


@pytest.mark.parametrize("layout", sorted(FORMATS))
def test_reader_lists_corrupt_files_with_their_bytes(layout, images, tmp_path):
    # Decoding is the decode stage's job: a reader hands over whatever is there.
    _, build, order = FORMATS[layout]
    check_corpus(build(tmp_path, images[:2] + corrupt_images(images[0][1])), order)


# --------------------------------------------------------------------------
# Wrong roots


@pytest.mark.parametrize("name", [n for n in available_sources() if n != "sample"])
def test_missing_root_names_the_expected_layout(name, tmp_path):
    with pytest.raises(SourceError) as error:
        open_source(name, tmp_path / "missing")
    assert "does not exist" in str(error.value)
    assert source_class(name).layout in str(error.value)


def _not_tsv(directory: Path, images) -> Path:
    path = directory / "faces.jpg"
    path.write_bytes(images[0][1])
    return path


def _tsv_without_tabs(directory: Path, images) -> Path:
    path = directory / "faces.tsv"
    path.write_text("\n\nm.0abc,1,aGVsbG8=\n")
    return path


def _garbage_rec(directory: Path, images) -> Path:
    (directory / "train.rec").write_bytes(images[0][1])
    (directory / "train.idx").write_text("0\t0\n")
    return directory


def _only_text(directory: Path, images) -> Path:
    (directory / "a").mkdir()
    (directory / "a" / "notes.txt").write_text("no images here\n")
    return directory


@pytest.mark.parametrize("name, make_root, fragment", [
    ("casia", lambda d, i: build_lfw(d, i).root, "<7-digit identity>/<3-digit>.jpg"),
    ("casia", lambda d, i: _not_tsv(d, i), "is not a directory"),
    ("vggface2", lambda d, i: build_casia(d, i).root, "n<6-digit identity>"),
    ("lfw", lambda d, i: build_casia(d, i).root, "<Name>_<NNNN>.jpg"),
    ("folder", _only_text, "jpg|jpeg|jpe|jfif|png|bmp|webp|gif|tif|tiff"),
    ("msceleb-tsv", lambda d, i: build_casia(d, i).root, "found no .tsv files"),
    ("msceleb-tsv", _not_tsv, "is not a .tsv file"),
    ("msceleb-tsv", _tsv_without_tabs, "has no tab"),
    ("insightface-rec", lambda d, i: build_casia(d, i).root, "train.rec"),
    ("insightface-rec", _garbage_rec, "magic number"),
])
def test_wrong_layout_names_the_expected_layout(name, make_root, fragment, images, tmp_path):
    with pytest.raises(SourceError) as error:
        open_source(name, make_root(tmp_path, images[:3]))
    assert fragment in str(error.value)
    assert source_class(name).layout in str(error.value)


# --------------------------------------------------------------------------
# Format details


def test_lfw_identities_agree_between_layouts(images, tmp_path):
    nested = open_source("lfw", build_lfw(tmp_path, images).root)
    flat = open_source("lfw", build_lfw(tmp_path, images, flat=True).root)
    by_file = {entry.key.split("/")[-1]: entry.identity for entry in nested.scan()}
    assert by_file == {entry.key.split("/")[-1]: entry.identity for entry in flat.scan()}


def test_lfw_reads_the_shared_part_labels_copy(lfw_root):
    source = open_source("lfw", lfw_root)
    entries = list(source.scan())
    files = sorted(path.name for path in (lfw_root / "images").glob("*.jpg"))
    assert [entry.key for entry in entries] == [f"images/{file}" for file in files]
    names = sorted({file.rsplit("_", 1)[0] for file in files})
    assert all(entry.identity == names.index(entry.key[7:].rsplit("_", 1)[0]) for entry in entries[::97])
    assert source.read(entries[-1].locator) == (lfw_root / entries[-1].key).read_bytes()


def test_vggface2_serves_landmarks_and_checks_csv_headers(images, tmp_path):
    corpus = build_vggface2(tmp_path, images[:3])
    source = open_source("vggface2", corpus.root, **corpus.options)
    first, *_, last = list(source.scan())
    assert source.landmarks(first.key) == tuple(v + 0.5 for v in range(10))
    assert source.landmarks(last.key) == ()
    assert source.describe()["bbox_csv"] == str(corpus.options["bbox_csv"].resolve())
    with pytest.raises(SourceError, match="NAME_ID,X,Y,W,H"):
        open_source("vggface2", corpus.root, bbox_csv=corpus.options["landmark_csv"])
    with pytest.raises(SourceError, match="does not exist"):
        open_source("vggface2", corpus.root, bbox_csv=tmp_path / "loose_bb_test.csv")


def test_tsv_root_may_be_one_file_and_bad_lines_fail_in_read(images, tmp_path):
    corpus = build_tsv(tmp_path, images[:4])
    single = open_source("msceleb-tsv", corpus.root / "part-0.tsv")
    entries = list(single.scan())
    assert [entry.key for entry in entries] == [k for k in corpus.expected if k.startswith("part-0.tsv:")]
    assert single.read(entries[0].locator) == corpus.expected[entries[0].key].data

    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"m.01\tnot base64 at all!\nm.02 without any tab\n")
    source = open_source("msceleb-tsv", bad)
    not_base64, no_tab = source.scan()
    assert (not_base64.identity, no_tab.identity) == (0, 1)
    with pytest.raises(SourceError, match="not base64"):
        source.read(not_base64.locator)
    with pytest.raises(SourceError, match="no image column"):
        source.read(no_tab.locator)


def _parts(data: bytes) -> list[int]:
    """Part flags of the record at the start of ``data``."""
    flags, offset = [], 0
    while True:
        magic, lrecord = struct.unpack_from("<II", data, offset)
        assert magic == 0xCED7230A
        flags.append(lrecord >> 29)
        offset += 8 + (((lrecord & ((1 << 29) - 1)) + 3) & ~3)
        if flags[-1] in (0, 3):
            return flags


def test_recordio_joins_a_record_split_around_magic_numbers(images, tmp_path):
    tricky = jpeg_with_magic(images[0][1])
    assert cv2.imdecode(np.frombuffer(tricky, np.uint8), cv2.IMREAD_COLOR) is not None
    corpus = build_recordio(tmp_path, [("Tricky", tricky)] + images[:3])
    source, entries = check_corpus(corpus, _rec_order)
    [entry] = [entry for entry in entries if corpus.expected[entry.key].data == tricky]
    file, offset, length = parse_span(entry.locator)
    span = (corpus.root / file).read_bytes()[offset:offset + length]
    assert _parts(span) == [1, 2, 3]


def test_recordio_without_header_record_lists_every_key(tmp_path):
    # Assembled by hand, not by the test writer, so that reader and writer
    # cannot share a misunderstanding of the format.
    image_a, image_b = b"JPEG" + RECORDIO_MAGIC + b"tail", b"png!"
    header_a = struct.pack("<IfQQ", 0, 7.0, 0, 0)
    header_b = struct.pack("<IfQQ", 1, 0.0, 1, 0) + struct.pack("<f", 3.0)
    record_a = (RECORDIO_MAGIC + struct.pack("<I", (1 << 29) | 28) + header_a + b"JPEG"
                + RECORDIO_MAGIC + struct.pack("<I", (3 << 29) | 4) + b"tail")
    record_b = RECORDIO_MAGIC + struct.pack("<I", 32) + header_b + b"png!"
    (tmp_path / "pack.rec").write_bytes(record_a + record_b)
    (tmp_path / "pack.idx").write_text(f"0\t0\n1\t{len(record_a)}\n")
    source = open_source("insightface-rec", tmp_path / "pack.rec")
    assert list(source.scan()) == [
        Entry("pack.rec#0", 7, format_span("pack.rec", 0, len(record_a))),
        Entry("pack.rec#1", 3, format_span("pack.rec", len(record_a), len(record_b))),
    ]
    assert [source.read(entry.locator) for entry in source.scan()] == [image_a, image_b]
    with pytest.raises(SourceError, match="span holds"):
        source.read(format_span("pack.rec", 0, len(record_a) + 4))


def test_recordio_damaged_record_is_reported_with_its_key(images, tmp_path):
    root = tmp_path / "rec"
    root.mkdir()
    write_recordio(root / "train.rec", root / "train.idx", [(data, 0) for _, data in images[:3]])
    offset = int((root / "train.idx").read_text().splitlines()[2].split("\t")[1])
    damaged = bytearray((root / "train.rec").read_bytes())
    damaged[offset:offset + 4] = b"XXXX"
    (root / "train.rec").write_bytes(bytes(damaged))
    with pytest.raises(SourceError, match="train.rec#2 at offset"):
        list(open_source("insightface-rec", root).scan())


# --------------------------------------------------------------------------
# Base contract and registry


def test_registry_is_lazy_and_complete(monkeypatch):
    assert {"casia", "vggface2", "lfw", "folder", "msceleb-tsv", "insightface-rec",
            "sample"} <= set(available_sources())
    with pytest.raises(SourceError, match="unknown source 'nope'.*casia"):
        open_source("nope", ".")

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register_source("test-dummy")
    class Dummy(Source):
        layout = "'<root>/anything'"

        def _check_layout(self):
            self.require_directory()

        def scan(self):
            yield Entry("x", -1, "x")

    assert "test-dummy" in available_sources()
    described = open_source("test-dummy", ".").describe()
    assert described == {"source": "test-dummy", "root": str(Path(".").resolve())}
    with pytest.raises(ValueError, match="already registered"):
        register_source("casia")(Dummy)


def test_read_refuses_paths_outside_the_root_and_reports_missing_files(images, tmp_path):
    source = open_source("casia", build_casia(tmp_path, images[:1]).root)
    with pytest.raises(SourceError, match="not a path inside"):
        source.read("../casia/0000037/001.jpg")
    with pytest.raises(OSError):
        source.read("0000037/999.jpg")


def test_span_locators_allow_separators_in_file_names():
    assert parse_span(format_span("a@b+c.tsv", 12, 34)) == ("a@b+c.tsv", 12, 34)
    with pytest.raises(SourceError, match="<file>@<offset>\\+<length>"):
        parse_span("a.tsv:12")
