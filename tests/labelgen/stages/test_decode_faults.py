"""Photos as people have them, and images that must not block a corpus: real files, real decoders.

EXIF orientation (all eight values), the formats people's folders hold (GIF,
WebP, TIFF, BMP, AVIF, JPEG 2000; first frames of animations and multi-page
files), photo formats the decoder does not read (listed in the scan report), and a
real 30000 x 30000 PNG decompression bomb refused as ``too_large`` from its
header. docs/reliability.md lists each with its test.
"""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from tests.helpers import as_made_before_the_option
from PIL import Image

from labelgen.chain import ChainConfig, LabelChain
from labelgen.cli import main
from labelgen.sample import NO_FACE_KEY, sample_image
from labelgen.stages import decode
from labelgen.stages.decode import DEFAULT_MAX_PIXELS, decode_image, header_size
from labelgen.status import StageError, Status
from labelgen.store import LabelStore

LABELGEN = str(Path(sys.executable).parent / "labelgen")
FACE_KEY = "hopper/original.jpg"  # 600 x 512: not square, so a turn changes the shape too
# What a decoder shows for stored pixels with each EXIF orientation (the TIFF/EXIF specification):
# the stored image is the upright one put through the inverse of these.
STORED = {
    1: lambda upright: upright,
    2: lambda upright: upright[:, ::-1],  # mirrored left-right
    3: lambda upright: np.rot90(upright, 2),
    4: lambda upright: upright[::-1],  # mirrored top-bottom
    5: lambda upright: upright.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda upright: np.rot90(upright, 1),  # turned left: a phone held upright, camera on the left
    7: lambda upright: np.rot90(upright, 2).transpose(1, 0, 2),  # mirrored along the other diagonal
    8: lambda upright: np.rot90(upright, -1),  # turned right
}
# Pillow's encoders for the formats the folder source reads, with options for near-lossless files.
FORMATS = {"jpeg": ("JPEG", {"quality": 95}), "png": ("PNG", {}), "bmp": ("BMP", {}),
           "webp": ("WEBP", {"quality": 95}), "gif": ("GIF", {}), "tiff": ("TIFF", {}),
           "avif": ("AVIF", {"quality": 90}), "jp2": ("JPEG2000", {})}


def encoded(rgb: np.ndarray, image_format: str, frames: tuple[np.ndarray, ...] = (), **options) -> bytes:
    """``rgb`` (then ``frames``, for an animation or a multi-page file) as one file of ``image_format``."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(
        buffer, format=image_format, save_all=bool(frames),
        append_images=[Image.fromarray(np.ascontiguousarray(f)) for f in frames], **options)
    return buffer.getvalue()


def oriented_jpeg(upright: np.ndarray, orientation: int) -> bytes:
    """A JPEG holding ``upright`` stored as a camera with that EXIF orientation tag would store it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(STORED[orientation](upright), "JPEG", quality=95, exif=exif.tobytes())


