"""Pictures of labels: coloured overlays and grids, for people who would rather look.

:data:`LEGEND` is the one table of what each colour means; the pictures draw with its
colours and every legend (the PNG strip of :func:`with_legend`, the report's HTML) is
written from it, so a legend cannot drift from the drawing. :data:`OCCLUDED_MEANING`
says what the "occluded %" beside a picture is, and :func:`occluded_fraction` computes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from labelgen.stages.components import FIRST_BLOB, MIN_BLOB_FRACTION
from labelgen.stages.contour import CONTOUR_VERTICES

FACE_COLOUR = (60, 200, 90)
HULL_COLOUR = (255, 255, 255)
CONTOUR_COLOUR = (255, 220, 0)
BOX_COLOUR = (0, 160, 255)
BACKGROUND_COLOUR = (0, 0, 0)
# 1-pixel lines are drawn without anti-aliasing: OpenCV's dims them to about 93% of their colour, and the
# legend promises the colour itself.
THIN_LINE = cv2.LINE_8
# Distinct colours for occlusion blobs 2, 3, ... (cycled).
BLOB_COLOURS = np.array([(230, 40, 40), (40, 120, 255), (255, 140, 0), (200, 40, 220), (0, 210, 210),
                         (250, 250, 60), (140, 80, 40), (255, 105, 180)], np.uint8)


@dataclass(frozen=True)
class LegendEntry:
    """One thing a picture draws, its colours and what it means.

    Attributes:
        name: a few words, beside the swatch.
        meaning: one sentence, for the report's legend.
        colours: the RGB colours it is drawn in (occlusion blobs have several: one per blob, cycled).
        mark: how it is drawn: ``"area"`` (filled; tinted over the photo in overlays), ``"line"`` or ``"dot"``.
    """

    name: str
    meaning: str
    colours: tuple[tuple[int, int, int], ...]
    mark: str


LEGEND: dict[str, LegendEntry] = {
    "face": LegendEntry(
        "visible face", "label 1: the part of the face region that the teacher sees as face.",
        (FACE_COLOUR,), "area"),
    "blobs": LegendEntry(
        "occlusion blobs (one colour each)",
        f"labels {FIRST_BLOB}, {FIRST_BLOB + 1}, ...: the rest of the face region (what covers the face: a hand, "
        "a cup, glasses), cleaned by the paper's erosion and dilation; each connected blob has its own id and "
        f"colour ({len(BLOB_COLOURS)} colours, repeated), blobs under {MIN_BLOB_FRACTION:.0%} of the region "
        "count as face.",
        tuple(tuple(int(v) for v in colour) for colour in BLOB_COLOURS), "area"),
    "outline": LegendEntry(
        "face region outline",
        f"the edge of the face region: the filled convex hull of the {CONTOUR_VERTICES}-point contour of a 3D "
        "face model, projected with the fitted head pose. Inside it every pixel is visible face or occlusion.",
        (HULL_COLOUR,), "line"),
    "contour": LegendEntry(
        "projected 3D contour points",
        f"the {CONTOUR_VERTICES} contour vertices of the 3D face model, projected into the picture with the "
        "fitted head pose.",
        (CONTOUR_COLOUR,), "dot"),
    "box": LegendEntry("detection box", "the face detector's box around the face.", (BOX_COLOUR,), "line"),
    "background": LegendEntry("background", "label 0: outside the face region.", (BACKGROUND_COLOUR,), "area"),
}
# Which entries each kind of picture draws.
ORIGINAL_LEGEND = ("box", "outline", "contour")  # overlay_original
LABEL_MAP_LEGEND = ("background", "face", "blobs")  # label_colours


def crop_legend(contour: bool = True) -> tuple[str, ...]:
    """The :data:`LEGEND` keys of what :func:`overlay_labels` draws: the contour points only if given them."""
    return ("face", "blobs", "outline") + (("contour",) if contour else ())


# labelgen label's overlay picture: the three side by side.
PANEL_LEGEND = tuple(dict.fromkeys(ORIGINAL_LEGEND + crop_legend() + LABEL_MAP_LEGEND))

OCCLUDED_MEANING = ("Occluded % = occlusion-blob pixels / face-region pixels (visible face + occlusion blobs, "
                    "everything inside the outline), counted on the stored label map.")
GRID_NOTE = "The number after each name is its occluded %. " + OCCLUDED_MEANING
PANEL_NOTE = ("Left: the photo. Middle: the aligned face crop with the label colours tinted over it. "
              "Right: the label map. " + OCCLUDED_MEANING)


def occluded_fraction(labels: np.ndarray) -> np.ndarray:
    """Occluded fraction of label maps ``(..., H, W)``: occlusion-blob pixels over face-region pixels.

    The "occluded %" of the pictures and the report (:data:`OCCLUDED_MEANING`); 0 without a face region.

    Example:
        >>> float(occluded_fraction(np.array([[0, 1, 1, 2], [0, 1, 3, 3]])))  # 3 blob pixels of 6
        0.5
    """
    labels = np.asarray(labels)
    face_region = (labels >= 1).sum(axis=(-2, -1))
    return (labels >= FIRST_BLOB).sum(axis=(-2, -1)) / np.maximum(face_region, 1)


def label_colours(label: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB picture of a label map: black background, green face, one colour per blob."""
    picture = np.empty(label.shape + (3,), np.uint8)
    picture[:] = BACKGROUND_COLOUR
    picture[label == 1] = FACE_COLOUR
    blobs = label >= 2
    picture[blobs] = BLOB_COLOURS[(label[blobs].astype(np.int64) - 2) % len(BLOB_COLOURS)]
    return picture


