"""Evaluation on LFW Part Labels: one confusion matrix over the whole split.

Scores (all from a single matrix accumulated over every pixel of the split, as
the published evaluation does): per-class IoU, mean IoU with background
included, pixel accuracy, per-class and mean recall; plus the paper's sparsity
error, the mean over images of |#components(GT) - #components(prediction)|
(8-connected, background not counted). Each is computed twice:

* at 128x128: the network resolution, against the nearest-resized GT;
* at 250x250: the 128 prediction upsampled (nearest, pixel-centre aligned) to
  the original GT.

Superpixel accuracy, the dataset's original measure, cannot be computed: the
superpixel files are not part of the data copy.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path
from typing import Callable, NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from labelgen.eval.lfw_parts import FACE
from train.datasets.lfw_parts import CLASS_NAMES, NATIVE_SIZE, default_lfw_parts_root, load_pair, read_split
from train.evaluation.metrics import ConfusionMatrix, SparsityMeter, resize_nearest
from train.models import image_to_tensor

# The authors' released model on this test split at 128x128 input (see the data README).
PUBLISHED_128 = {"pixel_acc": 96.06, "miou": 87.41, "iou_background": 95.75, "iou_face": 90.63,
                 "iou_hair": 75.84, "sparsity": 3.51}
SUPERPIXEL_NOTE = ("superpixel accuracy: not computed (the LFW Part Labels copy has no superpixel files)")


class SegmentationScores:
    """Confusion matrix + sparsity meter at one resolution.

    Args:
        num_classes: Classes K (background = 0 is scored and included in the means).
    """

    def __init__(self, num_classes: int = 3):
        self.cm = ConfusionMatrix(num_classes, ignore_index=None)
        self.sparsity = SparsityMeter(background=0)

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """Adds one H x W pair or an N x H x W batch."""
        self.cm.update(pred, gt)
        self.sparsity.update(pred, gt)

    def compute(self) -> dict:
        """Scores in percent (sparsity in components): ``pixel_acc``, ``miou``, ``iou``,
        ``recall``, ``mean_recall``, ``sparsity`` and the number of ``images``."""
        s = self.cm.compute()
        return {
            "pixel_acc": 100 * s["pixel_acc"],
            "miou": 100 * s["miou"],
            "iou": (100 * s["iou"]).tolist(),
            "recall": (100 * s["recall"]).tolist(),
            "mean_recall": 100 * s["mean_recall"],
            "sparsity": self.sparsity.compute(),
            "images": self.sparsity.count,
        }


class FaceRegionScores:
    """Face and occlusion scores inside the true face region (true face or occluder pixels).

    This is the teacher's job in the labelling chain: the hull gives the face region
    and the teacher says which of it is visible face. Pixels the truth calls
    background are left out, so outline errors and other faces in the picture do not
    count (the whole-crop scores of :class:`SegmentationScores` do count them). Scores
    are in percent: ``iou_face_in`` and ``iou_occlusion_in`` (occlusion recall needs no
    second version: every true occluder pixel lies in the region).

    Example:
        >>> truth = np.array([[0, 1, 1, 2, 2]])
        >>> scores = FaceRegionScores()
        >>> scores.update(np.array([[1, 1, 0, 2, 1]]), truth)
        >>> {name: round(value, 1) for name, value in scores.compute().items()}
        {'iou_face_in': 33.3, 'iou_occlusion_in': 50.0}
    """

    def __init__(self):
        self.cm = ConfusionMatrix(3, ignore_index=0)

    def update(self, pred: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> None:
        self.cm.update(pred, truth)

    def compute(self) -> dict[str, float]:
        s = self.cm.compute()
        return {"iou_face_in": 100 * float(s["iou"][1]), "iou_occlusion_in": 100 * float(s["iou"][2])}


class LFWEvalSet(Dataset):
    """Items ``(image S x S, GT S x S, GT native)``; image uint8 3 x S x S RGB (area-resized)."""

    def __init__(self, root: str | Path | None = None, split: str = "test", size: int = 128,
                 max_images: int | None = None):
        self.root = Path(root) if root is not None else default_lfw_parts_root()
        self.stems = read_split(self.root, split)[:max_images]
        self.size = size

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int):
        image, label = load_pair(self.root, self.stems[index])
        if label.shape != (NATIVE_SIZE, NATIVE_SIZE):
            raise ValueError(f"{self.stems[index]}: expected {NATIVE_SIZE}x{NATIVE_SIZE}, got {label.shape}")
        small = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return (image_to_tensor(small),
                torch.from_numpy(resize_nearest(label, self.size)).long(),
                torch.from_numpy(label).long())


def evaluate(
    predict: Callable[[torch.Tensor], torch.Tensor],
    root: str | Path | None = None,
    split: str = "test",
    size: int = 128,
    batch_size: int = 32,
    num_workers: int = 2,
    max_images: int | None = None,
    progress: bool = False,
    face_vs_rest: bool = False,
) -> dict:
    """Scores a predictor and the all-background baseline on an LFW Part Labels split.

    Args:
        predict: uint8 N x 3 x S x S images -> int64 N x S x S class maps.
        root: Dataset folder (``None``: ``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``).
        split: ``"test"`` (the published numbers), ``"val"`` or ``"train"``.
        size: Network input side S.
        batch_size: Images per forward pass.
        num_workers: DataLoader workers (JPEG decoding).
        max_images: Score only the first images of the split (quick checks).
        progress: Show a progress bar.
        face_vs_rest: Score two classes, face (class 1 of the model and of LFW) against
            everything else: for a model whose other classes are not LFW's (a
            background / face / occlusion teacher has no hair class).

    Returns:
        ``{"model": {size: scores, 250: scores}, "all_background": {...}, "split", "images",
        "classes"}``, scores as in :meth:`SegmentationScores.compute`.
    """
    from tqdm import tqdm

    dataset = LFWEvalSet(root, split, size, max_images)
    keys = (size, NATIVE_SIZE)
    classes = FACE_VS_REST if face_vs_rest else CLASS_NAMES
    ours = {k: SegmentationScores(len(classes)) for k in keys}
    trivial = {k: SegmentationScores(len(classes)) for k in keys}
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for images, gt_small, gt_native in tqdm(loader, desc=f"evaluating {split}", disable=not progress, leave=False):
        pred = predict(images).cpu()
        if face_vs_rest:  # class 1 is face for every model (the teacher convention) and in LFW
            pred, gt_small, gt_native = (pred == 1).long(), (gt_small == FACE).long(), (gt_native == FACE).long()
        ours[size].update(pred, gt_small)
        ours[NATIVE_SIZE].update(resize_nearest(pred, NATIVE_SIZE), gt_native)
        trivial[size].update(torch.zeros_like(gt_small), gt_small)
        trivial[NATIVE_SIZE].update(torch.zeros_like(gt_native), gt_native)
    return {
        "split": split,
        "images": len(dataset),
        "classes": list(classes),
        "model": {str(k): v.compute() for k, v in ours.items()},
        "all_background": {str(k): v.compute() for k, v in trivial.items()},
    }


class WorstImages:
    """Keeps the ``count`` images with the most wrong pixels seen so far.

    Args:
        count: How many to keep.

    Example:
        >>> worst = WorstImages(1)
        >>> truth = np.zeros((2, 1, 2), np.int64)
        >>> pred = np.array([[[0, 1]], [[1, 1]]])
        >>> worst.update([7, 8], np.zeros((2, 1, 2, 3), np.uint8), truth, pred)
        >>> [(item.row, item.wrong_pixels) for item in worst.items()]
        [(8, 2)]
    """

    class Item(NamedTuple):
        wrong_pixels: int
        row: int
        image: np.ndarray
        truth: np.ndarray
        pred: np.ndarray

    def __init__(self, count: int):
        self.count = count
        self._heap: list[tuple[int, int, WorstImages.Item]] = []  # smallest error count on top

    def update(self, rows, images: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> None:
        """Offers a batch: store rows, uint8 N x H x W x 3 images, N x H x W class maps."""
        wrong = (truth != pred).reshape(len(truth), -1).sum(1)
        for row, image, true_map, pred_map, errors in zip(rows, images, truth, pred, wrong):
            # Ties go to the lower row (the key is -row), so the choice does not depend on batching.
            entry = (int(errors), -int(row), self.Item(int(errors), int(row), image, true_map, pred_map))
            if len(self._heap) < self.count:
                heapq.heappush(self._heap, entry)
            elif self.count and entry[:2] > self._heap[0][:2]:
                heapq.heapreplace(self._heap, entry)

    def items(self) -> list[WorstImages.Item]:
        """The kept images, most wrong pixels first."""
        return [entry[2] for entry in sorted(self._heap, key=lambda entry: entry[:2], reverse=True)]

    def picture(self, columns: int = 2) -> np.ndarray:
        """RGB grid, one strip per image: image | truth | prediction | disagreement colours."""
        from labelgen.overlay import caption, error_colours, grid, label_colours

        strips = []
        for item in self.items():
            panels = [item.image, label_colours(item.truth), label_colours(item.pred),
                      error_colours(item.truth, item.pred)]
            panels = [cv2.resize(panel, (256, 256), interpolation=cv2.INTER_NEAREST) for panel in panels]
            panels[0] = caption(panels[0], f"row {item.row}: {item.wrong_pixels} px wrong")
            strips.append(np.concatenate(panels, axis=1))
        return grid(strips, columns=columns)


def evaluate_store(predict: Callable[[torch.Tensor], torch.Tensor], store_path: str | Path,
                   batch_size: int = 32, progress: bool = False, worst: WorstImages | None = None) -> dict:
    """Scores a predictor on the ok rows of a label store, class = min(id, 2).

    Meant for stores with exact labels, such as ``labelgen synth --split test``
    (held-out synthetic occlusions): background, visible face, occlusion.

    Args:
        worst: Also collect the images with the most wrong pixels here (for a picture).

    Returns:
        ``{"store", "images", "model": scores, "all_background": scores}``, scores as in
        :meth:`SegmentationScores.compute` at the store's crop size, plus those of
        :class:`FaceRegionScores`.
    """
    from tqdm import tqdm

    from labelgen.store import LabelStore
    from train.losses import class_map_from_label_map

    store = LabelStore(store_path, mode="r")
    store.skip_damaged()  # a damaged shard (allowed with --allow-incomplete) is not read
    rows = store.ok_indices()
    ours, trivial = SegmentationScores(), SegmentationScores()
    ours_in_face, trivial_in_face = FaceRegionScores(), FaceRegionScores()
    for start in tqdm(range(0, len(rows), batch_size), desc="evaluating store", disable=not progress, leave=False):
        batch = rows[start:start + batch_size]
        images = torch.from_numpy(store.read("image", batch)).permute(0, 3, 1, 2).contiguous()
        truth = class_map_from_label_map(torch.from_numpy(store.read("label", batch)).long())
        pred = predict(images).cpu()
        ours.update(pred, truth)
        trivial.update(torch.zeros_like(truth), truth)
        ours_in_face.update(pred, truth)
        trivial_in_face.update(torch.zeros_like(truth), truth)
        if worst is not None:
            worst.update(batch, images.permute(0, 2, 3, 1).numpy(), truth.numpy(), pred.numpy())
    return {"store": str(store_path), "images": int(len(rows)),
            "model": {**ours.compute(), **ours_in_face.compute()},
            "all_background": {**trivial.compute(), **trivial_in_face.compute()}}


def _row_values(scores: dict, class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, float]:
    values = {"pixel_acc": scores["pixel_acc"], "miou": scores["miou"]}
    for name, iou in zip(class_names, scores["iou"]):
        values[f"iou_{name}"] = iou
    values["mean_recall"] = scores["mean_recall"]
    for name, recall in zip(class_names, scores["recall"]):
        values[f"recall_{name}"] = recall
    values["sparsity"] = scores["sparsity"]
    return values


def table_rows(class_names: tuple[str, ...] = CLASS_NAMES) -> list[tuple[str, str]]:
    """``(key, label)`` of the table's rows for these class names."""
    return ([("pixel_acc", "pixel accuracy (%)"), ("miou", "mean IoU, bg incl. (%)")]
            + [(f"iou_{name}", f"IoU {name} (%)") for name in class_names]
            + [("mean_recall", "mean recall (%)")]
            + [(f"recall_{name}", f"recall {name} (%)") for name in class_names]
            + [("sparsity", "component error |#GT - #pred|")])



