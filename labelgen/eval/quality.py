"""How good are the pseudo-labels? The chain scored against exact synthetic ground truth.

:mod:`labelgen.eval.synth` pastes occluders onto LFW Part Labels faces, so the true
label map is known. :func:`evaluate_teachers` runs the labelling chain on those
images (regenerated on the fly, deterministic), maps the truth into each
result's crop (``crop_labels(gt, result.crop)``) and counts, per teacher:

- face IoU: predicted ``1`` against true ``1``;
- occlusion IoU, recall and precision: predicted ``>= 2`` against true ``>= 2``;
- the same two IoUs inside the true face region (true label ``>= 1``), which
  leaves out what the chain's face outline adds (LFW's face class runs down
  the neck, the chain's does not);
- and inside the face region both maps agree on (chain label ``>= 1`` and true
  label ``>= 1``): the visible-vs-occluded decision alone, free of what the
  hull adds or misses;
- component-count error: ``|#blobs true - #blobs predicted|`` (8-connected
  components of the occlusion masks), the paper's sparsity measure;
- the rate of each chain status.

IoUs pool intersections and unions over the whole set (one confusion per
metric); per-image means are reported too. Quality counts only cover images
the chain labelled ``ok`` (others have no crop to compare), so read them
together with the ok rate.

Example:
    >>> gt = np.array([[0, 1, 1, 2]]); pred = np.array([[0, 1, 2, 2]])
    >>> summary = summarize(label_quality(pred, gt))
    >>> summary["face_iou"], summary["occ_iou"], summary["occ_recall"], summary["blob_error"]
    (0.5, 0.5, 1.0, 0.0)
"""
from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from labelgen.stages.components import FACE, FIRST_BLOB

BASELINE_TEACHERS = ("hull", "classical")


def count_components(mask: np.ndarray) -> int:
    """Number of 8-connected components of a boolean mask.

    Example:
        >>> count_components(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], bool))
        2
    """
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def _ratio(numerator: float, denominator: float, empty: float = math.nan) -> float:
    return numerator / denominator if denominator else empty


