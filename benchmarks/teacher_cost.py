"""Cheaper copies of a FaceOccNet teacher: cost per crop and quality, side by side in one run.

Usage:
    python benchmarks/teacher_cost.py CHECKPOINT [--out-dir out/teacher_cost] [--stores out/teacher_eval/stores]
        [--int8 minmax:64,percentile:64,entropy:64] [--no-96] [--repeats 7] [--limit N] [--json FILE]

From one training checkpoint (e.g. ``out/teacher_v2/faceocc-w05-v1.ckpt``, v1's weights recovered by
``scripts/teacher_weights_from_onnx.py``) it builds ONNX copies and measures each:

(a) flip-averaged float32: two passes, the crop and its mirror image (v1's shipped way);
(b) one pass, float32;
(c) one pass, static int8 (QDQ, per-channel weights; :func:`labelgen.teachers.quantize.quantize_teacher`),
    calibrated on synthetic **train** faces (training occluder families); one row per ``--int8`` try
    ``METHOD:FACES[:ends][:r7]`` (``ends``: first and last convolution left in float32; ``r7``: 7-bit weights,
    which no x86 CPU's int8 kernels can saturate, see :func:`~labelgen.teachers.quantize.quantize_teacher`).
    When the best full-int8 try
    loses more than 0.5 occlusion-IoU points against (b) (clean or the variants' mean, whole crop or face region),
    that method is tried again with the ends in float32;
(d) one pass at 96 px: the crop resized to 96 (area), the logits resized back to 128 (bilinear);
(r) with ``--reference FILE``: a teacher's ONNX file as it ships (e.g. the previous version), timed and scored
    in the same run, so a new teacher's cost and quality read against the old one's.

Cost: milliseconds per crop from a ``uint8`` 128 px crop to 128 px logits (input scaling and, for (d), both
resizes included), batch 1, one onnxruntime thread, on the first ``--timing-crops`` crops of the clean val store;
the copies take turns crop by crop within each of ``--repeats`` rounds (so a load change on the shared machine
hits all of them alike), and the median over all rounds is reported with its ratio to (a).

Quality: on the synthetic **val** split (training families), clean and under each photometric variant of
:mod:`labelgen.eval.variants` (the stores of ``labelgen synth --split val --variant NAME``, made in ``--stores``
when missing, the same names as ``pipelines/evaluate_teacher.sh --split val`` uses): occlusion IoU on the whole
crop and inside the true face region (:func:`labelgen.eval.quality.label_quality`, the same counts as
``svc-eval --labels``), clean and as the mean over the variants. The budget of docs/teacher.md: a copy may lose
at most 0.5 of these points (the worst of the four) against the float32 teacher; the table gives the loss against
(a) and against (b).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.timing import interleaved_ms  # noqa: E402
from labelgen.eval.quality import label_quality, summarize  # noqa: E402
from labelgen.eval.synth import write_synthetic_store  # noqa: E402
from labelgen.eval.variants import CLEAN, VARIANTS  # noqa: E402
from labelgen.stages.teacher import to_network_input  # noqa: E402
from labelgen.store import LabelStore  # noqa: E402
from labelgen.teachers.quantize import calibration_crops, parse_int8, quantize_teacher  # noqa: E402

SIZE = 128  # the store's crops and the logits every copy returns
BUDGET = 0.5  # occlusion-IoU points a cheaper copy may lose (docs/teacher.md)
QUALITY_KEYS = ("occ_iou", "occ_iou_in")  # the columns the budget applies to


# -- the copies -------------------------------------------------------------------------------------
def export_float_copies(checkpoint: Path, out_dir: Path, low_side: int | None) -> dict[str, Path]:
    """ONNX files (a) flip-averaged, (b) single pass and, with ``low_side``, (d) single pass at that side."""
    import torch

    from train.checkpoint import load_checkpoint, model_from_checkpoint
    from train.evaluation.export import export_onnx
    from train.models import FlipAveraged

    model = model_from_checkpoint(load_checkpoint(checkpoint)).eval()
    with torch.no_grad():
        files = {"flip": export_onnx(FlipAveraged(model), out_dir / "flip_float32.onnx", SIZE),
                 "single": export_onnx(model, out_dir / "single_float32.onnx", SIZE)}
        if low_side:
            files["low"] = export_onnx(model, out_dir / f"single_float32_{low_side}px.onnx", low_side)
    return files


class Copy:
    """One ONNX copy run as ``logits = copy(uint8 crops N x 128 x 128 x 3)``, at its own input side.

    Args:
        path: The ONNX file (input ``N x 3 x S x S``).
        threads: onnxruntime intra-op threads.
    """

    def __init__(self, path: Path, threads: int):
        import onnxruntime

        from labelgen.teachers.quantize import declared_input

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input, self.side = declared_input(path)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        inputs = np.concatenate([to_network_input(crop, self.side) for crop in crops])
        logits = self.session.run(None, {self.input: inputs})[0]
        if self.side == SIZE:
            return logits
        # Back to the crop's side, each class map alike (bilinear: logits are smooth; argmax comes after).
        return np.stack([np.stack([cv2.resize(channel, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
                                   for channel in item]) for item in logits])


# -- quality ----------------------------------------------------------------------------------------
def val_stores(folder: Path, limit: int | None) -> dict[str, Path]:
    """``val_<variant>.zarr`` for clean and every variant, written where missing (named as evaluate_teacher.sh)."""
    folder.mkdir(parents=True, exist_ok=True)
    stores = {}
    for variant in (CLEAN, *VARIANTS):
        path = folder / f"val_{variant}.zarr"
        if not path.is_dir():
            partial = path.with_name(path.name + ".partial")
            write_synthetic_store(partial, "val", limit=limit, progress=False, variant=variant)
            partial.rename(path)
        stores[variant] = path
    return stores


def score(copy: Callable[[np.ndarray], np.ndarray], store: Path, limit: int | None, batch: int = 16) -> dict:
    """Pooled :func:`~labelgen.eval.quality.summarize` metrics (percent) of ``copy`` on a store's first rows."""
    data = LabelStore(store, mode="r")
    rows = data.ok_indices()[:limit]
    counts = Counter()
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        predictions = copy(data.read("image", chunk)).argmax(1)
        for pred, truth in zip(predictions, data.read("label", chunk)):
            counts.update(label_quality(pred, truth))
    metrics = summarize(counts)
    return {key: 100 * metrics[key] for key in ("face_iou", "occ_iou", "face_iou_in", "occ_iou_in")}


