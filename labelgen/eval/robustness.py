"""A teacher under photometric variants: one table, clean vs each variant vs the variants' mean.

``pipelines/evaluate_teacher.sh`` scores a teacher on the same synthetic faces
clean and under each variant of :mod:`labelgen.eval.variants`, two ways, and
leaves one JSON file per variant and way in a folder:

- ``direct_<variant>.json``: ``svc-eval MODEL --model-classes occlusion --labels
  STORE`` on ``labelgen synth --variant <variant>``'s store: the teacher's own
  output on the whole image, against the exact labels (percent);
- ``chain_<variant>.json``: ``labelgen eval-labels --variant <variant>``: the
  variant applied to the photo before the whole labelling chain (fractions).

:func:`collect` reads them and :func:`format_robustness` prints one table, all
in percent: face / occlusion IoU on the whole crop and inside the true face
region (direct), and the chain's ok rate and face / occlusion IoU @both (inside
the face region chain and truth agree on: the visible-vs-occluded decision).
The last two rows are the mean of the variants and its difference to clean.

Usage::

    python -m labelgen.eval.robustness FOLDER --teacher MODEL [--json table.json]

Example:
    >>> rows = {"clean": {"face_iou": 80.0}, "dark": {"face_iou": 70.0}, "jpeg": {"face_iou": 76.0}}
    >>> summary = with_mean(rows)
    >>> summary["mean of variants"]["face_iou"], summary["mean - clean"]["face_iou"]
    (73.0, -7.0)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from labelgen.eval.quality import report_json
from labelgen.eval.variants import CLEAN, VARIANTS

# (key, column title) in the table's order; the first four come from svc-eval, the rest from eval-labels.
DIRECT_COLUMNS = (("face_iou", "face IoU"), ("occ_iou", "occ IoU"), ("face_iou_in", "face IoU@region"),
                  ("occ_iou_in", "occ IoU@region"))
CHAIN_COLUMNS = (("chain_ok", "chain ok"), ("chain_face_both", "chain face@both"),
                 ("chain_occ_both", "chain occ@both"))
COLUMNS = DIRECT_COLUMNS + CHAIN_COLUMNS
MEAN, GAP = "mean of variants", "mean - clean"


def direct_scores(report: dict) -> dict[str, float]:
    """The four direct columns (percent) of an ``svc-eval --labels ... --json`` report."""
    model = report["model"]
    return {"face_iou": model["iou"][1], "occ_iou": model["iou"][2],
            "face_iou_in": model["iou_face_in"], "occ_iou_in": model["iou_occlusion_in"]}


def chain_scores(report: dict, teacher: str) -> dict[str, float]:
    """The chain columns (percent) of ``teacher``'s row in an ``eval-labels --json`` report.

    Raises:
        KeyError: the report has no row for ``teacher``.
    """
    if teacher not in report["teachers"]:
        raise KeyError(f"no teacher {teacher!r} in the eval-labels report (it has {', '.join(report['teachers'])})")
    row = report["teachers"][teacher]
    metrics = row["metrics"]
    return {"chain_ok": 100 * row["status_rates"].get("ok", 0.0),
            "chain_face_both": 100 * _number(metrics["face_iou_both"]),
            "chain_occ_both": 100 * _number(metrics["occ_iou_both"])}


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)  # report_json writes an undefined metric as null


def collect(folder: str | Path, teacher: str) -> dict[str, dict[str, float]]:
    """Rows ``clean`` and each variant with whatever of the two JSON files per variant the folder holds.

    Raises:
        FileNotFoundError: the folder holds neither file for clean.
    """
    folder = Path(folder)
    rows: dict[str, dict[str, float]] = {}
    for variant in (CLEAN, *VARIANTS):
        row: dict[str, float] = {}
        direct, chain = folder / f"direct_{variant}.json", folder / f"chain_{variant}.json"
        if direct.is_file():
            row.update(direct_scores(json.loads(direct.read_text())))
        if chain.is_file():
            row.update(chain_scores(json.loads(chain.read_text()), teacher))
        if row:
            rows[variant] = row
    if CLEAN not in rows:
        raise FileNotFoundError(f"{folder}: no direct_{CLEAN}.json or chain_{CLEAN}.json")
    return rows


def with_mean(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``rows`` plus the mean of the variants (every row but clean) and its difference to clean, per column.

    A column some variant lacks gets no mean (a mean over fewer variants would not compare).
    """
    variants = [row for name, row in rows.items() if name != CLEAN]
    keys = [key for key, _ in COLUMNS if variants and all(key in row for row in variants)]
    mean = {key: sum(row[key] for row in variants) / len(variants) for key in keys}
    gap = {key: mean[key] - rows[CLEAN][key] for key in keys if key in rows[CLEAN]}
    return {**rows, MEAN: mean, GAP: gap}


def format_robustness(rows: dict[str, dict[str, float]], title: str = "") -> str:
    """A plain-text table of :func:`with_mean`'s rows; ``-`` where a value is missing or undefined."""
    width = max(len(name) for name in rows) + 2
    header = "variant".ljust(width) + "".join(f"{label:>17}" for _, label in COLUMNS)
    lines = ([title] if title else []) + [header, "-" * len(header)]
    for name, row in rows.items():
        cells = [row.get(key) for key, _ in COLUMNS]
        lines.append(name.ljust(width) + "".join(
            f"{'-':>17}" if value is None or math.isnan(value) else f"{value:>17.2f}" for value in cells))
    lines.append("percent; direct: the teacher's own output (svc-eval), whole crop and true face region; chain: "
                 "eval-labels, ok rate and IoU inside the region chain and truth both call face or occlusion")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a teacher's table under photometric variants from the "
                                                 "JSON files of pipelines/evaluate_teacher.sh.")
    parser.add_argument("folder", type=Path, help="The folder holding direct_<variant>.json / chain_<variant>.json.")
    parser.add_argument("--teacher", required=True, help="The teacher's name in the eval-labels reports (its path).")
    parser.add_argument("--title", default="", help="A line printed above the table.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    args = parser.parse_args(argv)
    try:
        rows = with_mean(collect(args.folder, args.teacher))
    except (OSError, KeyError, ValueError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print(format_robustness(rows, args.title))
    if args.json is not None:
        args.json.write_text(report_json(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
