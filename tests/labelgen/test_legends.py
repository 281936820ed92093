"""Legends: each colour a picture's legend names is drawn in that colour, and the commands' pictures carry them.

The legend table (``labelgen.overlay.LEGEND``) is checked against the drawing functions' pixels;
``labelgen show`` and ``labelgen label`` are checked for the strip beneath their pictures and for
titles that keep the whole file name where it fits; ``labelgen report``'s page for its legend.
"""
from __future__ import annotations

import html
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from tests.helpers import chromium_or_skip, console_messages, headless_chromium

from labelgen.cli import main
from labelgen.overlay import (BLOB_COLOURS, ELLIPSIS, GRID_NOTE, LABEL_MAP_LEGEND, LEGEND, OCCLUDED_MEANING,
                              ORIGINAL_LEGEND, PANEL_LEGEND, PANEL_NOTE, crop_legend, fit_text, label_colours, legend_strip,
                              occluded_fraction, overlay_labels, overlay_original, shorten_middle)
from labelgen.report import write_report
from labelgen.sample import sample_jpeg
from labelgen.store import LabelStore

GREY = 100  # the photo under the overlays: no legend colour is grey


def _label_map() -> np.ndarray:
    """128 x 128: face region rows/columns 24..103, blob 2 top left, blob 3 bottom right, blob 10 at the centre.

    Blob 10 is 2 + len(BLOB_COLOURS): it must take blob 2's colour again (the legend says colours repeat).
    """
    label = np.zeros((128, 128), np.uint8)
    label[24:104, 24:104] = 1
    label[30:50, 30:50] = 2
    label[78:98, 78:98] = 3
    label[56:72, 56:72] = 2 + len(BLOB_COLOURS)
    return label


CONTOUR = np.array([[8.0, 8.0], [8.0, 118.0], [118.0, 8.0]])  # in the background, away from everything else


def _where_drawn(key: str) -> dict[str, np.ndarray]:
    """Per colour of LEGEND[key]: where, in the crop overlay / label map of _label_map(), it must appear."""
    label = _label_map()
    region = label > 0
    inner = cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    blob_pixels = {2: label == 2, 3: label == 3}
    if key == "face":
        return {LEGEND[key].colours[0]: (label == 1) & inner}
    if key == "blobs":  # the first two colours are drawn; the third blob repeats the first colour
        return {LEGEND[key].colours[0]: blob_pixels[2] | (label == 2 + len(BLOB_COLOURS)),
                LEGEND[key].colours[1]: blob_pixels[3]}
    if key == "outline":
        return {LEGEND[key].colours[0]: region & ~inner}
    if key == "background":
        return {LEGEND[key].colours[0]: ~region}
    raise KeyError(key)


def _interior(mask: np.ndarray) -> np.ndarray:
    """``mask`` without its 2-pixel rim: pixels no anti-aliased edge reaches."""
    return cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


def test_the_crop_overlay_draws_each_legend_colour_where_the_legend_says():
    image = np.full((128, 128, 3), GREY, np.uint8)
    label = _label_map()
    # alpha 1: the tint is the colour itself, so areas must hold the legend's exact colours
    solid = overlay_labels(image, label, CONTOUR, alpha=1.0, display_size=128)
    for key in ("face", "blobs"):
        for colour, where in _where_drawn(key).items():
            assert (solid[_interior(where)] == colour).all(), (key, colour)
    # the outline: a 1-pixel line along the region's edge, in the legend's colour (allow anti-aliased neighbours)
    outline_colour, edge = next(iter(_where_drawn("outline").items()))
    assert (solid[edge] == outline_colour).all(axis=1).sum() >= 0.9 * 4 * 79, "outline not drawn in its colour"
    # the contour points: the centre of each dot is the legend's colour
    for x, y in CONTOUR.astype(int):
        assert tuple(solid[y, x]) == LEGEND["contour"].colours[0]
    # at the default alpha the photo shows through, but the tint still points at the legend colour
    tinted = overlay_labels(image, label, CONTOUR, display_size=128).astype(np.float64)
    alpha = 0.45  # overlay_labels' default
    for key in ("face", "blobs"):
        for colour, where in _where_drawn(key).items():
            recovered = (tinted[_interior(where)] - (1 - alpha) * GREY) / alpha
            # uint8 truncation loses under 1 grey level, i.e. under 1/alpha < 2.3 in the recovered colour
            assert np.abs(recovered - colour).max() < 1 / alpha + 0.01, (key, colour)
    assert set(crop_legend(contour=True)) == {"face", "blobs", "outline", "contour"}
    assert crop_legend(contour=False) == ("face", "blobs", "outline")