def label_quality(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Counts comparing one predicted label map with its ground truth (same shape).

    Both maps use the store's classes: 0 background, 1 face, >=2 occlusion.
    Counts are additive over images (add them up, then :func:`summarize`).

    Returns:
        ``images`` (1); pixel counts ``face_inter``, ``face_union``,
        ``occ_inter``, ``occ_union``, ``occ_gt``, ``occ_pred``, and
        ``face_in_inter``, ``face_in_union``, ``occ_in_union`` (the same
        restricted to the true face region; the occlusion intersection is
        already inside it), ``face_both_inter``, ``face_both_union``,
        ``occ_both_inter``, ``occ_both_union`` (inside the region both call
        face or occlusion); component counts ``blobs_gt``, ``blobs_pred``,
        ``blob_error``; per-image sums ``face_iou_sum``, ``occ_iou_sum`` and
        ``occ_iou_images`` (images whose occlusion union is not empty: the
        per-image occlusion IoU is undefined for the others); ``occluded``
        (1 if the truth has occlusion).

    Example:
        >>> gt = np.array([[0, 1, 1], [1, 2, 2], [0, 0, 3]])
        >>> pred = np.array([[1, 1, 1], [1, 1, 2], [0, 0, 0]])
        >>> counts = label_quality(pred, gt)
        >>> [counts[k] for k in ("face_inter", "face_union", "occ_inter", "occ_union", "blob_error")]
        [3, 5, 1, 3, 0]
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    pred_face, gt_face = pred == FACE, gt == FACE
    pred_occ, gt_occ = pred >= FIRST_BLOB, gt >= FIRST_BLOB
    region = gt >= FACE
    both = region & (pred >= FACE)
    face_inter, face_union = int((pred_face & gt_face).sum()), int((pred_face | gt_face).sum())
    occ_inter, occ_union = int((pred_occ & gt_occ).sum()), int((pred_occ | gt_occ).sum())
    blobs_gt, blobs_pred = count_components(gt_occ), count_components(pred_occ)
    return {
        "images": 1, "face_inter": face_inter, "face_union": face_union,
        "occ_inter": occ_inter, "occ_union": occ_union, "occ_gt": int(gt_occ.sum()), "occ_pred": int(pred_occ.sum()),
        "face_in_inter": face_inter, "face_in_union": int(((pred_face & region) | gt_face).sum()),
        "occ_in_union": int(((pred_occ & region) | gt_occ).sum()),
        "face_both_inter": int((pred_face & gt_face & both).sum()),
        "face_both_union": int(((pred_face | gt_face) & both).sum()),
        "occ_both_inter": int((pred_occ & gt_occ & both).sum()),
        "occ_both_union": int(((pred_occ | gt_occ) & both).sum()),
        "blobs_gt": blobs_gt, "blobs_pred": blobs_pred, "blob_error": abs(blobs_gt - blobs_pred),
        "face_iou_sum": _ratio(face_inter, face_union, 1.0), "occ_iou_sum": _ratio(occ_inter, occ_union, 0.0),
        "occ_iou_images": int(occ_union > 0), "occluded": int(gt_occ.any()),
    }


def summarize(counts: Mapping[str, float]) -> dict[str, float]:
    """Metrics from summed :func:`label_quality` counts (``nan`` where a denominator is 0).

    Returns:
        ``images``; pooled ``face_iou``, ``occ_iou``, ``occ_recall``,
        ``occ_precision``, ``face_iou_in``, ``occ_iou_in`` (inside the true
        face region), ``face_iou_both``, ``occ_iou_both`` (inside the region
        both call face); ``blob_error`` (mean absolute component-count
        difference), ``blobs_gt`` and ``blobs_pred`` (means); per-image
        means ``face_iou_mean`` and ``occ_iou_mean``.

    Example:
        >>> total = Counter(label_quality(np.array([[1, 2]]), np.array([[1, 1]])))
        >>> total.update(label_quality(np.array([[1, 1]]), np.array([[1, 1]])))
        >>> s = summarize(total)
        >>> s["face_iou"], s["face_iou_mean"], s["blob_error"], math.isnan(s["occ_recall"])
        (0.75, 0.75, 0.5, True)
    """
    images = counts.get("images", 0)
    return {
        "images": int(images),
        "face_iou": _ratio(counts.get("face_inter", 0), counts.get("face_union", 0)),
        "occ_iou": _ratio(counts.get("occ_inter", 0), counts.get("occ_union", 0)),
        "occ_recall": _ratio(counts.get("occ_inter", 0), counts.get("occ_gt", 0)),
        "occ_precision": _ratio(counts.get("occ_inter", 0), counts.get("occ_pred", 0)),
        "face_iou_in": _ratio(counts.get("face_in_inter", 0), counts.get("face_in_union", 0)),
        "occ_iou_in": _ratio(counts.get("occ_inter", 0), counts.get("occ_in_union", 0)),
        "face_iou_both": _ratio(counts.get("face_both_inter", 0), counts.get("face_both_union", 0)),
        "occ_iou_both": _ratio(counts.get("occ_both_inter", 0), counts.get("occ_both_union", 0)),
        "blob_error": _ratio(counts.get("blob_error", 0), images),
        "blobs_gt": _ratio(counts.get("blobs_gt", 0), images),
        "blobs_pred": _ratio(counts.get("blobs_pred", 0), images),
        "face_iou_mean": _ratio(counts.get("face_iou_sum", 0), images),
        "occ_iou_mean": _ratio(counts.get("occ_iou_sum", 0), counts.get("occ_iou_images", 0)),
    }


def teacher_list(extra: Iterable[str] = ()) -> list[str]:
    """The baselines (``hull``, ``classical``) followed by ``extra`` teachers, without repeats."""
    return list(dict.fromkeys([*BASELINE_TEACHERS, *extra]))


def evaluate_teachers(teachers: Sequence[str], split: str = "test", limit: int | None = 300, copies: int = 1,
                      seed: int = 0, families: Sequence[str] | None = None, max_occluders: int = 2,
                      crop_size: int = 128, root: str | Path | None = None, progress: bool = True,
                      examples: list | None = None, max_examples: int = 8, variant: str | None = None) -> dict:
    """Run the chain with each teacher on the synthetic set and score it against the exact labels.

    Each synthetic image is made once, and detection, pose and hull run once
    per image (:meth:`~labelgen.chain.LabelChain.label_image_by_teachers`), so
    the teachers label the same face regions.

    Args:
        variant: A photometric variant (:mod:`labelgen.eval.variants`) applied to
            each synthetic photo before the chain sees it; the exact labels stay
            as they are (a variant moves no pixel).
        examples: If a list is given, the first ``max_examples`` images every
            teacher labelled ok are appended to it as ``(key, crop image, true
            crop labels, [label map per teacher])``, for :func:`comparison_grid`.

    Returns:
        A JSON-ready dict: ``settings`` and, per teacher, ``statuses``
        (count per status), ``status_rates``, ``counts`` (summed
        :func:`label_quality` counts over ok images) and ``metrics``
        (:func:`summarize` of them).
    """
    from tqdm import tqdm

    from labelgen.chain import ChainConfig, LabelChain
    from labelgen.stages.crop import crop_labels
    from labelgen.eval.synth import default_families, synthetic_split
    from labelgen.eval.variants import CLEAN, apply_variant, check_variant
    from labelgen.teachers import load_teacher

    families = tuple(default_families(split) if families is None else families)
    check_variant(variant)
    statuses = {teacher: Counter() for teacher in teachers}
    counts = {teacher: Counter() for teacher in teachers}
    loaded = [load_teacher(teacher) for teacher in teachers]
    with LabelChain(ChainConfig(crop_size=crop_size, teacher="hull")) as chain:
        pairs = synthetic_split(split, copies, seed, families, max_occluders, root, limit)
        for key, image, gt in tqdm(pairs, desc="eval-labels", unit="img", disable=not progress, file=sys.stderr):
            image = apply_variant(variant, image)
            results = chain.label_image_by_teachers(image, loaded, key)
            for teacher, result in zip(teachers, results):
                statuses[teacher][result.status.label] += 1
                if result.ok:
                    counts[teacher].update(label_quality(result.label, crop_labels(gt, result.crop)))
            if examples is not None and len(examples) < max_examples and all(r.ok for r in results):
                truth = crop_labels(gt, results[0].crop)
                examples.append((key, results[0].image, truth, [result.label for result in results]))
    report = {"settings": {"split": split, "limit": limit, "copies": copies, "seed": seed, "families": list(families),
                           "max_occluders": max_occluders, "crop_size": crop_size, "variant": variant or CLEAN},
              "teachers": {}}
    for teacher in teachers:
        total = sum(statuses[teacher].values())
        report["teachers"][teacher] = {
            "statuses": dict(statuses[teacher]),
            "status_rates": {name: n / total for name, n in statuses[teacher].items()} if total else {},
            "counts": dict(counts[teacher]), "metrics": summarize(counts[teacher])}
    return report


def short_teacher_name(name: str) -> str:
    """A column title: ``hull`` stays ``hull``; a model path becomes ``<folder>/<stem>``.

    Example:
        >>> short_teacher_name("out/teacher_occ/teacher.pt"), short_teacher_name("classical")
        ('teacher_occ/teacher', 'classical')
    """
    path = Path(name)
    return f"{path.parent.name}/{path.stem}" if path.suffix and path.parent.name else path.stem


def comparison_grid(examples: Sequence[tuple], teachers: Sequence[str], size: int = 160) -> np.ndarray:
    """One row per example: the true labels, then each teacher's, over the same crop (RGB picture).

    Args:
        examples: ``(key, crop image, true labels, [labels per teacher])`` as
            collected by :func:`evaluate_teachers`.
        teachers: Column titles, one per teacher.
        size: Side of each cell in pixels.
    """
    from labelgen.overlay import caption, grid, overlay_labels

    cells = []
    for key, image, truth, labels in examples:
        cells.append(caption(overlay_labels(image, truth, display_size=size), f"truth {key}"))
        cells.extend(caption(overlay_labels(image, label, display_size=size), short_teacher_name(name))
                     for name, label in zip(teachers, labels))
    return grid(cells, columns=len(teachers) + 1)


def report_json(report: dict, indent: int | None = 1) -> str:
    """The report as strict JSON: undefined metrics (``nan``) become ``null``.

    Example:
        >>> report_json({"metrics": {"occ_iou": math.nan, "face_iou": 0.5}}, indent=None)
        '{"metrics": {"occ_iou": null, "face_iou": 0.5}}'
    """
    def clean(value):
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps(clean(report), indent=indent)


TABLE_COLUMNS = (("ok", "ok rate"), ("face_iou", "face IoU"), ("occ_iou", "occ IoU"), ("occ_recall", "occ rec"),
                 ("occ_precision", "occ prec"), ("face_iou_in", "faceIoU@gt"), ("occ_iou_in", "occIoU@gt"),
                 ("face_iou_both", "face@both"), ("occ_iou_both", "occ@both"),
                 ("blob_error", "blob err"), ("face_iou_mean", "face/img"), ("occ_iou_mean", "occ/img"))


def format_table(report: dict) -> str:
    """A plain-text table of :func:`evaluate_teachers`' report, one row per teacher.

    Example:
        >>> row = {"statuses": {"ok": 1}, "status_rates": {"ok": 1.0}, "metrics": summarize(
        ...     label_quality(np.array([[1, 2]]), np.array([[1, 2]])))}
        >>> format_table({"teachers": {"hull": row}}).splitlines()[2].split()[:4]
        ['hull', '1.000', '1.000', '1.000']
    """
    name_width = max([7] + [len(name) for name in report["teachers"]])
    titles = " ".join(f"{title:>10}" for _, title in TABLE_COLUMNS)
    header = f"{'teacher':<{name_width}}  {titles}  other statuses"
    lines = [header, "-" * len(header)]
    for name, row in report["teachers"].items():
        values = dict(row["metrics"], ok=row["status_rates"].get("ok", 0.0))
        others = ", ".join(f"{status} {rate:.1%}" for status, rate in sorted(row["status_rates"].items())
                           if status != "ok") or "-"
        lines.append(f"{name:<{name_width}}  " + " ".join(f"{values[key]:>10.3f}" for key, _ in TABLE_COLUMNS)
                     + f"  {others}")
    return "\n".join(lines)
