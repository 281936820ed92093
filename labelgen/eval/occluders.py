"""Occluder generators: what gets pasted over faces to make exact occlusion labels.

Every generator is ``make_<name>(size, rng) -> (patch, alpha)``: ``patch`` is
``uint8`` RGB ``(H, W, 3)``, ``alpha`` ``float32`` ``(H, W)`` in ``[0, 1]`` (soft
edges), and ``size`` is the patch's longer side in pixels. All randomness comes
from the numpy ``Generator``, so a generator called twice with equal generator
states returns equal arrays. Nothing is downloaded: textures and cut-outs come
from the images bundled with scikit-image (objects and textures, never faces).

Generators are grouped into **families** of similar-looking occluders:

=========  ==========================================================  ==========
family     kinds                                                       split
=========  ==========================================================  ==========
objects    rocket, coin, horse, cat_fur, logo, paper (skimage cut-outs) train
polygons   polygon (random star-shaped polygon, random texture)         train
scarves    scarf, surgical_mask, bandana                                train
hands      hand (palm, fingers, thumb, forearm), arm                    held out
glasses    sunglasses                                                   held out
props      microphone, mug, coffee_cup, phone                           held out
skin       skin_blob (a smooth blob in a skin tone, not a limb shape)   optional
=========  ==========================================================  ==========

The split (:data:`TRAIN_FAMILIES`, :data:`HELDOUT_FAMILIES`) keeps the
evaluation occluders unlike the training ones: skin-coloured limbs, dark
lenses over the eyes and hand-held props at the mouth are never seen in
training, so an evaluation on them measures generalisation to new kinds of
occluder, not recall of the pasted shapes.

The optional family ``skin`` (:data:`OPTIONAL_TRAIN_FAMILIES`) is in neither
default: skin-coloured blobs without fingers or limbs, for training a teacher
that must not take every skin-coloured pixel for face (``svc-train --occlude
--occluder-families objects,polygons,scarves,skin``). It shares the held-out
hands' colours and skin texture, though not their shapes, so results of a
teacher trained with it are no longer "never saw a skin-coloured occluder".

Example:
    >>> rng = np.random.default_rng(0)
    >>> patch, alpha = make_occluder("sunglasses", 60, rng)
    >>> patch.dtype, alpha.dtype, max(alpha.shape), patch.shape[:2] == alpha.shape
    (dtype('uint8'), dtype('float32'), 60, True)
    >>> sorted(TRAIN_FAMILIES), sorted(HELDOUT_FAMILIES), OPTIONAL_TRAIN_FAMILIES
    (['objects', 'polygons', 'scarves'], ['glasses', 'hands', 'props'], ('skin',))
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import cv2
import numpy as np

Occluder = tuple[np.ndarray, np.ndarray]  # (uint8 RGB patch, float32 alpha)

# Diverse skin tones (RGB, light to dark), so a teacher cannot learn "the hand is paler than the face".
SKIN_TONES = np.array([(255, 224, 196), (241, 194, 167), (224, 172, 138), (200, 150, 120),
                       (198, 134, 96), (161, 102, 70), (122, 78, 54), (92, 58, 40)], np.float32)
GREY_TEXTURES = ("brick", "grass", "gravel", "moon")  # bundled greyscale materials
COLOUR_PHOTOS = ("coffee", "rocket", "chelsea")  # bundled colour photographs without faces


# -- basic tools ---------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def skimage_image(name: str) -> np.ndarray:
    """A scikit-image bundled image as read-only ``uint8`` RGB (loaded once per process).

    Example:
        >>> skimage_image("coffee").shape
        (400, 600, 3)
    """
    import skimage.data

    from labelgen.stages.decode import to_rgb8

    image = getattr(skimage.data, name)()
    image = (image * 255).astype(np.uint8) if image.dtype == bool else image
    image = np.ascontiguousarray(to_rgb8(image[..., :3] if image.ndim == 3 else image))
    image.setflags(write=False)
    return image


def soften(mask: np.ndarray, blur: int = 3) -> np.ndarray:
    """A boolean mask as a ``float32`` alpha with Gaussian-blurred (anti-aliased) edges.

    Example:
        >>> alpha = soften(np.pad(np.ones((3, 3), bool), 2))
        >>> float(alpha[3, 3]) > 0.5 > float(alpha[0, 0])
        True
    """
    return cv2.GaussianBlur(mask.astype(np.float32), (blur | 1, blur | 1), 0)


def paste(image: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-blend ``patch`` onto a copy of ``image`` with its top-left corner at ``(x, y)``, clipped.

    Returns:
        ``(image, mask)``: the blended image and the occluder's mask in image
        pixels, ``alpha >= 0.5`` (the pixels the occluder dominates).

    Example:
        >>> image, mask = paste(np.zeros((4, 4, 3), np.uint8), np.full((2, 2, 3), 200, np.uint8),
        ...                     np.ones((2, 2), np.float32), 3, -1)
        >>> mask.astype(int).tolist(), int(image[0, 3, 0])
        ([[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], 200)
    """
    out = image.copy()
    mask = np.zeros(image.shape[:2], bool)
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, image.shape[1]), min(y + h, image.shape[0])
    if x0 >= x1 or y0 >= y1:
        return out, mask
    p, a = patch[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32), alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    out[y0:y1, x0:x1] = (a * p + (1 - a) * out[y0:y1, x0:x1]).astype(np.uint8)
    mask[y0:y1, x0:x1] = a[:, :, 0] >= 0.5
    return out, mask