def test_the_label_map_holds_only_its_legend_colours():
    picture = label_colours(_label_map())
    for key in LABEL_MAP_LEGEND:
        for colour, where in _where_drawn(key).items():
            assert (picture[where] == colour).all(), (key, colour)
    legend_colours = {colour for key in LABEL_MAP_LEGEND for colour in LEGEND[key].colours}
    assert {tuple(int(v) for v in pixel) for pixel in picture.reshape(-1, 3)} <= legend_colours


def test_the_original_picture_draws_box_outline_and_points_in_their_legend_colours():
    photo = np.full((200, 200, 3), GREY, np.uint8)
    contour = np.array([[60.0, 60.0], [140.0, 60.0], [140.0, 140.0], [60.0, 140.0]])
    picture = overlay_original(photo, np.array([40, 40, 160, 160]), contour, height=200)
    box_colour = LEGEND["box"].colours[0]
    assert (picture[40, 50:150] == box_colour).all() and (picture[50:150, 160] == box_colour).all()
    assert (picture[60, 70:130] == LEGEND["outline"].colours[0]).all()  # the hull of the contour points
    for x, y in contour.astype(int):
        assert tuple(picture[y, x]) == LEGEND["contour"].colours[0]
    assert set(ORIGINAL_LEGEND) == {"box", "outline", "contour"}
    assert set(PANEL_LEGEND) == set(ORIGINAL_LEGEND) | set(crop_legend()) | set(LABEL_MAP_LEGEND)


def _exact_pixels(picture: np.ndarray, colour) -> int:
    return int((picture == np.array(colour, np.uint8)).all(axis=-1).sum())


def _assert_strip_shows(strip: np.ndarray, keys) -> None:
    """Every colour of every entry of ``keys`` is a block of at least 20 exact pixels in ``strip``."""
    for key in keys:
        for colour in LEGEND[key].colours:
            assert _exact_pixels(strip, colour) >= 20, (key, colour)


@pytest.mark.parametrize("width", [1200, 320])
def test_the_legend_strip_shows_each_entry_and_wraps_to_its_width(width):
    strip = legend_strip(PANEL_LEGEND, width)
    assert strip.shape[1] == width
    _assert_strip_shows(strip, PANEL_LEGEND)
    if width < 400:  # six names and the definition do not fit on two lines: the strip grows instead
        assert strip.shape[0] > legend_strip(PANEL_LEGEND, 1200).shape[0]


def test_occluded_fraction_is_blob_pixels_over_face_region_pixels():
    label = _label_map()
    blob_pixels = 400 + 400 + 256
    assert occluded_fraction(label) == pytest.approx(blob_pixels / 80 ** 2)
    assert occluded_fraction(np.zeros((4, 4), np.uint8)) == 0  # no face region: nothing occluded
    assert occluded_fraction(np.stack([label, label > 0])).tolist() == [pytest.approx(blob_pixels / 6400), 0.0]


def test_shorten_middle_keeps_the_start_and_the_end():
    name = "/scratch/corpora/casia-webface/0000045/001-a-long-descriptive-file-name.jpg"
    assert shorten_middle(name, len(name)) == name and shorten_middle(name, 500) == name
    for budget in (12, 30, len(name) - 1):
        short = shorten_middle(name, budget)
        assert len(short) == budget and ELLIPSIS in short
        head, tail = short.split(ELLIPSIS)
        assert name.startswith(head) and name.endswith(tail) and len(tail) >= len(head) >= 1


def test_fit_text_keeps_the_whole_text_when_it_fits_and_the_detail_always():
    text, detail = "astronaut/cup.jpg", "  blobs=2"
    assert fit_text(text, 400, detail) == text + detail
    narrow = fit_text(text, 80, detail)
    assert narrow.endswith(".jpg" + detail) and narrow.startswith("as") and ELLIPSIS in narrow
    assert cv2.getTextSize(narrow, cv2.FONT_HERSHEY_SIMPLEX, 0.38, 1)[0][0] <= 80


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> LabelStore:
    """Two occluded sample photos labelled by the default teacher into a store."""
    base = tmp_path_factory.mktemp("legends")
    corpus = base / "corpus"
    corpus.mkdir()
    for key in ("astronaut/cup.jpg", "hopper/hand.jpg"):
        (corpus / key.replace("/", "_")).write_bytes(sample_jpeg(key))
    result = CliRunner().invoke(main, ["run", "--source", "folder", "--root", str(corpus), "--out",
                                       str(base / "labels.zarr"), "--serial"])
    assert result.exit_code == 0, result.output
    return LabelStore(base / "labels.zarr", mode="r")