def _render(title: str, columns: list[tuple[str, dict]], rows: list[tuple[str, str]], footer: str = "") -> str:
    width = max(len(label) for _, label in rows) + 2
    lines = [title, "metric".ljust(width) + "".join(name.rjust(16) for name, _ in columns)]
    for key, label in rows:
        cells = []
        for _, values in columns:
            value = values.get(key)
            cells.append(("-" if value is None or (isinstance(value, float) and math.isnan(value))
                          else f"{value:.2f}").rjust(16))
        lines.append(label.ljust(width) + "".join(cells))
    if footer:
        lines.append(footer)
    return "\n".join(lines)


def format_table(results: dict) -> str:
    """The results side by side with the published 128p reference (same classes only), as plain text."""
    size = next(iter(results["model"]))
    classes = tuple(results.get("classes", CLASS_NAMES))
    columns = [("published 128p", PUBLISHED_128)] if classes == CLASS_NAMES else []
    columns += [(f"{name} {key}p", _row_values(results[part][key], classes))
                for name, part in (("ours", "model"), ("all-bg", "all_background"))
                for key in (size, str(NATIVE_SIZE))]
    title = (f"LFW Part Labels {results['split']} split, {results['images']} images, classes "
             f"{' / '.join(classes)}, one confusion matrix")
    return _render(title, columns, table_rows(classes), SUPERPIXEL_NOTE)