def random_colour(rng: np.random.Generator, low: int = 30, high: int = 230) -> np.ndarray:
    return rng.integers(low, high, size=3).astype(np.float32)


def random_crop(source: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
                zoom: tuple[float, float] = (0.5, 2.0)) -> np.ndarray:
    """A random window of ``source`` resampled to ``shape`` (``(h, w)``), at a random zoom."""
    h, w = shape
    factor = rng.uniform(*zoom)
    ch = int(np.clip(h * factor, 4, source.shape[0]))
    cw = int(np.clip(w * factor, 4, source.shape[1]))
    y, x = int(rng.integers(0, source.shape[0] - ch + 1)), int(rng.integers(0, source.shape[1] - cw + 1))
    window = source[y:y + ch, x:x + cw]
    return cv2.resize(window, (w, h), interpolation=cv2.INTER_AREA if ch > h else cv2.INTER_LINEAR)


def random_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ``uint8`` RGB texture of ``shape`` (``(h, w)``): a tinted material, a photo crop,
    stripes, smooth colour noise or a shaded plain colour.

    Example:
        >>> random_texture((5, 7), np.random.default_rng(1)).shape
        (5, 7, 3)
    """
    h, w = shape
    kind = rng.choice(["material", "photo", "stripes", "noise", "plain"])
    if kind == "material":
        grey = random_crop(skimage_image(str(rng.choice(GREY_TEXTURES))), shape, rng)[..., :1] / 255.0
        texture = grey * random_colour(rng, 60, 255) * rng.uniform(0.9, 1.4)
    elif kind == "photo":
        texture = random_crop(skimage_image(str(rng.choice(COLOUR_PHOTOS))), shape, rng).astype(np.float32)
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, max(4.0, max(shape) / 3))
        yy, xx = np.mgrid[:h, :w]
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) // (period / 2) % 2
        texture = np.where(phase[..., None] > 0, random_colour(rng), random_colour(rng))
    elif kind == "noise":
        coarse = rng.uniform(0, 1, (int(rng.integers(2, 6)),) * 2 + (3,)).astype(np.float32)
        texture = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * 255
    else:
        texture = random_colour(rng) * linear_shading(shape, rng, 0.3)[..., None]
    return np.clip(texture, 0, 255).astype(np.uint8)


def linear_shading(shape: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """A ``float32`` brightness ramp in a random direction, ``1 ± strength / 2``: light from one side."""
    h, w = shape
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    ramp = (xx / max(w - 1, 1) - 0.5) * np.cos(angle) + (yy / max(h - 1, 1) - 0.5) * np.sin(angle)
    return (1 + strength * ramp).astype(np.float32)


def _canvas(size: int, aspect: float) -> tuple[int, int]:
    """``(height, width)`` of a patch whose longer side is ``size`` and height / width is ``aspect``."""
    if aspect >= 1:
        return max(2, size), max(2, int(round(size / aspect)))
    return max(2, int(round(size * aspect))), max(2, size)


def _fit(patch: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a cut-out (patch and boolean mask) so its longer side is ``size``."""
    h, w = mask.shape
    scale = size / max(h, w)
    dsize = (max(2, int(round(w * scale))), max(2, int(round(h * scale))))
    patch = cv2.resize(patch, dsize, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return patch, cv2.resize(mask.astype(np.uint8), dsize, interpolation=cv2.INTER_NEAREST).astype(bool)


# -- objects: cut-outs of scikit-image's bundled photographs --------------------------------------
def coffee_cup(width: int) -> Occluder:
    """The coffee cup of ``skimage.data.coffee`` (an ellipse cut-out), resized to ``width``."""
    coffee = skimage_image("coffee")[40:330, 90:480]
    mask = np.zeros(coffee.shape[:2], np.uint8)
    cv2.ellipse(mask, (195, 145), (190, 140), 0, 0, 360, 1, -1)
    scale = width / coffee.shape[1]
    size = (width, max(1, int(coffee.shape[0] * scale)))
    return cv2.resize(coffee, size, interpolation=cv2.INTER_AREA), soften(cv2.resize(mask, size) > 0)


def make_coffee_cup(size: int, rng: np.random.Generator) -> Occluder:
    """The espresso cup and saucer of ``skimage.data.coffee`` (wider than tall: ``size`` is its width)."""
    return coffee_cup(size)


def make_rocket(size: int, rng: np.random.Generator) -> Occluder:
    """The launch vehicle of ``skimage.data.rocket``: a long thin white object, like a pen or a stick."""
    rocket = skimage_image("rocket")
    outline = np.array([(322, 127), (315, 138), (311, 158), (311, 405), (336, 405), (336, 158), (331, 138)])
    x0, y0, x1, y1 = 306, 122, 341, 410
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [outline - (x0, y0)], 1)
    length = int(rng.integers(120, y1 - y0 + 1))  # a random length: the nose and some of the body
    patch, mask = _fit(rocket[y0:y0 + length, x0:x1], mask[:length].astype(bool), size)
    return patch, soften(mask)


