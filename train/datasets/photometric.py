"""Photometric augmentation of training batches: what web photos do to a face.

Web-face corpora are full of greyscale photos, colour casts, under- and
over-exposure, heavy JPEG compression, small faces enlarged, blur and sensor
noise. :class:`Photometric` applies random amounts of these to a batch of
uint8 training images, after any synthetic occluders were pasted (so occluders
get the same treatment as the face). It never moves a pixel, so labels stay
valid as they are.

Each image of a batch is augmented with probability ``probability`` (the rest
stay clean, so the clean photos the teacher labels best stay in the mix); an
augmented image gets each kind below with that kind's own probability, in the
order a camera and the web apply them:

========================  =====  ==============================================  =================
kind                       p     range at strength 1 (``strength`` scales it)      by
========================  =====  ==============================================  =================
exposure                   0.30  -2.5 .. +1.5 stops in linear light, clipped       kornia (colour)
                                 (over-exposure burns highlights out)
white balance              0.30  black-body colour temperatures (warm .. cool)     kornia
brightness / contrast /    0.50  brightness 0.8..1.2, contrast 0.7..1.3,           kornia
saturation                       saturation 0.3..1.5
tone curve (gamma)         0.30  gamma 0.45 (brighter) .. 2.2 (darker)             kornia
greyscale                  0.30  all of it                                         kornia
blur                       0.20  Gaussian sigma 0.1 .. 1.5 px                      kornia
sensor noise               0.20  Gaussian, sigma 0.03 (about 8 / 255)              kornia
low resolution             0.25  down to 0.25 .. 0.6 of the side, back up          OpenCV
JPEG re-compression        0.35  quality 10 .. 90                                  OpenCV (libjpeg)
========================  =====  ==============================================  =================

JPEG goes through OpenCV's libjpeg: real compression artefacts, and about ten
times faster than kornia's differentiable approximation.

Randomness: every draw comes from torch's generator, re-seeded from the
integers given to :meth:`Photometric.__call__` (the training loop passes
``(seed, epoch, rank, batch)``) inside :func:`torch.random.fork_rng`, so the
same integers give the same augmented batch and the global RNG (dropout) is
left untouched.

Example:
    >>> images = torch.full((4, 3, 32, 32), 128, dtype=torch.uint8)
    >>> augment = Photometric(probability=1.0)
    >>> out = augment(images, seed=(0, 0, 0, 0))
    >>> out.shape, out.dtype, bool((out == augment(images, seed=(0, 0, 0, 0))).all())
    (torch.Size([4, 3, 32, 32]), torch.uint8, True)
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import kornia.augmentation as K
import numpy as np
import torch

# svc-train's defaults: half of the training draws are augmented, at the full ranges above.
DEFAULT_PROBABILITY = 0.5
DEFAULT_STRENGTH = 1.0

# The kinds, in the order they are applied (see the module table).
KINDS = ("exposure", "white_balance", "colour", "gamma", "greyscale", "blur", "noise", "low_resolution", "jpeg")
# The chance an augmented image gets each kind (the module table's p). Greyscale went from 0.2 to 0.3 for v2: it
# was v1's worst failure (docs/teacher.md), and colour-less photos are common in web corpora.
KIND_PROBABILITY = {"exposure": 0.3, "white_balance": 0.3, "colour": 0.5, "gamma": 0.3, "greyscale": 0.3,
                    "blur": 0.2, "noise": 0.2, "low_resolution": 0.25, "jpeg": 0.35}


def _seed_of(seed: Sequence[int] | int) -> int:
    parts = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(p) for p in seed]
    return int(np.random.SeedSequence([*parts, 0x9407]).generate_state(1, np.uint64)[0] >> 1)


class Photometric:
    """Random photometric degradations of a batch of uint8 images (labels unchanged).

    Args:
        probability: Chance that an image is augmented at all (0 turns it off).
        strength: Scales every range of the module table, in (0, 1]; 1 is the
            harshest (JPEG quality 10, a quarter of the resolution, gamma 2.2).
        kinds: The kinds to apply (each with its own probability); ``None`` for all of :data:`KINDS`.
        kind_probability: Overrides every kind's own probability (tests use 1.0
            to apply exactly one kind).
    """

    def __init__(self, probability: float = DEFAULT_PROBABILITY, strength: float = DEFAULT_STRENGTH,
                 kinds: Sequence[str] | None = None, kind_probability: float | None = None):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"photometric probability must be in [0, 1], got {probability}")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"photometric strength must be in (0, 1], got {strength}")
        unknown = sorted(set(kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown photometric kinds {unknown}; choose from {', '.join(KINDS)}")
        self.probability = probability
        self.strength = strength
        self.kinds = tuple(kind for kind in KINDS if kinds is None or kind in kinds)
        self.steps = [(KIND_PROBABILITY[kind] if kind_probability is None else kind_probability, self._step(kind))
                      for kind in self.kinds]

    def _step(self, kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """One kind as a callable that changes every image of a float N x 3 x H x W batch in [0, 1]."""
        s = self.strength
        if kind == "exposure":
            return _Exposure((-2.5 * s, 1.5 * s))
        if kind == "white_balance":
            return K.RandomPlanckianJitter(mode="blackbody", p=1.0)
        if kind == "colour":
            # No hue: web photos shift colour by white balance (above), and hue costs 10x the rest.
            return K.ColorJitter(brightness=0.2 * s, contrast=0.3 * s, saturation=(1 - 0.7 * s, 1 + 0.5 * s), p=1.0)
        if kind == "gamma":
            return K.RandomGamma(gamma=(1 / (1 + 1.2 * s), 1 + 1.2 * s), p=1.0)
        if kind == "greyscale":
            return K.RandomGrayscale(p=1.0)
        if kind == "blur":
            sigma = 0.1 + 1.4 * s
            side = 2 * int(np.ceil(3 * sigma)) + 1  # the kernel covers +-3 sigma
            return K.RandomGaussianBlur((side, side), (0.1, sigma), p=1.0)
        if kind == "noise":  # noise leaves [0, 1]; clamped so that low resolution and JPEG get valid pixels
            noise = K.RandomGaussianNoise(std=0.03 * s, p=1.0)
            return lambda x: noise(x).clamp(0, 1)
        if kind == "low_resolution":
            return _PerImage(_low_resolution, (1 - 0.75 * s, 1 - 0.4 * s))
        return _PerImage(_jpeg, (90 - 80 * s, 90))

    def __call__(self, images: torch.Tensor, seed: Sequence[int] | int) -> torch.Tensor:
        """Augments a batch.

        Args:
            images: uint8 N x 3 x H x W RGB (CPU).
            seed: Integers the draws are a function of (e.g. ``(seed, epoch, rank, batch)``).

        Returns:
            A new uint8 N x 3 x H x W batch; images not drawn for augmentation are unchanged.
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 N x 3 x H x W images, got {images.dtype} {tuple(images.shape)}")
        if self.probability == 0 or not self.steps or len(images) == 0:
            return images
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed_of(seed))
            chosen = torch.rand(len(images)) < self.probability
            if not chosen.any():
                return images
            x = images[chosen].float().div_(255)
            for probability, step in self.steps:
                # Each kind sees only the images drawn for it: kornia's own p would still compute every image.
                drawn = torch.rand(len(x)) < probability
                if drawn.all():
                    x = step(x)
                elif drawn.any():
                    x[drawn] = step(x[drawn])
        out = images.clone()
        out[chosen] = x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        return out