def overlay_labels(image: np.ndarray, label: np.ndarray, contour: np.ndarray | None = None,
                   alpha: float = 0.45, display_size: int | None = 256) -> np.ndarray:
    """Blend the label colours over the crop; draw the hull outline and the contour points.

    Args:
        image: ``(S, S, 3)`` uint8 RGB crop.
        label: ``(S, S)`` label map of the crop.
        contour: optional ``(n, 2)`` contour in crop pixels.
        display_size: the picture is upscaled to this side so thin outlines stay visible.
    """
    size = display_size or image.shape[0]
    factor = size / image.shape[0]
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (size, size), interpolation=cv2.INTER_NEAREST)
    colours = label_colours(label)
    shaded = np.where((label > 0)[:, :, None], (1 - alpha) * image + alpha * colours, image).astype(np.uint8)
    outline = ((label > 0).astype(np.uint8)) * 255
    contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(shaded, contours, -1, HULL_COLOUR, 1, THIN_LINE)
    if contour is not None:
        for x, y in np.asarray(contour, np.float64) * factor:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(shaded, (int(round(x)), int(round(y))), 2, CONTOUR_COLOUR, -1, cv2.LINE_AA)
    return shaded


# Disagreement colours: where the face was missed, where face was called wrongly, any other mix-up.
MISSED_FACE_COLOUR = (0, 220, 255)
FALSE_FACE_COLOUR = (255, 0, 255)
OTHER_ERROR_COLOUR = (255, 170, 0)