@lru_cache(maxsize=1)
def _coin_circles() -> tuple[tuple[float, float, float], ...]:
    """``(x, y, radius)`` of the separate coins of ``skimage.data.coins`` (Otsu, then enclosing circles)."""
    grey = skimage_image("coins")[..., 0]
    _, binary = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary)
    circles = []
    for index in range(1, count):
        if 800 <= stats[index, cv2.CC_STAT_AREA] <= 2600:  # single coins; merged pairs are larger
            points = np.column_stack(np.nonzero(labels == index)[::-1]).astype(np.float32)
            (x, y), radius = cv2.minEnclosingCircle(points)
            circles.append((x, y, radius))
    return tuple(circles)


def make_coin(size: int, rng: np.random.Generator) -> Occluder:
    """One coin of ``skimage.data.coins``, tinted like copper, silver or gold."""
    x, y, radius = _coin_circles()[int(rng.integers(len(_coin_circles())))]
    coins = skimage_image("coins")
    r = int(np.ceil(radius)) + 1
    x0, y0 = max(int(x) - r, 0), max(int(y) - r, 0)
    window = coins[y0:int(y) + r + 1, x0:int(x) + r + 1].astype(np.float32)
    tint = np.array([(1.1, 0.8, 0.55), (1.0, 1.0, 1.05), (1.15, 1.0, 0.55)][int(rng.integers(3))], np.float32)
    mask = np.zeros(window.shape[:2], np.uint8)
    cv2.circle(mask, (int(round(x - x0)), int(round(y - y0))), int(radius), 1, -1)
    patch, mask = _fit(np.clip(window * tint, 0, 255).astype(np.uint8), mask.astype(bool), size)
    return patch, soften(mask)


def make_horse(size: int, rng: np.random.Generator) -> Occluder:
    """The silhouette of ``skimage.data.horse`` filled with a random texture, maybe mirrored."""
    silhouette = skimage_image("horse")[..., 0] == 0  # the horse is black on white
    rows, cols = np.nonzero(silhouette)
    silhouette = silhouette[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    if rng.random() < 0.5:
        silhouette = silhouette[:, ::-1]
    h, w = _canvas(size, silhouette.shape[0] / silhouette.shape[1])
    mask = cv2.resize(silhouette.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return random_texture((h, w), rng), soften(mask)


def make_cat_fur(size: int, rng: np.random.Generator) -> Occluder:
    """An elliptical patch of fur from ``skimage.data.chelsea`` (forehead or cheek: never the eyes)."""
    chelsea = skimage_image("chelsea")
    y0, y1, x0, x1 = [(0, 95, 140, 340), (160, 300, 0, 130)][int(rng.integers(2))]
    h, w = _canvas(size, rng.uniform(0.5, 1.5))
    patch = random_crop(chelsea[y0:y1, x0:x1], (h, w), rng, zoom=(0.7, 3.0))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)), 0, 0, 360, 1, -1)
    return patch, soften(mask.astype(bool), 5)