STORE_CLASSES = ("background", "face", "occlusion")
FACE_VS_REST = ("rest", "face")  # what a model and data with different classes share


def classes_to_compare(model_classes: tuple[str, ...] | None, data_classes: tuple[str, ...]) -> tuple[str, ...]:
    """The classes a model is scored on: the data's where the model's agree (or are unknown), else face vs rest.

    Example:
        >>> classes_to_compare(("background", "face", "occlusion"), CLASS_NAMES)
        ('rest', 'face')
        >>> classes_to_compare(None, CLASS_NAMES) == classes_to_compare(CLASS_NAMES, CLASS_NAMES) == CLASS_NAMES
        True
    """
    return data_classes if model_classes is None or tuple(model_classes) == tuple(data_classes) else FACE_VS_REST


FACE_REGION_ROWS = [("iou_face_in", "IoU face, in true face region (%)"),
                    ("iou_occlusion_in", "IoU occlusion, in true face region (%)")]


def format_store_table(results: dict) -> str:
    """Scores on a label store (classes background / face / occlusion), beside all-background."""
    columns = []
    for name, scores in (("model", results["model"]), ("all-bg", results["all_background"])):
        values = _row_values(scores, STORE_CLASSES)
        values.update({key: scores.get(key) for key, _ in FACE_REGION_ROWS})
        columns.append((name, values))
    title = f"{results['store']}: {results['images']} ok images, one confusion matrix"
    footer = ("in true face region: only pixels the truth calls face or occlusion (the teacher's part of the "
              "labelling chain)")
    return _render(title, columns, table_rows(STORE_CLASSES) + FACE_REGION_ROWS, footer)