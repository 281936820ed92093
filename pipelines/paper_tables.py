"""Print the tables of docs/experiments.md from the outputs of pipelines/paper_experiment.sh.

Usage: python pipelines/paper_tables.py [OUT=out/paper]

Reads ``OUT/eval/*.json`` (svc-eval reports) and each run's ``seconds`` (wall
time of each invocation of its training) and ``metrics.jsonl`` (the validation
record of its best epoch), and prints Markdown: students and teacher on the
synthetic test split (whole crop, face region, each held-out family), then LFW
Part Labels parsing beside the published numbers, and each model as the
labelling chain's teacher. It reads only; a missing report is shown as ``-``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

FAMILIES = ("hands", "glasses", "props")
# The structure-via-consensus authors' released model on this test split at 128 px (../shared README).
PUBLISHED_LFW = {"pixel_acc": 96.06, "miou": 87.41, "iou": [95.75, 90.63, 75.84], "sparsity": 3.51}


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def wall_time(run: Path) -> str:
    """Total training wall time of a run over its invocations, e.g. ``27 min`` or ``35 + 26 min``."""
    seconds = run / "seconds"
    if not seconds.is_file():
        return "-"
    pieces = [int(line) for line in seconds.read_text().split()]
    text = " + ".join(str(round(piece / 60)) for piece in pieces)
    return f"{text} min"


def best_validation(run: Path, key: str = "mean_recall") -> str:
    """``epoch N: value`` of the best complete-epoch validation record (the one best.ckpt holds)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
               if '"kind": "val"' in line] if (run / "metrics.jsonl").is_file() else []
    records = [r for r in records if r.get("complete_epoch", True)]
    if not records:
        return "-"
    best = max(records, key=lambda r: r[key])
    return f"epoch {best['epoch'] + 1}: {100 * best[key]:.2f}"


def models(out: Path) -> list[str]:
    """Names with a synthetic-test report: the teacher first, then the students by name."""
    names = sorted(p.name.removesuffix("_synth_test.json") for p in (out / "eval").glob("*_synth_test.json"))
    return sorted(names, key=lambda name: (name != "teacher", name))


def student_table(out: Path) -> str:
    lines = ["| model | training | face IoU | occlusion IoU | occlusion recall | pixel acc. | component error "
             "| face IoU, face region | occlusion IoU, face region |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in models(out):
        report = read(out / "eval" / f"{name}_synth_test.json")["model"]
        run = out / "runs" / name
        training = "shipped file" if name == "teacher" else f"{wall_time(run)}, best val {best_validation(run)}"
        lines.append(f"| {name} | {training} | {number(report['iou'][1])} | {number(report['iou'][2])} "
                     f"| {number(report['recall'][2])} | {number(report['pixel_acc'])} | {number(report['sparsity'])} "
                     f"| {number(report['iou_face_in'])} | {number(report['iou_occlusion_in'])} |")
    return "\n".join(lines)


def family_table(out: Path) -> str:
    header = " | ".join(f"{family}: occ. IoU / in face region / recall" for family in FAMILIES)
    lines = [f"| model | {header} |", "|---" * (1 + len(FAMILIES)) + "|"]
    for name in models(out):
        cells = []
        for family in FAMILIES:
            report = read(out / "eval" / f"{name}_synth_test_{family}.json")
            scores = report["model"] if report else {}
            cells.append(" / ".join(number(v) for v in (
                scores.get("iou", [None] * 3)[2], scores.get("iou_occlusion_in"), scores.get("recall", [None] * 3)[2])))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chain_table(out: Path) -> str:
    """Each model as the chain's teacher (``labelgen eval-labels``), beside the ``hull`` and ``classical`` baselines."""
    report = read(out / "eval" / "chain_test.json")
    if report is None:
        return "(no chain_test.json)"
    lines = ["| teacher of the chain | ok images | face IoU | occlusion IoU | occlusion recall / precision "
             "| face / occlusion IoU where chain and truth agree on the face region | blob count error |",
             "|---|---|---|---|---|---|---|"]
    for spec, result in report["teachers"].items():
        m = result["metrics"]
        name = Path(spec).stem if spec.endswith(".onnx") else spec  # student_consensus, faceocc-w05-v1, hull, ...

        def cell(key):
            return number(None if m.get(key) is None else 100 * m[key])
        lines.append(f"| {name} | {m['images']} | {cell('face_iou')} | {cell('occ_iou')} "
                     f"| {cell('occ_recall')} / {cell('occ_precision')} | {cell('face_iou_both')} / "
                     f"{cell('occ_iou_both')} | {number(m['blob_error'])} |")
    return "\n".join(lines)


def lfw_cells(scores: dict | None) -> str:
    """``pixel acc. | mIoU | IoU per class | mean recall | component error`` of one size of an svc-eval
    report (``-`` in each where there is none)."""
    if scores is None:
        return " | ".join(["-"] * 5)
    return (f"{number(scores['pixel_acc'])} | {number(scores['miou'])} | {' / '.join(number(v) for v in scores['iou'])} "
            f"| {number(scores['mean_recall'])} | {number(scores['sparsity'])}")


def lfw_table(out: Path) -> str:
    lines = ["| model | training | size | pixel acc. | mIoU | IoU background / face / hair | mean recall "
             "| component error |", "|---|---|---|---|---|---|---|---|",
             f"| published (authors' model, full width) | - | 128 | {PUBLISHED_LFW['pixel_acc']} "
             f"| {PUBLISHED_LFW['miou']} | {' / '.join(map(str, PUBLISHED_LFW['iou']))} | - "
             f"| {PUBLISHED_LFW['sparsity']} |"]
    for path in sorted((out / "eval").glob("lfw_*_test.json")):
        name = path.name.removesuffix("_test.json")  # lfw_<loss>_s<seed>_e<epochs>
        run_name, _, epochs = name.rpartition("_e")
        report = read(path)
        for size in ("128", "250"):
            scores = report["model"][size]
            lines.append(f"| {run_name} | {epochs} epochs | {size} | {lfw_cells(scores)} |")
    return "\n".join(lines)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/paper")
    print("## Synthetic test split (held-out families), exact labels\n")
    print(student_table(out))
    print("\n## Each held-out family\n")
    print(family_table(out))
    print("\n## As the teacher of the labelling chain (first 300 synthetic test faces)\n")
    print(chain_table(out))
    print("\n## LFW Part Labels parsing, test split\n")
    print(lfw_table(out))
    for run in sorted(path for path in (out / "runs").glob("lfw_*") if path.is_dir()):
        print(f"\n{run.name}: {wall_time(run)}, best val mean recall {best_validation(run)}")


if __name__ == "__main__":
    main()