def make_logo(size: int, rng: np.random.Generator) -> Occluder:
    """The round scikit-image logo, as a badge or a sign."""
    logo = skimage_image("logo")
    mask = np.zeros(logo.shape[:2], np.uint8)
    cv2.circle(mask, (250, 250), 238, 1, -1)
    patch, mask = _fit(logo, mask.astype(bool), size)
    return patch, soften(mask)


def make_paper(size: int, rng: np.random.Generator) -> Occluder:
    """A sheet of paper with writing (``skimage.data.text`` or ``page``), tinted like paper."""
    source = skimage_image(str(rng.choice(["text", "page"])))
    h, w = _canvas(size, rng.uniform(0.6, 1.4))
    grey = random_crop(source, (h, w), rng, zoom=(0.8, 2.5))[..., :1] / 255.0
    paper = np.array([250, 245, 230], np.float32) * rng.uniform(0.8, 1.0)
    patch = np.clip(0.25 * paper + 0.85 * grey * paper, 0, 255).astype(np.uint8)
    return patch, soften(np.ones((h, w), bool) & _inset(h, w, 1))


def _inset(h: int, w: int, border: int) -> np.ndarray:
    """A boolean ``(h, w)`` rectangle that leaves ``border`` pixels free on every side (for soft edges)."""
    mask = np.zeros((h, w), bool)
    mask[border:h - border, border:w - border] = True
    return mask


# -- polygons ----------------------------------------------------------------------------------------
def star_polygon(shape: tuple[int, int], rng: np.random.Generator, vertices: tuple[int, int] = (3, 9),
                 radii: tuple[float, float] = (0.45, 1.0)) -> np.ndarray:
    """A filled random star-shaped polygon as a ``float32`` 0/1 mask of ``shape`` (``(h, w)``).

    Vertices (between ``vertices[0]`` and ``vertices[1]``, inclusive) sit at sorted random
    angles around the centre, at random fractions ``radii`` of the half-extent.
    """
    h, w = shape
    count = int(rng.integers(vertices[0], vertices[1] + 1))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radius = rng.uniform(radii[0], radii[1], count)
    points = np.column_stack([w / 2 + (w / 2 - 1) * radius * np.cos(angles),
                              h / 2 + (h / 2 - 1) * radius * np.sin(angles)])
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1.0)
    return mask


def make_polygon(size: int, rng: np.random.Generator) -> Occluder:
    """A random star-shaped polygon (3 to 9 vertices) filled with a random texture."""
    h, w = _canvas(size, rng.uniform(0.5, 2.0))
    mask = star_polygon((h, w), rng)
    return random_texture((h, w), rng), soften(mask > 0)


