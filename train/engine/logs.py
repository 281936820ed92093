"""The run's metrics log (JSON lines) and its plot.

One JSON object per line, each with ``kind`` (``"train"`` or ``"val"``),
``step`` and ``epoch``; training lines add ``loss``, ``lr`` and
``images_per_s``, validation lines the scores of :class:`train.evaluation.metrics.ConfusionMatrix`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


class MetricsLog:
    """Appends records to a JSON-lines file.

    Args:
        path: The ``.jsonl`` file.
        resume_step: When resuming, records after this step (written by the
            interrupted run after its last checkpoint) are dropped first, so the
            log never holds the same step twice.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.is_file():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            # Written beside and renamed: a disk that fills up meanwhile leaves the old log whole.
            temporary = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
            try:
                temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))
                os.replace(temporary, self.path)
            finally:
                temporary.unlink(missing_ok=True)

    def write(self, record: dict) -> None:
        """Appends one record (NaN and infinities become null: JSON has neither)."""
        with self.path.open("a") as handle:
            handle.write(json.dumps(_finite(record)) + "\n")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a metrics file, in order.

    A last line cut short (the write that found the disk full) is left out; any other
    line that is not JSON raises ``json.JSONDecodeError``.
    """
    text = Path(path).read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not text.endswith("\n"):
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
    return [json.loads(line) for line in lines]


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> Path:
    """Draws training loss and validation scores against the step into a PNG.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train" and r.get("loss") is not None]
    val = [r for r in records if r["kind"] == "val"]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
        ax_lr = ax_loss.twinx()
        ax_lr.plot([r["step"] for r in train], [r["lr"] for r in train], color="grey", ls=":", label="lr")
        ax_lr.set_yscale("log")
        ax_lr.set_ylabel("learning rate")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training")
    for key, name in (("mean_recall", "mean recall"), ("miou", "mean IoU"), ("pixel_acc", "pixel accuracy")):
        points = [(r["step"], r[key]) for r in val if r.get(key) is not None]
        if points:
            ax_val.plot(*zip(*points), marker="o", label=name)
    ax_val.set_xlabel("step")
    ax_val.set_title("validation")
    if val:
        ax_val.legend(loc="lower right")
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