def _title_band(text: str, width: int) -> np.ndarray:
    """The 17 top rows a picture titled ``text`` must have: white text on black (drawn here, not by caption())."""
    band = np.zeros((17, width, 3), np.uint8)
    cv2.putText(band, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return band


def test_show_puts_the_legend_beneath_the_grid_and_occluded_percent_in_the_titles(store, tmp_path):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, ["show", str(store.path), "--out", str(out), "--columns", "2"])
    assert result.exit_code == 0, result.output
    picture = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    tile, gap = 160, 2  # show's tiles and grid's gaps
    grid_height = tile + 2 * gap
    assert picture.shape[1] == 2 * (tile + gap) + gap
    strip = picture[grid_height:]
    assert (strip == legend_strip(crop_legend(contour=False), picture.shape[1], GRID_NOTE)).all()
    _assert_strip_shows(strip, crop_legend(contour=False))
    rows = store.ok_indices()
    assert len(rows) == 2
    for column, (key, label) in enumerate(zip(store.read("key", rows), store.read("label", rows))):
        x = gap + column * (tile + gap)
        title = picture[gap:gap + 17, x:x + tile]
        expected = f"{key} {100 * occluded_fraction(label):.0f}%"
        assert fit_text(str(key), tile - 6, expected[len(str(key)):]) == expected  # short keys: whole
        assert (title == _title_band(expected, tile)).all(), key


@pytest.mark.parametrize("length", [60, 200])
def test_label_titles_show_the_whole_file_name_or_its_start_and_end(tmp_path, monkeypatch, length):
    monkeypatch.chdir(tmp_path)
    name = ("astronaut-holding-a-cup-" * 10)[:length - 4] + ".jpg"  # 60 > the old 48-character cut
    (tmp_path / name).write_bytes(sample_jpeg("astronaut/cup.jpg"))
    result = CliRunner().invoke(main, ["label", name, "--out-dir", "out"])
    assert result.exit_code == 0 and "ok: 1" in result.output, result.output
    stem = name[:-4]
    record = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
    label = cv2.imread(str(tmp_path / "out" / f"{stem}.label.png"), cv2.IMREAD_UNCHANGED)
    picture = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / f"{stem}.overlay.png")), cv2.COLOR_BGR2RGB)
    width = picture.shape[1]
    detail = (f"  blobs={record['occlusion_blobs']}  occluded {100 * occluded_fraction(label):.0f}%  "
              f"pose={record['pose']['method']}")
    title = fit_text(name, width - 6, detail)
    if length == 60:
        assert title == name + detail
    else:
        assert ELLIPSIS in title and title.startswith(name[:10]) and title.endswith(name[-10:] + detail)
    assert (picture[:17] == _title_band(title, width)).all()
    strip = legend_strip(PANEL_LEGEND, width, PANEL_NOTE)
    assert (picture[-len(strip):] == strip).all()
    _assert_strip_shows(picture[-len(strip):], PANEL_LEGEND)


@pytest.fixture(scope="module")
def page(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "report.html"
    write_report(store.path, out)
    return out


def test_the_report_has_the_legend_of_its_crops_and_defines_occluded_percent(page):
    text = page.read_text()
    examples = text.split('<section id="examples">')[1].split("</section>")[0]
    legend = examples.split('<div id="legend">')[1].split("</div>")[0]
    for key in crop_legend(contour=True):  # the report's crops are drawn with their contour points
        entry = LEGEND[key]
        assert html.escape(entry.name) in legend and html.escape(entry.meaning) in legend, key
        for colour in entry.colours:
            assert f"rgb{tuple(colour)}" in legend, (key, colour)
    assert legend.count("<li>") == len(crop_legend(contour=True))
    assert examples.index('<div id="legend">') < examples.index("<figure")  # above the crops
    definition = html.escape(OCCLUDED_MEANING)
    for section in ("distributions", "examples", "occlusion"):  # wherever an occluded % or its histogram is
        assert definition in text.split(f'<section id="{section}">')[1].split("</section>")[0], section


def test_the_report_legend_shows_its_colours_in_a_browser(page, tmp_path):
    chromium = chromium_or_skip()
    shot = tmp_path / "report.png"
    shown = headless_chromium(page, f"--screenshot={shot}", "--window-size=1280,2400", chromium=chromium)
    assert shown.returncode == 0 and console_messages(shown.stderr) == [], shown.stderr[-2000:]
    picture = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    # The area swatches are 14 x 14 CSS pixels (7 wide for each blob colour), and nothing else on the page is in
    # their exact colours (the crops are tinted: blends). The outline's white and the contour points' yellow are
    # also in the crops, so the page source test above checks those.
    for key, least in (("face", 0.8 * 14 * 14), ("blobs", 0.8 * 7 * 14)):
        for colour in LEGEND[key].colours:
            assert _exact_pixels(picture, colour) >= least, (key, colour)
