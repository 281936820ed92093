"""Segment faces in photos and videos with a trained model.

Per image (or video frame): labelgen's chain finds the face (CenterFace),
estimates its pose (MediaPipe), projects the face contour and cuts the same
aligned crop the training data was made of (``teacher="hull"``: the cheapest
teacher, its label is not used). The model segments the crop, and the crop's
class map is mapped back onto the original pixels with the inverse crop
transform (:func:`labelgen.stages.crop.labels_to_image`); pixels outside the
crop are background.

Outputs, for ``photo.jpg``: ``photo.mask.png`` (uint8 class ids at the
original size: 0 background, 1 face, 2 occlusion / hair) and
``photo.overlay.png`` (face green, class 2 red). For ``clip.mp4``:
``clip/frame_000000.mask.png`` per frame and ``clip.overlay.mp4``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from labelgen.overlay import label_colours, write_picture
from labelgen.stages.crop import labels_to_image
from labelgen.stages.decode import decode_image

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass
class FacePrediction:
    """One image's result: ``mask`` at the original size, ``crop_mask`` at the network size."""

    status: str
    mask: np.ndarray
    crop_mask: np.ndarray | None = None
    message: str = ""


class FacePredictor:
    """Chain (detect -> pose -> crop) + segmenter.

    Args:
        model: Checkpoint, TorchScript or ONNX file (see :class:`train.evaluation.inference.Segmenter`).
        size: Network input side, the crop size.
        device: Torch device for the model.
    """

    def __init__(self, model: str | Path, size: int = 128, device: str = "cpu"):
        from labelgen.chain import ChainConfig, LabelChain
        from train.evaluation.inference import Segmenter

        self.segmenter = Segmenter(model, device=device)
        self.chain = LabelChain(ChainConfig(crop_size=size, teacher="hull"))

    def close(self) -> None:
        self.chain.close()

    def __enter__(self) -> "FacePredictor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, rgb: np.ndarray, key: str = "") -> FacePrediction:
        """Segments the primary face of a uint8 RGB image (an all-background mask if none)."""
        result = self.chain.label_image(rgb, key)
        if not result.ok:
            return FacePrediction(result.status.label, np.zeros(rgb.shape[:2], np.uint8), None, result.message)
        crop_mask = self.segmenter.predict(result.image[None]).numpy()[0].astype(np.uint8)
        mask = labels_to_image(crop_mask, result.crop, rgb.shape)
        return FacePrediction("ok", mask, crop_mask)


def overlay(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blends class colours (face green, class 2 red) over the image where the mask is not background."""
    colours = label_colours(mask)
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.where((mask > 0)[..., None], blended, rgb).astype(np.uint8)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def predict_image(predictor: FacePredictor, path: Path, out_dir: Path) -> dict:
    """Writes ``<stem>.mask.png`` and ``<stem>.overlay.png``; returns a status record."""
    try:
        rgb = decode_image(path.read_bytes())
    except Exception as error:  # unreadable inputs are reported, not fatal, for batch use
        return {"input": str(path), "status": "read_error", "message": str(error)}
    prediction = predictor(rgb, str(path))
    write_picture(out_dir / f"{path.stem}.mask.png", prediction.mask)
    write_picture(out_dir / f"{path.stem}.overlay.png", overlay(rgb, prediction.mask))
    return {"input": str(path), "status": prediction.status, "message": prediction.message,
            "face_pixels": int((prediction.mask == 1).sum()), "class2_pixels": int((prediction.mask == 2).sum())}


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, bgr = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def predict_video(predictor: FacePredictor, path: Path, out_dir: Path, max_frames: int | None = None) -> dict:
    """Writes ``<stem>/frame_NNNNNN.mask.png`` per frame and ``<stem>.overlay.mp4``."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        return {"input": str(path), "status": "read_error", "message": "cannot open video"}
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frame_dir = out_dir / path.stem
    frame_dir.mkdir(parents=True, exist_ok=True)
    writer, video_path, counts = None, out_dir / f"{path.stem}.overlay.mp4", {}
    try:
        for index, rgb in enumerate(_frames(capture)):
            if max_frames is not None and index >= max_frames:
                break
            prediction = predictor(rgb, f"{path}#{index}")
            counts[prediction.status] = counts.get(prediction.status, 0) + 1
            write_picture(frame_dir / f"frame_{index:06d}.mask.png", prediction.mask)
            if writer is None:
                height, width = rgb.shape[:2]
                writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"cannot write {video_path} (no mp4v encoder in this OpenCV build)")
            writer.write(cv2.cvtColor(overlay(rgb, prediction.mask), cv2.COLOR_RGB2BGR))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return {"input": str(path), "status": "ok" if counts else "read_error", "frames": sum(counts.values()),
            "frame_status": counts, "overlay_video": str(video_path)}


def predict_paths(inputs: list[Path], model: str | Path, out_dir: str | Path, size: int = 128,
                  device: str = "cpu", max_frames: int | None = None, progress: bool = True) -> list[dict]:
    """Runs :func:`predict_image` / :func:`predict_video` on every input; returns their records."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    with FacePredictor(model, size=size, device=device) as predictor:
        for path in tqdm(inputs, desc="predicting", unit="file", disable=not progress, file=sys.stderr):
            path = Path(path)
            if is_video(path):
                records.append(predict_video(predictor, path, out_dir, max_frames))
            else:
                records.append(predict_image(predictor, path, out_dir))
    return records
