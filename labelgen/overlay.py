"""Pictures of labels: coloured overlays and grids, for people who would rather look."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FACE_COLOUR = (60, 200, 90)
HULL_COLOUR = (255, 255, 255)
CONTOUR_COLOUR = (255, 220, 0)
# Distinct colours for occlusion blobs 2, 3, ... (cycled).
BLOB_COLOURS = np.array([(230, 40, 40), (40, 120, 255), (255, 140, 0), (200, 40, 220), (0, 210, 210),
                         (250, 250, 60), (140, 80, 40), (255, 105, 180)], np.uint8)


def label_colours(label: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB picture of a label map: black background, green face, one colour per blob."""
    picture = np.zeros(label.shape + (3,), np.uint8)
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
    cv2.drawContours(shaded, contours, -1, HULL_COLOUR, 1, cv2.LINE_AA)
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


def caption(picture: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in a dark band along the top of the picture."""
    out = picture.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(out, text[:48], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
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


def overlay_original(image: np.ndarray, box: np.ndarray | None, contour: np.ndarray | None,
                     height: int = 256) -> np.ndarray:
    """The original image at ``height`` rows with the detection box, contour points and hull outline."""
    factor = height / image.shape[0]
    width = max(1, int(round(image.shape[1] * factor)))
    picture = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    picture = np.ascontiguousarray(picture)
    if box is not None:
        x0, y0, x1, y1 = (np.asarray(box) * factor).round().astype(int)
        cv2.rectangle(picture, (x0, y0), (x1, y1), (0, 160, 255), 1, cv2.LINE_AA)
    if contour is not None:
        points = np.asarray(contour, np.float64) * factor
        hull = cv2.convexHull(points.round().astype(np.int32))
        cv2.polylines(picture, [hull], True, HULL_COLOUR, 1, cv2.LINE_AA)
        for x, y in points:
            cv2.circle(picture, (int(round(x)), int(round(y))), 2, CONTOUR_COLOUR, -1, cv2.LINE_AA)
    return picture


def write_picture(path: str | Path, picture: np.ndarray) -> None:
    """Writes a grey (H x W) or RGB (H x W x 3) uint8 picture; raises ``OSError`` when it cannot."""
    array = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR) if picture.ndim == 3 else picture
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")