def bomb_png(side: int = 30000) -> bytes:
    """A real, complete PNG of ``side`` x ``side`` black pixels that is small on disk.

    One bit per pixel in the file (grey, bit depth 1: rows of zeros compress
    about 1000:1) and three bytes per pixel once a decoder expands it to RGB:
    30000 x 30000 is 110 KB here and 2.5 GiB decoded.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)  # filter type 0, then the packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return bomb_png()


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return np.ascontiguousarray(sample_image(FACE_KEY))


# -- EXIF orientation --------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_decodes_upright(face, orientation):
    data = oriented_jpeg(face, orientation)
    decoded = decode_image(data)
    assert decoded.shape == face.shape
    # JPEG noise of the same picture is ~2 grey levels per pixel (0..255); another turn or mirror of
    # this photo differs by tens.
    assert np.abs(decoded.astype(int) - face).mean() < 4
    if orientation != 1:
        stored = STORED[orientation](face)
        if stored.shape == face.shape:
            assert np.abs(stored.astype(int) - face).mean() > 20  # the test could fail: stored != upright


def test_a_photo_stored_turned_with_its_tag_labels_like_the_upright_one(chain, face):
    upright = chain.label_bytes(encoded(face, "JPEG", quality=95), "upright")
    turned = chain.label_bytes(oriented_jpeg(face, 6), "turned")
    assert upright.status == turned.status == Status.OK
    assert turned.image_shape == upright.image_shape == face.shape[:2]
    # The same face, up to JPEG noise: boxes within 2% of the face size, face regions of the labels overlap.
    face_side = upright.box[2] - upright.box[0]
    assert np.abs(turned.box - upright.box).max() < 0.02 * face_side
    visible = (upright.label == 1), (turned.label == 1)
    assert (visible[0] & visible[1]).sum() / (visible[0] | visible[1]).sum() > 0.9


# -- formats and frames ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FORMATS)
def test_every_format_the_folder_source_reads_decodes_and_labels(chain, face, name):
    image_format, options = FORMATS[name]
    data = encoded(face, image_format, **options)
    decoded = decode_image(data)
    assert decoded.shape == face.shape and decoded.dtype == np.uint8
    # Lossy and palette (GIF: 256 colours) encodings of the same picture stay within ~8 grey levels.
    assert np.abs(decoded.astype(int) - face).mean() < 8
    assert chain.label_bytes(data, name).status == Status.OK


@pytest.mark.parametrize("image_format, options", [("GIF", {}), ("TIFF", {}), ("WEBP", {"lossless": True}),
                                                   ("PNG", {})], ids=["gif", "tiff", "webp", "apng"])
def test_the_first_frame_of_an_animation_or_multi_page_file_is_the_image(face, image_format, options):
    no_face = cv2.resize(sample_image(NO_FACE_KEY), face.shape[1::-1])
    first_face = decode_image(encoded(face, image_format, (no_face,), **options))
    first_no_face = decode_image(encoded(no_face, image_format, (face,), **options))
    assert np.abs(first_face.astype(int) - face).mean() < 8
    assert np.abs(first_no_face.astype(int) - no_face).mean() < 8


def test_tiff_headers_give_their_size_in_both_byte_orders_and_bigtiff(face):
    little = encoded(face[:, :300], "TIFF")
    big_tiff = encoded(face[:, :300], "TIFF", big_tiff=True)
    assert little[:4] == b"II*\0" and big_tiff[:4] == b"II+\0"
    assert header_size(little) == header_size(big_tiff) == (300, 600)
    # Motorola order, written by hand: one IFD with ImageWidth (SHORT) and ImageLength (LONG).
    motorola = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 2) + struct.pack(
        ">HHIHH", 256, 3, 1, 4000, 0) + struct.pack(">HHII", 257, 4, 1, 90000) + b"\0\0\0\0"
    assert header_size(motorola) == (4000, 90000)


def test_bytes_without_a_header_any_reader_knows_are_not_decoded(monkeypatch):
    """A format whose size cannot be read first (Radiance HDR here; OpenCV would decode it) is refused."""
    hdr = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 4 +X 4\n" + b"\x80\x80\x80\x80" * 16
    assert cv2.imdecode(np.frombuffer(hdr, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    with pytest.raises(StageError) as caught:
        decode_image(hdr)
    assert caught.value.status == Status.DECODE_ERROR and "no image header recognised" in caught.value.message


def test_a_format_pillow_reads_but_opencv_does_not_is_named(face):
    with pytest.raises(StageError) as caught:
        decode_image(encoded(face, "TGA"))
    assert caught.value.status == Status.DECODE_ERROR and "a TGA image OpenCV cannot decode" in caught.value.message


# -- the pixel limit ---------------------------------------------------------------------------------
def test_a_30000_pixel_square_png_bomb_is_too_large_before_any_decoding(bomb, chain, monkeypatch):
    assert len(bomb) < 200_000  # small on disk ...
    assert header_size(bomb) == (30000, 30000)  # ... 900 M pixels, a whole valid stream behind it:
    chunks = bomb[33:]
    assert chunks[4:8] == b"IDAT" and len(zlib.decompress(chunks[8:8 + struct.unpack(">I", chunks[:4])[0]])) == \
        30000 * (1 + 30000 // 8)

    def no_decoding(*args):
        raise AssertionError("the bomb reached the decoder")

    monkeypatch.setattr(decode.cv2, "imdecode", no_decoding)
    result = chain.label_bytes(bomb, "bomb.png")
    assert result.status == Status.TOO_LARGE
    assert "30000x30000 = 900,000,000 pixels" in result.message and f"{DEFAULT_MAX_PIXELS:,}" in result.message
    assert "GiB" in result.message and "--max-pixels" in result.message


def test_the_limit_is_the_chain_configs(face):
    data = encoded(face, "PNG")
    pixels = face.shape[0] * face.shape[1]
    with pytest.raises(StageError) as caught:
        decode_image(data, max_pixels=pixels - 1)
    assert caught.value.status == Status.TOO_LARGE
    assert decode_image(data, max_pixels=pixels).shape == face.shape
    with LabelChain(ChainConfig(teacher="hull", max_pixels=pixels - 1)) as chain:
        assert chain.label_bytes(data).status == Status.TOO_LARGE
    with pytest.raises(ValueError, match="max_pixels"):
        ChainConfig(max_pixels=0)


@pytest.mark.parametrize("data", [b"GIF89a? no, just text" * 10, b"BMW owners' club minutes\n" * 10],
                         ids=["gif-letters", "bmp-letters"])
def test_text_that_starts_like_an_image_is_a_decode_error_not_a_size(data):
    with pytest.raises(StageError) as caught:
        decode_image(data)
    assert caught.value.status == Status.DECODE_ERROR and "signature without" in caught.value.message


def test_stray_bytes_between_jpeg_segments_do_not_hide_the_size(face):
    data = encoded(face, "JPEG", quality=90)
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    padded = data[:app0_end] + b"\0\0\0" + data[app0_end:]  # padding some writers leave; libjpeg skips it
    assert header_size(padded) == (512, 600)
    assert np.abs(decode_image(padded).astype(int) - decode_image(data)).max() == 0


# -- a real folder corpus ----------------------------------------------------------------------------
def test_a_folder_corpus_with_a_bomb_a_gif_and_a_turned_photo_finishes_with_a_status_each(tmp_path, face, bomb):
    """`labelgen run --source folder` on a local Dask cluster; `stats` and `report` show every outcome."""
    no_face = sample_image(NO_FACE_KEY)
    files = {"downloads/bomb.png": bomb, "downloads/face.gif": encoded(face, "GIF"),
             "phone/IMG_0001.JPG": oriented_jpeg(face, 6), "scans/face.tiff": encoded(face, "TIFF"),
             "scans/coffee.bmp": encoded(no_face, "BMP"), "web/face.webp": encoded(face, "WEBP", quality=90),
             "phone/IMG_0002.HEIC": b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "phone/notes.txt": b"not a photo\n"}
    root, out = tmp_path / "photos", tmp_path / "labels.zarr"
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    run = subprocess.run([LABELGEN, "run", "--source", "folder", "--root", str(root), "--out", str(out),
                          "--teacher", "hull", "--workers", "1", "--shard-size", "2"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    store = LabelStore(out, mode="r")
    status = {entry.key: Status(int(code)).label
              for entry, code in zip(store.manifest(slice(None)), store.status())}
    assert status == {"downloads/bomb.png": "too_large", "downloads/face.gif": "ok", "phone/IMG_0001.JPG": "ok",
                      "scans/face.tiff": "ok", "scans/coffee.bmp": "no_face", "web/face.webp": "ok"}
    assert store.attrs["config"]["max_pixels"] == DEFAULT_MAX_PIXELS  # recorded with the job
    heic = str(root / "phone" / "IMG_0002.HEIC")
    assert store.attrs["scan_report"] == {"skipped": 1, "listed": [
        [heic, "not decoded: HEIC images are not a format labelgen reads; convert to JPEG"]]}
    assert "IMG_0002.HEIC: not decoded" in run.stderr and "too_large 1" in run.stderr + run.stdout
    stats = subprocess.run([LABELGEN, "stats", str(out)], capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0 and "too_large" in stats.stdout
    assert "IMG_0002.HEIC: not decoded" in stats.stderr + stats.stdout
    report = subprocess.run([LABELGEN, "report", str(out), "--out", str(tmp_path / "report.html")],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    page = (tmp_path / "report.html").read_text()
    assert "too_large" in page and "30000x30000" in page


# -- the option on the command line ------------------------------------------------------------------
def test_labelgen_label_takes_max_pixels(tmp_path, face):
    photo = tmp_path / "face.jpg"
    photo.write_bytes(encoded(face, "JPEG", quality=95))
    pixels = face.shape[0] * face.shape[1]
    runner = CliRunner()
    for limit, status in [(pixels - 1, "too_large"), (pixels, "ok")]:
        out = tmp_path / f"limit-{limit}"
        done = runner.invoke(main, ["label", str(photo), "--teacher", "hull", "--out-dir", str(out),
                                    "--max-pixels", str(limit)])
        assert done.exit_code == 0, done.output
        assert json.loads((out / "face.json").read_text())["status"] == status
    assert (tmp_path / f"limit-{pixels}" / "face.overlay.png").is_file()  # the overlay decodes under the limit too
    refused = runner.invoke(main, ["label", str(photo), "--max-pixels", "0"])
    assert refused.exit_code == 2 and "--max-pixels" in refused.output


def test_a_store_made_before_the_option_resumes_with_its_limit_then(tmp_path):
    from labelgen.run import Job, stored_setting

    out = tmp_path / "labels.zarr"
    base = ["run", "--source", "sample", "--out", str(out), "--teacher", "hull", "--prepare-only"]
    assert CliRunner().invoke(main, base).exit_code == 0
    as_made_before_the_option(LabelStore(out), "max_pixels")

    assert stored_setting(out, "max_pixels") == 1 << 30
    assert Job.from_fingerprint(LabelStore(out, mode="r").attrs["job"]).config.max_pixels == 1 << 30
    resumed = CliRunner().invoke(main, base)
    assert resumed.exit_code == 0, resumed.output