def error_colours(truth: np.ndarray, pred: np.ndarray, face: int = 1) -> np.ndarray:
    """``(H, W, 3)`` RGB picture of where a class map disagrees with the truth.

    Black where they agree; cyan where true face was called something else (missed
    face), magenta where something else was called face (false face), orange for
    every other disagreement (background and occlusion mixed up).

    Example:
        >>> truth = np.array([[0, 1, 1, 2]])
        >>> pred = np.array([[1, 1, 0, 0]])
        >>> error_colours(truth, pred)[0].tolist()
        [[255, 0, 255], [0, 0, 0], [0, 220, 255], [255, 170, 0]]
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    picture = np.zeros(truth.shape + (3,), np.uint8)
    wrong = truth != pred
    picture[wrong] = OTHER_ERROR_COLOUR
    picture[wrong & (truth == face)] = MISSED_FACE_COLOUR
    picture[wrong & (pred == face)] = FALSE_FACE_COLOUR
    return picture


CAPTION_SCALE = 0.38  # of cv2.FONT_HERSHEY_SIMPLEX: about 6 pixels a character
ELLIPSIS = "..."  # OpenCV's Hershey fonts draw ASCII only


def shorten_middle(text: str, max_chars: int) -> str:
    """``text`` whole if it has at most ``max_chars`` characters, else its start and end around ``...``.

    The end keeps three fifths of what is kept: for a path it holds the file name.

    Example:
        >>> shorten_middle("astronaut/cup.jpg", 17)
        'astronaut/cup.jpg'
        >>> shorten_middle("/scratch/casia-webface/0000045/001.jpg", 23)
        '/scratch...0045/001.jpg'
    """
    if len(text) <= max_chars:
        return text
    kept = max_chars - len(ELLIPSIS)
    if kept <= 0:
        return ELLIPSIS[:max(max_chars, 0)]
    head = 2 * kept // 5
    return text[:head] + ELLIPSIS + text[len(text) - (kept - head):]


def _text_width(text: str, scale: float = CAPTION_SCALE) -> int:
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]


def fit_text(text: str, width: int, detail: str = "", scale: float = CAPTION_SCALE) -> str:
    """``text`` shortened in the middle as little as needed for ``text + detail`` to fit ``width`` pixels.

    ``detail`` (counts after a name) is kept whole; the name gives way.
    """
    for budget in range(len(text), -1, -1):
        fitted = shorten_middle(text, budget) + detail
        if _text_width(fitted, scale) <= width:
            return fitted
    return detail


def caption(picture: np.ndarray, text: str, detail: str = "") -> np.ndarray:
    """Write ``text`` then ``detail`` in a dark band along the top; ``text`` shortened in the middle to fit."""
    out = picture.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(out, fit_text(text, out.shape[1] - 6, detail), (3, 12), cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE,
                (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(pictures: list[np.ndarray], columns: int = 8, gap: int = 2) -> np.ndarray:
    """Tile equally sized RGB pictures row by row on a dark background."""
    if not pictures:
        raise ValueError("no pictures to tile")
    height, width = pictures[0].shape[:2]
    rows = -(-len(pictures) // columns)
    columns = min(columns, len(pictures))
    canvas = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, 3), 30, np.uint8)
    for index, picture in enumerate(pictures):
        r, c = divmod(index, columns)
        y, x = gap + r * (height + gap), gap + c * (width + gap)
        canvas[y:y + height, x:x + width] = picture
    return canvas


LEGEND_SCALE = 0.45  # of cv2.FONT_HERSHEY_SIMPLEX
LEGEND_INK = (235, 235, 235)
LEGEND_PAPER = (30, 30, 30)  # the grid's background
SWATCH = 12  # height of a swatch, pixels
_MARGIN, _LINE = 8, 20  # pixels


def _swatch_step(entry: LegendEntry) -> int:
    """Width of each colour's part of ``entry``'s swatch: narrower where there are several colours."""
    return SWATCH if len(entry.colours) == 1 else 7


def _draw_swatch(canvas: np.ndarray, x: int, y: int, entry: LegendEntry) -> None:
    """Draw ``entry``'s swatch at ``(x, y)``, without anti-aliasing: its pixels are its exact colours."""
    if entry.mark == "area":
        step = _swatch_step(entry)
        cv2.rectangle(canvas, (x - 1, y - 1), (x + step * len(entry.colours), y + SWATCH), (110, 110, 110), 1)
        for index, colour in enumerate(entry.colours):  # the grey frame above shows a black area too
            cv2.rectangle(canvas, (x + index * step, y), (x + (index + 1) * step - 1, y + SWATCH - 1), colour, -1)
    elif entry.mark == "line":
        cv2.rectangle(canvas, (x, y), (x + SWATCH - 1, y + SWATCH - 1), entry.colours[0], 2)
    else:
        cv2.circle(canvas, (x + SWATCH // 2, y + SWATCH // 2), 3, entry.colours[0], -1)


def _wrapped(text: str, width: int) -> list[str]:
    """``text`` in lines of whole words, each at most ``width`` pixels wide where a word allows."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_width(f"{lines[-1]} {word}", LEGEND_SCALE) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def legend_strip(keys: tuple[str, ...], width: int, note: str = OCCLUDED_MEANING) -> np.ndarray:
    """A band ``width`` pixels wide: a swatch and the name of each of ``keys`` (:data:`LEGEND`), then ``note``."""
    places, x, y = [], _MARGIN, _MARGIN  # (entry, x, y, where its name starts): left to right, wrapped
    for entry in (LEGEND[key] for key in keys):
        swatch_width = _swatch_step(entry) * len(entry.colours) if entry.mark == "area" else SWATCH
        item_width = swatch_width + 6 + _text_width(entry.name, LEGEND_SCALE)
        if x > _MARGIN and x + item_width > width - _MARGIN:
            x, y = _MARGIN, y + _LINE
        places.append((entry, x, y, x + swatch_width + 6))
        x += item_width + 18
    lines = _wrapped(note, width - 2 * _MARGIN)
    height = y + _LINE * (1 + len(lines)) + _MARGIN // 2
    canvas = np.full((height, width, 3), LEGEND_PAPER, np.uint8)
    for entry, x, y, name_x in places:
        _draw_swatch(canvas, x, y, entry)
        cv2.putText(canvas, entry.name, (name_x, y + SWATCH - 1), cv2.FONT_HERSHEY_SIMPLEX, LEGEND_SCALE,
                    LEGEND_INK, 1, cv2.LINE_AA)
    for index, line in enumerate(lines):
        cv2.putText(canvas, line, (_MARGIN, y + _LINE * (index + 1) + SWATCH - 1), cv2.FONT_HERSHEY_SIMPLEX,
                    LEGEND_SCALE, LEGEND_INK, 1, cv2.LINE_AA)
    return canvas


def with_legend(picture: np.ndarray, keys: tuple[str, ...], note: str = OCCLUDED_MEANING) -> np.ndarray:
    """``picture`` with :func:`legend_strip` of ``keys`` and ``note`` beneath it, as wide as it."""
    return np.vstack([picture, legend_strip(keys, picture.shape[1], note)])


def overlay_original(image: np.ndarray, box: np.ndarray | None, contour: np.ndarray | None,
                     height: int = 256) -> np.ndarray:
    """The original image at ``height`` rows with the detection box, contour points and hull outline."""
    factor = height / image.shape[0]
    width = max(1, int(round(image.shape[1] * factor)))
    picture = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    picture = np.ascontiguousarray(picture)
    if box is not None:
        x0, y0, x1, y1 = (np.asarray(box) * factor).round().astype(int)
        cv2.rectangle(picture, (x0, y0), (x1, y1), BOX_COLOUR, 1, THIN_LINE)
    if contour is not None:
        points = np.asarray(contour, np.float64) * factor
        hull = cv2.convexHull(points.round().astype(np.int32))
        cv2.polylines(picture, [hull], True, HULL_COLOUR, 1, THIN_LINE)
        for x, y in points:
            cv2.circle(picture, (int(round(x)), int(round(y))), 2, CONTOUR_COLOUR, -1, cv2.LINE_AA)
    return picture


def write_picture(path: str | Path, picture: np.ndarray) -> None:
    """Writes a grey (H x W) or RGB (H x W x 3) uint8 picture; raises ``OSError`` when it cannot."""
    array = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR) if picture.ndim == 3 else picture
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")