# -- scarves ------------------------------------------------------------------------------------------
def scarf(width: int, colours: np.ndarray, pattern: str = "diagonal") -> Occluder:
    """A scarf pulled over the chin: half an ellipse hanging from the top edge, two colours.

    Args:
        width: patch width (the height is half of it).
        colours: ``(2, 3)`` ``uint8`` colours of the pattern.
        pattern: ``diagonal`` or ``horizontal`` stripes, ``check``, or ``plain``.
    """
    height = width // 2
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    period = max(2, width // 12)
    stripes = {"diagonal": (cols + rows) // period % 2, "horizontal": (rows // period % 2) + 0 * cols,
               "check": (cols // period + rows // period) % 2, "plain": 0 * (cols + rows)}[pattern]
    patch = colours[stripes]
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, 0), (width // 2, height), 0, 0, 180, 1, -1)
    return patch, soften(mask, 5)


def make_scarf(size: int, rng: np.random.Generator) -> Occluder:
    """A striped, checked or plain scarf, with a knitted texture half of the time."""
    colours = rng.integers(40, 220, size=(2, 3)).astype(np.uint8)
    patch, alpha = scarf(size, colours, str(rng.choice(["diagonal", "horizontal", "check", "plain"])))
    if rng.random() < 0.5:
        knit = random_crop(skimage_image("brick"), patch.shape[:2], rng)[..., :1] / 255.0
        patch = np.clip(patch * (0.6 + 0.6 * knit), 0, 255).astype(np.uint8)
    return patch, alpha


def make_surgical_mask(size: int, rng: np.random.Generator) -> Occluder:
    """A pleated medical or cloth face mask: a rounded band with horizontal folds."""
    h, w = _canvas(size, rng.uniform(0.55, 0.75))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 1, -1)
    mask[h // 5:h - h // 5, 1:w - 1] = 1  # squarer sides than an ellipse
    colour = [np.array((170, 205, 230), np.float32), np.array((240, 240, 240), np.float32),
              random_colour(rng)][int(rng.integers(3))]
    rows = np.arange(h, dtype=np.float32)[:, None]
    folds = 1 - 0.12 * (np.sin(rows / max(h, 1) * np.pi * 2 * rng.integers(2, 5)) > 0.6)
    patch = colour * (folds * linear_shading((h, w), rng, 0.3))[..., None]
    return np.clip(patch, 0, 255).astype(np.uint8), soften(mask.astype(bool), 3)


def make_bandana(size: int, rng: np.random.Generator) -> Occluder:
    """A triangular bandana over nose and mouth, point down, with a random texture."""
    h, w = _canvas(size, rng.uniform(0.6, 0.9))
    mask = np.zeros((h, w), np.uint8)
    tip = (int(w * rng.uniform(0.4, 0.6)), h - 1)
    cv2.fillPoly(mask, [np.array([(0, 0), (w - 1, 0), tip], np.int32)], 1)
    return random_texture((h, w), rng), soften(mask.astype(bool))


# -- hands ---------------------------------------------------------------------------------------------
def hand(width: int, tone: np.ndarray, *, tips: Sequence[float] = (0.08, 0.08, 0.08, 0.08),
         spread: float = 0.03, thumb: bool = False, forearm: float = 0.0) -> Occluder:
    """A skin-toned palm with four fingers (and maybe a thumb and a forearm), shaded left to right.

    Args:
        width: patch width; the hand is ``1.3 * width`` tall, plus the forearm.
        tone: RGB skin colour (``float32``, may exceed 255 before shading).
        tips: height of each fingertip as a fraction of the hand height.
        spread: sideways lean of the fingers (fraction of the width per finger).
        thumb: draw a thumb on the left.
        forearm: length of a forearm below the palm, as a fraction of the hand height.
    """
    height = int(width * 1.3)
    total = height + int(forearm * height)
    mask = np.zeros((total, width), np.uint8)
    cv2.ellipse(mask, (width // 2, int(height * 0.68)), (int(width * 0.42), int(height * 0.3)), 0, 0, 360, 1, -1)
    for i, tip in enumerate(tips):
        x = int(width * (0.2 + 0.2 * i))
        cv2.line(mask, (x, int(height * 0.55)), (x + int(width * spread * (i - 1.5)), int(height * tip)), 1,
                 max(2, width // 7))
    if thumb:
        cv2.line(mask, (int(width * 0.25), int(height * 0.8)), (int(width * 0.06), int(height * 0.45)), 1,
                 max(2, width // 6))
    if forearm:
        cv2.line(mask, (width // 2, int(height * 0.75)), (width // 2, total), 1, max(2, int(width * 0.55)))
    shade = np.linspace(1.1, 0.75, width, dtype=np.float32)[None, :, None]
    patch = np.clip(tone * shade * np.ones((total, width, 1), np.float32), 0, 255).astype(np.uint8)
    return patch, soften(mask, 5)


def skin_tone(rng: np.random.Generator) -> np.ndarray:
    """A random skin colour: one of :data:`SKIN_TONES`, slightly varied."""
    return SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] * rng.uniform(0.9, 1.05, 3).astype(np.float32)


def _skin_texture(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Subtle blotches and a light direction, so a hand is not a flat colour."""
    h, w = patch.shape[:2]
    blotches = cv2.resize(rng.normal(0, 0.04, (max(2, h // 6), max(2, w // 6))).astype(np.float32), (w, h))
    light = linear_shading((h, w), rng, 0.35)
    return np.clip(patch * (light + blotches)[..., None], 0, 255).astype(np.uint8)


def make_hand(size: int, rng: np.random.Generator) -> Occluder:
    """A procedural hand: random skin tone, finger lengths and spread, maybe a thumb and a forearm."""
    forearm = float(rng.choice([0.0, rng.uniform(0.2, 0.8)]))
    width = max(2, int(round(size / (1.3 * (1 + forearm)))))
    tips = tuple(np.array([0.14, 0.06, 0.04, 0.12]) + rng.uniform(-0.04, 0.06, 4))
    patch, alpha = hand(width, skin_tone(rng), tips=tips, spread=rng.uniform(0.0, 0.1),
                        thumb=bool(rng.random() < 0.7), forearm=forearm)
    if rng.random() < 0.5:
        patch, alpha = patch[:, ::-1], alpha[:, ::-1]  # a right hand
    return _skin_texture(np.ascontiguousarray(patch), rng), np.ascontiguousarray(alpha)


def make_arm(size: int, rng: np.random.Generator) -> Occluder:
    """A bare forearm across the patch (a tapered limb with a fist), maybe in a textured sleeve."""
    h, w = _canvas(size, rng.uniform(0.3, 0.5))
    mask = np.zeros((h, w), np.uint8)
    thick_wrist, thick_elbow = int(h * 0.45), int(h * 0.7)
    steps = 12
    for i in range(steps):  # a tapered limb: overlapping discs from beyond the left edge to the wrist
        t = i / (steps - 1)
        x = int(-thick_elbow / 2 + t * (w + thick_elbow / 2 - h * 0.45))
        cv2.circle(mask, (x, h // 2), max(1, int((thick_elbow + t * (thick_wrist - thick_elbow)) / 2)), 1, -1)
    cv2.ellipse(mask, (int(w - h * 0.45), h // 2), (int(h * 0.4), int(h * 0.45) - 1), 0, 0, 360, 1, -1)
    yy = np.arange(h, dtype=np.float32)[:, None, None]
    roundness = 1.05 - 0.35 * np.abs(yy / max(h - 1, 1) - 0.4)  # a cylinder lit from above
    patch = np.clip(skin_tone(rng) * roundness * np.ones((h, w, 1), np.float32), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        cuff = int(w * rng.uniform(0.2, 0.45))
        patch[:, :cuff] = random_texture((h, cuff), rng)
    if rng.random() < 0.5:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    return _skin_texture(np.ascontiguousarray(patch), rng), soften(np.ascontiguousarray(mask).astype(bool), 5)


# -- skin blobs (optional training family) -------------------------------------------------------------
def make_skin_blob(size: int, rng: np.random.Generator) -> Occluder:
    """A smooth random blob (a blurred star polygon) in a random skin tone, shaded and blotched."""
    h, w = _canvas(size, rng.uniform(0.4, 2.5))
    polygon = star_polygon((h, w), rng, vertices=(4, 8), radii=(0.5, 0.9))
    smooth = cv2.GaussianBlur(polygon, (0, 0), max(1.0, 0.08 * min(h, w))) > 0.5  # rounded corners
    patch = np.clip(skin_tone(rng) * np.ones((h, w, 1), np.float32), 0, 255).astype(np.uint8)
    return _skin_texture(patch, rng), soften(smooth)


# -- glasses -------------------------------------------------------------------------------------------
def sunglasses(width: int, lens_colour: Sequence[int] = (20, 22, 28), *, reflection: int = 25,
               shape: str = "oval", frame: Sequence[int] | None = None, opacity: float = 1.0) -> Occluder:
    """Two dark lenses and a bridge.

    Args:
        width: patch width (the height is a third of it).
        lens_colour: RGB of the lenses.
        reflection: brightness added to the upper half (a reflection).
        shape: ``oval``, ``round`` or ``aviator`` (drooping outer corners) lenses.
        frame: RGB of a frame drawn around the lenses; ``None`` for frameless.
        opacity: alpha of the lenses (tinted lenses let the eyes show through).
    """
    height = max(4, width // 3)
    mask = np.zeros((height, width), np.uint8)
    lens = (width // 5, height // 2 - 1)
    if shape == "round":
        lens = (min(lens),) * 2
    centres = ((width // 4, height // 2), (3 * width // 4, height // 2))
    tilts = (-12, 12) if shape == "aviator" else (0, 0)
    for centre, tilt in zip(centres, tilts):
        cv2.ellipse(mask, centre, lens, tilt, 0, 360, 1, -1)
    bridge = max(1, height // 10)
    cv2.line(mask, (width // 4, height // 3), (3 * width // 4, height // 3), 1, bridge)
    patch = np.zeros((height, width, 3), np.uint8)
    patch[:] = lens_colour
    patch[: height // 2] += np.uint8(reflection)  # a reflection on the upper half
    alpha = soften(mask)
    if opacity < 1.0 or frame is not None:
        rim = np.zeros_like(mask)
        for centre, tilt in zip(centres, tilts):
            cv2.ellipse(rim, centre, lens, tilt, 0, 360, 1, max(1, width // 40))
        cv2.line(rim, (width // 4, height // 3), (3 * width // 4, height // 3), 1, bridge)
        if frame is not None:
            patch[rim > 0] = frame
        alpha = np.maximum(alpha * opacity, soften(rim > 0))  # the frame stays opaque
    return patch, alpha


def make_sunglasses(size: int, rng: np.random.Generator) -> Occluder:
    """Sunglasses of a random shape, tint, reflection and frame."""
    tint = rng.integers(5, 70, 3) * np.array([1, 1, 1.2]) if rng.random() < 0.7 else rng.integers(20, 140, 3)
    frame = None if rng.random() < 0.4 else tuple(int(v) for v in rng.integers(0, 200, 3))
    return sunglasses(size, tuple(int(min(v, 200)) for v in tint), reflection=int(rng.integers(0, 45)),
                      shape=str(rng.choice(["oval", "round", "aviator"])), frame=frame,
                      opacity=float(rng.uniform(0.8, 1.0)))


# -- props ---------------------------------------------------------------------------------------------
def make_microphone(size: int, rng: np.random.Generator) -> Occluder:
    """A hand-held microphone: a meshed ball head on a dark handle, maybe with a coloured cube flag."""
    h, w = _canvas(size, rng.uniform(2.5, 3.5))
    radius = w // 2 - 1
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 2, radius + 1), radius, 1, -1)
    handle = np.array([(w // 2 - radius * 0.55, radius * 1.6), (w // 2 + radius * 0.55, radius * 1.6),
                       (w // 2 + radius * 0.35, h - 1), (w // 2 - radius * 0.35, h - 1)], np.int32)
    cv2.fillPoly(mask, [handle], 1)
    handle_colour = rng.integers(10, 70, 3).astype(np.float32)
    patch = np.ones((h, w, 3), np.float32) * handle_colour
    yy, xx = np.mgrid[:h, :w]
    mesh = ((xx + yy) % 3 == 0) | ((xx - yy) % 3 == 0)
    head = (yy < 2 * radius + 2)
    patch[head] = np.where(mesh[head, None], 90, 175) * rng.uniform(0.7, 1.1)
    if rng.random() < 0.5:  # a broadcaster's cube below the head
        top = int(radius * 2.1)
        cube = slice(top, min(h, top + int(w * 0.9)))
        mask[cube, :] = 1
        patch[cube, :] = random_colour(rng)
    shading = linear_shading((h, w), rng, 0.4)[..., None]
    return np.clip(patch * shading, 0, 255).astype(np.uint8), soften(mask.astype(bool))


def make_mug(size: int, rng: np.random.Generator) -> Occluder:
    """A drinking mug: a shaded cylinder with a handle, a dark rim and a plain or printed surface."""
    h, w = _canvas(size, rng.uniform(0.8, 1.1))
    body_w = int(w * 0.72)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 10:h - 1, 1:body_w] = 1
    cv2.ellipse(mask, (body_w // 2, h // 10), (body_w // 2 - 1, h // 10), 0, 0, 360, 1, -1)
    cv2.ellipse(mask, (body_w, h // 2), (int(w * 0.24), int(h * 0.22)), 0, -90, 90, 1, max(2, w // 12))
    surface = random_texture((h, w), rng) if rng.random() < 0.4 else np.ones((h, w, 3)) * random_colour(rng)
    xs = np.arange(w, dtype=np.float32)[None, :]
    cylinder = 0.65 + 0.45 * np.sin(np.clip(xs / max(body_w, 1), 0, 1) * np.pi)  # bright middle, dark sides
    patch = surface * cylinder[..., None]
    rim = np.zeros((h, w), np.uint8)
    cv2.ellipse(rim, (body_w // 2, h // 10), (max(1, body_w // 2 - 3), max(1, h // 10 - 2)), 0, 0, 360, 1, -1)
    patch[rim > 0] = rng.integers(20, 90, 3)  # the drink seen from above
    return np.clip(patch, 0, 255).astype(np.uint8), soften(mask.astype(bool))


def make_phone(size: int, rng: np.random.Generator) -> Occluder:
    """A mobile phone: a rounded dark body with a lit or dark screen."""
    h, w = _canvas(size, rng.uniform(1.8, 2.2))
    mask = np.zeros((h, w), np.uint8)
    r = max(1, w // 6)
    cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1, -1)
    cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(mask, (cx, cy), r, 1, -1)
    patch = np.ones((h, w, 3), np.float32) * rng.integers(10, 200, 3)
    margin = max(1, w // 12)
    screen = (slice(margin * 2, h - margin * 2), slice(margin, w - margin))
    patch[screen] = random_texture((h - 4 * margin, w - 2 * margin), rng) if rng.random() < 0.5 else 15
    return np.clip(patch * linear_shading((h, w), rng, 0.3)[..., None], 0, 255).astype(np.uint8), \
        soften(mask.astype(bool))


# -- registry ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OccluderKind:
    """A generator and how it is typically placed on a face.

    Attributes:
        name: the kind's name.
        family: its family (see the module docstring).
        make: ``make(size, rng) -> (patch, alpha)``.
        scale: range of the patch's longer side as a fraction of the face width.
        anchors: where it tends to sit: ``eyes``, ``mouth`` or ``any`` (uniform over the face).
        max_rotation: largest in-plane rotation in degrees.
    """

    name: str
    family: str
    make: Callable[[int, np.random.Generator], Occluder]
    scale: tuple[float, float]
    anchors: tuple[str, ...] = ("eyes", "mouth", "mouth", "any")
    max_rotation: float = 40.0


KINDS: dict[str, OccluderKind] = {kind.name: kind for kind in [
    OccluderKind("rocket", "objects", make_rocket, (0.6, 1.2), max_rotation=90),
    OccluderKind("coin", "objects", make_coin, (0.2, 0.45)),
    OccluderKind("horse", "objects", make_horse, (0.4, 0.9)),
    OccluderKind("cat_fur", "objects", make_cat_fur, (0.3, 0.7)),
    OccluderKind("logo", "objects", make_logo, (0.25, 0.55)),
    OccluderKind("paper", "objects", make_paper, (0.35, 0.8)),
    OccluderKind("polygon", "polygons", make_polygon, (0.2, 0.8)),
    OccluderKind("scarf", "scarves", make_scarf, (0.9, 1.3), ("mouth",), 20),
    OccluderKind("surgical_mask", "scarves", make_surgical_mask, (0.7, 1.0), ("mouth",), 15),
    OccluderKind("bandana", "scarves", make_bandana, (0.8, 1.2), ("mouth",), 20),
    OccluderKind("hand", "hands", make_hand, (0.6, 1.1), ("mouth", "mouth", "eyes", "any"), 60),
    OccluderKind("arm", "hands", make_arm, (0.8, 1.4), ("mouth", "any"), 45),
    OccluderKind("sunglasses", "glasses", make_sunglasses, (0.8, 1.05), ("eyes",), 12),
    OccluderKind("microphone", "props", make_microphone, (0.45, 0.8), ("mouth",), 35),
    OccluderKind("mug", "props", make_mug, (0.35, 0.6), ("mouth",), 20),
    OccluderKind("coffee_cup", "props", make_coffee_cup, (0.5, 0.8), ("mouth",), 20),
    OccluderKind("phone", "props", make_phone, (0.35, 0.6), ("any", "mouth"), 40),
    OccluderKind("skin_blob", "skin", make_skin_blob, (0.35, 1.0), max_rotation=90),
]}
FAMILIES: dict[str, tuple[str, ...]] = {}
for _kind in KINDS.values():
    FAMILIES[_kind.family] = FAMILIES.get(_kind.family, ()) + (_kind.name,)
del _kind
TRAIN_FAMILIES: tuple[str, ...] = ("objects", "polygons", "scarves")
HELDOUT_FAMILIES: tuple[str, ...] = ("hands", "glasses", "props")
OPTIONAL_TRAIN_FAMILIES: tuple[str, ...] = ("skin",)


def kinds_of(families: Sequence[str]) -> list[OccluderKind]:
    """The occluder kinds of ``families``, in registry order.

    Raises:
        ValueError: for an unknown family name.

    Example:
        >>> [kind.name for kind in kinds_of(["glasses", "props"])]
        ['sunglasses', 'microphone', 'mug', 'coffee_cup', 'phone']
    """
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown occluder families {unknown}; known: {sorted(FAMILIES)}")
    return [kind for kind in KINDS.values() if kind.family in families]


def make_occluder(name: str, size: int, rng: np.random.Generator) -> Occluder:
    """Make one occluder of kind ``name`` whose longer side is about ``size`` pixels."""
    patch, alpha = KINDS[name].make(max(8, int(size)), rng)
    return np.ascontiguousarray(patch, np.uint8), np.ascontiguousarray(np.clip(alpha, 0, 1), np.float32)