def quality(copy: Callable[[np.ndarray], np.ndarray], stores: dict[str, Path], limit: int | None) -> dict:
    """Scores per store, plus ``mean`` over the variants (every store but clean)."""
    scores = {variant: score(copy, path, limit) for variant, path in stores.items()}
    variants = [scores[name] for name in scores if name != CLEAN]
    scores["mean"] = {key: statistics.fmean(s[key] for s in variants) for key in variants[0]}
    return scores


def worst_loss(scores: dict, reference: dict) -> float:
    """The most occlusion-IoU points lost against ``reference``: clean or mean, whole crop or face region."""
    return max(reference[part][key] - scores[part][key] for part in (CLEAN, "mean") for key in QUALITY_KEYS)


# -- the run ----------------------------------------------------------------------------------------
def try_name(method: str, faces: int, ends: bool, reduce: bool = False) -> str:
    return f"(c) int8 {method} {faces}" + (" ends fp32" if ends else "") + (" 7-bit w" if reduce else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="A FaceOccNet training checkpoint (.ckpt).")
    parser.add_argument("--out-dir", type=Path, default=Path("out/teacher_cost"), help="Where the copies go.")
    parser.add_argument("--stores", type=Path, default=Path("out/teacher_eval/stores"),
                        help="Folder of the synthetic val stores (val_<variant>.zarr; written when missing).")
    parser.add_argument("--int8", default="minmax:64,percentile:64,entropy:64",
                        help="Comma-separated int8 tries METHOD:FACES[:ends][:r7] (methods minmax, percentile, "
                             "entropy).")
    parser.add_argument("--reference", type=Path, default=None,
                        help="Also time and score this teacher file as it is (row (r)), e.g. the shipped v1.")
    parser.add_argument("--low-side", type=int, default=96, help="Input side of copy (d); 0 leaves (d) out.")
    parser.add_argument("--timing-crops", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the quality pass.")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N val faces (a smoke test).")
    parser.add_argument("--json", type=Path, default=None, help="Also write every number here.")
    args = parser.parse_args()
    try:
        tries = [parse_int8(text) for text in args.int8.split(",") if text]
    except ValueError as error:
        parser.error(str(error))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cv2.setNumThreads(1)

    files = export_float_copies(args.checkpoint, args.out_dir, args.low_side)
    names = {"flip": "(a) flip-averaged fp32", "single": "(b) single pass fp32",
             "low": f"(d) single pass {args.low_side} px fp32"}
    stores = val_stores(args.stores, args.limit)
    if args.reference is not None:
        names["reference"] = f"(r) {args.reference.stem}"
        files["reference"] = args.reference
    copies = {names[key]: path for key, path in files.items()}
    scores = {names[key]: quality(Copy(path, args.threads), stores, args.limit) for key, path in files.items()}
    reference = scores[names["single"]]

    calibration: dict[int, list[np.ndarray]] = {}

    def run_try(method: str, faces: int, ends: bool, reduce: bool = False) -> str:
        name = try_name(method, faces, ends, reduce)
        if faces not in calibration:
            calibration[faces] = calibration_crops(faces)
        path = args.out_dir / f"single_int8_{method}_{faces}{'_ends' if ends else ''}{'_r7' if reduce else ''}.onnx"
        begin = time.perf_counter()
        quantize_teacher(files["single"], path, calibration[faces], method, keep_ends_float=ends,
                         reduce_range=reduce)
        print(f"{name}: quantised in {time.perf_counter() - begin:.0f} s", flush=True)
        copies[name] = path
        scores[name] = quality(Copy(path, args.threads), stores, args.limit)
        return name

    full = [run_try(*spec) for spec in tries]
    best = min((name for name in full if " ends " not in name), key=lambda n: worst_loss(scores[n], reference),
               default=None)
    if best is not None and worst_loss(scores[best], reference) > BUDGET:
        method, faces, _, reduce = next(spec for spec in tries if try_name(*spec) == best)
        if try_name(method, faces, True, reduce) not in scores:
            run_try(method, faces, True, reduce)

    timing_crops = LabelStore(stores[CLEAN], mode="r").read("image", slice(0, args.timing_crops))
    runs = {name: Copy(path, 1) for name, path in copies.items()}
    ms = interleaved_ms({name: lambda crop, run=run: run(crop[None]) for name, run in runs.items()}, timing_crops,
                        args.repeats)  # batch 1

    base = ms[names["flip"]]
    print(f"\n{args.checkpoint}: {platform.processor() or platform.machine()}, onnxruntime 1 thread, batch 1, "
          f"median of {args.repeats} interleaved rounds x {len(timing_crops)} crops; quality on the synthetic val "
          f"split ({LabelStore(stores[CLEAN], mode='r').count if args.limit is None else args.limit} faces, "
          f"training families), clean and the mean of {len(VARIANTS)} variants, percent")
    header = (f"{'copy':<40}{'ms/crop':>8}{'x (a)':>7}{'MB':>6}{'occ clean':>10}{'occ mean':>9}"
              f"{'occ@reg clean':>14}{'occ@reg mean':>13}{'face clean':>11}{'face mean':>10}{'loss vs a':>10}"
              f"{'loss vs b':>10}")
    print(header + "\n" + "-" * len(header))
    for name, path in sorted(copies.items()):  # (a), (b), (c) tries, (d)
        s = scores[name]
        print(f"{name:<40}{ms[name]:>8.2f}{ms[name] / base:>7.2f}{path.stat().st_size / 1e6:>6.1f}"
              f"{s[CLEAN]['occ_iou']:>10.2f}{s['mean']['occ_iou']:>9.2f}{s[CLEAN]['occ_iou_in']:>14.2f}"
              f"{s['mean']['occ_iou_in']:>13.2f}{s[CLEAN]['face_iou']:>11.2f}{s['mean']['face_iou']:>10.2f}"
              f"{worst_loss(s, scores[names['flip']]):>10.2f}{worst_loss(s, reference):>10.2f}")
    print(f"('loss vs': the most occlusion-IoU points lost, clean or mean, whole crop or face region; "
          f"the budget is {BUDGET}. {time.perf_counter() - started:.0f} s in all.)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "ms_per_crop": ms, "scores": scores,
                                         "files": {name: str(path) for name, path in copies.items()}}, indent=1))


if __name__ == "__main__":
    main()
