"""Draw the same test faces through several models: image | truth | one class map per model.

Usage: python pipelines/paper_picture.py --labels out/paper/synth_test.zarr \
           --model teacher=labelgen/teachers/faceocc-w05-v1.onnx \
           --model consensus=out/paper/runs/student_consensus_s0/checkpoints/best.ckpt \
           --model CE=out/paper/runs/student_ce_s0/checkpoints/best.ckpt --out students_vs_teacher.png

The faces are the first ``--count`` ok rows of the store that have an occlusion
on the face (the store's order is a seeded shuffle, so this is a fixed, unpicked
sample). Class maps are black background, green face, red occlusion; each
model's panel is captioned with its occlusion IoU on that face. Training
checkpoints are run with flip averaging (``--no-flip-average`` turns it off),
as the shipped teacher file does inside.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgen.overlay import caption, grid, label_colours, write_picture  # noqa: E402
from labelgen.store import LabelStore  # noqa: E402

OCCLUSION = 2
PANEL = 128


def occluded_rows(store: LabelStore, count: int) -> np.ndarray:
    """The first ``count`` ok rows whose label map has an occlusion blob."""
    rows = store.ok_indices()
    blobs = store.read("blobs", rows)
    return rows[blobs > 0][:count]


def occlusion_iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """IoU of the occlusion class on one face (nan when neither has any)."""
    union = ((truth == OCCLUSION) | (pred == OCCLUSION)).sum()
    return float(((truth == OCCLUSION) & (pred == OCCLUSION)).sum() / union) if union else float("nan")


def strip(image: np.ndarray, truth: np.ndarray, predictions: dict[str, np.ndarray]) -> np.ndarray:
    """One face: the image, the truth and each model's class map side by side, captioned."""
    panels = [caption(image, "image"), caption(label_colours(truth), "truth")]
    for name, pred in predictions.items():
        panels.append(caption(label_colours(pred), f"{name} occ IoU {100 * occlusion_iou(truth, pred):.0f}"))
    return np.concatenate([cv2.resize(p, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST) for p in panels], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", required=True, help="store with exact labels (labelgen synth --split test)")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                        help="a model to draw (repeat; .onnx, .pt or .ckpt)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--columns", type=int, default=2, help="faces per row of the picture")
    parser.add_argument("--no-flip-average", action="store_true", help="run checkpoints without flip averaging")
    args = parser.parse_args()

    import torch

    from train.evaluation.inference import Segmenter
    from train.losses import class_map_from_label_map

    store = LabelStore(args.labels, mode="r")
    rows = occluded_rows(store, args.count)
    images = store.read("image", rows)
    truth = class_map_from_label_map(torch.from_numpy(store.read("label", rows)).long()).numpy()
    predictions = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        flip = path.endswith(".ckpt") and not args.no_flip_average
        predictions[name] = Segmenter(path, flip_average=flip).predict(images).numpy()
    strips = [strip(images[i], truth[i], {name: pred[i] for name, pred in predictions.items()})
              for i in range(len(rows))]
    write_picture(args.out, grid(strips, columns=args.columns))
    print(f"wrote {args.out}: {len(rows)} faces (store rows {rows.tolist()})")


if __name__ == "__main__":
    main()
