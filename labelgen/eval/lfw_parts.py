"""LFW Part Labels on disk: where it is, its official splits, and its image/label pairs.

The data lives outside the project: in the folder named by the environment
variable ``SVC_LFW_PARTS`` if it is set, else at
``<project root>/../shared/data/lfw_parts``. It holds ``images/<stem>.jpg``
(250x250 RGB), ``labels/<stem>.png`` (uint8, 0 background, 1 face including the
neck, 2 hair) and ``splits/{train,val,test}.txt`` (one stem per line, official
order). Plain numpy: ``labelgen`` uses it without torch, and
``train.datasets.lfw_parts`` builds its torch datasets on it.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

SPLITS = ("train", "val", "test")
CLASS_NAMES = ("background", "face", "hair")
FACE, HAIR = 1, 2
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ROOT_ENV = "SVC_LFW_PARTS"
# The one description of the default, for every command's --root / --lfw-root help.
DEFAULT_ROOT_HELP = "[default: $SVC_LFW_PARTS or ../shared/data/lfw_parts beside the project]"


def lfw_parts_location(project_root: str | Path | None = None) -> Path:
    """Where LFW Part Labels is expected, whether or not it is there.

    ``$SVC_LFW_PARTS`` when set (it wins over ``project_root``), else
    ``<project root>/../shared/data/lfw_parts``.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {ROOT_ENV: ""}):  # unset, whatever this shell says
        ...     print(lfw_parts_location("/p/proj"))
        /p/shared/data/lfw_parts
        >>> with mock.patch.dict(os.environ, {ROOT_ENV: "/p/elsewhere"}):
        ...     print(lfw_parts_location("/p/proj"))
        /p/elsewhere
    """
    configured = os.environ.get(ROOT_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    base = Path(project_root) if project_root is not None else PROJECT_ROOT
    return (base.resolve().parent / "shared" / "data" / "lfw_parts").resolve()


def default_lfw_parts_root(project_root: str | Path | None = None) -> Path:
    """:func:`lfw_parts_location`, checked to exist.

    Raises:
        FileNotFoundError: if that folder does not exist (the message names the path
            and how to point at another one).
    """
    root = lfw_parts_location(project_root)
    if not root.is_dir():
        raise FileNotFoundError(f"LFW Part Labels not found at {root}; set {ROOT_ENV}=<dir> "
                                "(or pass the folder with --root / --lfw-root)")
    return root


def read_split(root: str | Path, split: str) -> list[str]:
    """Stems of one split (train 1500, val 500, test 927), in the official order.

    Splits joined with ``+`` are read one after the other: ``"train+val"`` is the
    2,000 train and val stems.

    Raises:
        ValueError: for a split name other than train / val / test, or one named twice.
        FileNotFoundError: if the split file is missing.
    """
    names = split.split("+")
    if len(set(names)) != len(names):
        raise ValueError(f"split named twice in {split!r}")
    stems = []
    for name in names:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (or several joined with '+'), got {split!r}")
        path = Path(root) / "splits" / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"split file not found: {path}")
        stems += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return stems


def load_pair(root: str | Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """``(image, label)``: uint8 ``H x W x 3`` RGB and uint8 ``H x W`` classes, at native size.

    Raises:
        FileNotFoundError: if either file is missing or unreadable.
    """
    root = Path(root)
    image_path, label_path = root / "images" / f"{stem}.jpg", root / "labels" / f"{stem}.png"
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {image_path}")
    if label is None:
        raise FileNotFoundError(f"cannot read label {label_path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), label