def expose(x: torch.Tensor, stops: torch.Tensor) -> torch.Tensor:
    """Change the exposure of sRGB images by ``stops`` (one per image; +1 doubles the light) in linear
    light, clipping what passes white, as a camera does: over-exposure burns highlights out, which no
    gamma curve does (gamma keeps white white and every tone apart).

    Args:
        x: float N x 3 x H x W sRGB in [0, 1].
        stops: N exposure changes in stops.

    Example:
        >>> grey = torch.full((2, 3, 1, 1), 0.5)
        >>> expose(grey, torch.tensor([1.0, -1.0])).flatten(1)[:, 0]
        tensor([0.6858, 0.3608])
    """
    from kornia.color import linear_rgb_to_rgb, rgb_to_linear_rgb

    gain = (2.0 ** stops.to(x.dtype)).view(-1, 1, 1, 1)
    return linear_rgb_to_rgb((rgb_to_linear_rgb(x) * gain).clamp(0, 1))


class _Exposure:
    """``expose`` each image by a number of stops uniform in ``bounds``."""

    def __init__(self, bounds: tuple[float, float]):
        self.bounds = bounds

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        stops = self.bounds[0] + (self.bounds[1] - self.bounds[0]) * torch.rand(len(x))
        return expose(x, stops)


class _PerImage:
    """A kind kornia has no batch module for: ``apply(image, amount)`` on each image, ``amount`` uniform in ``bounds``."""

    def __init__(self, apply: Callable[[torch.Tensor, float], torch.Tensor], bounds: tuple[float, float]):
        self.apply, self.bounds = apply, bounds

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        amounts = self.bounds[0] + (self.bounds[1] - self.bounds[0]) * torch.rand(len(x))
        return torch.stack([self.apply(image, float(amount)) for image, amount in zip(x, amounts)])


def _low_resolution(image: torch.Tensor, factor: float) -> torch.Tensor:
    """A small photo enlarged: down-sample by area averaging to ``factor`` of the side, then back up, bilinear."""
    height, width = image.shape[-2:]
    pixels = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
    small = cv2.resize(pixels, (max(2, round(width * factor)), max(2, round(height * factor))),
                       interpolation=cv2.INTER_AREA)
    large = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(large).permute(2, 0, 1)


def _jpeg(image: torch.Tensor, quality: float) -> torch.Tensor:
    """JPEG encode and decode at ``quality`` (libjpeg through OpenCV, 4:2:0 chroma as most web photos)."""
    rgb = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, int(round(quality))])
    if not ok:  # cannot happen for a valid uint8 image; keep the image rather than fail a training step
        return image
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]
    return torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1).float() / 255
