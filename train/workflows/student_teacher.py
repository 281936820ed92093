"""Student as teacher: label -> train -> export -> relabel, round after round.

Round r labels a corpus with the current teacher (``labelgen run``), trains
FaceOccNet with the consensus loss on those pseudo-labels (``svc-train``),
exports the student (TorchScript, the teacher format), and measures the
student's labels against exact ground truth on held-out synthetic occlusions
(``labelgen eval-labels``, LFW Part Labels **val** split, occluder families
never used for training). The student becomes the next teacher. The loop
stops when the quality score (face IoU + occlusion IoU) rises by less than
``min_gain``. Decisions use the val split only; the test split is left for
the final report.

Every round lives in ``<out>/round_<r>/`` and a finished round is not redone,
so a killed loop resumes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

QUALITY_FAMILIES = ("hands", "glasses", "props")  # held out from every training set


@dataclass
class LoopConfig:
    """Settings of :func:`run_loop` (see ``svc-loop --help``)."""

    source: str
    root: str | None
    out: str
    teacher: str
    rounds: int = 2
    width: float = 0.25
    epochs: int = 4
    batch_size: int = 32
    max_steps: int | None = None
    workers: int = 2  # Dask workers for labelling; 0 labels in this process
    num_workers: int = 1
    quality_limit: int = 200
    min_gain: float = 0.005
    shard_size: int = 256
    seed: int = 0
    source_options: dict = field(default_factory=dict)
    extra_labels: tuple[str, ...] = ()  # stores with exact labels mixed into every student's training
    amp: bool | None = None  # mixed precision for the students (bfloat16 on CPU); None: on with CUDA only
    lr: float = 1e-3  # the students' Adam learning rate (lower it when fine-tuning from init_weights)
    init_weights: str | None = None  # checkpoint round 1's student starts from; later rounds: the previous student


def starting_teacher(out: str | Path, teacher: str | None) -> str:
    """The teacher a loop starts from: ``teacher`` when given; else the one a loop already in ``out``
    recorded (so it resumes with the teacher it began with after the shipped default changes); else the
    shipped default."""
    from labelgen.teachers import DEFAULT_TEACHER

    if teacher is not None:
        return teacher
    recorded = Path(out) / "loop_config.json"
    if recorded.is_file():
        return json.loads(recorded.read_text())["teacher"]
    return DEFAULT_TEACHER


def quality_score(metrics: dict) -> float:
    """What the loop maximises: pooled face IoU plus pooled occlusion IoU (nan counts as 0)."""
    def value(name: str) -> float:
        number = metrics.get(name)
        return 0.0 if number is None or number != number else float(number)
    return value("face_iou") + value("occ_iou")


def measure_teacher(teacher: str, config: LoopConfig) -> dict:
    from labelgen.eval.quality import evaluate_teachers

    report = evaluate_teachers([teacher], split="val", limit=config.quality_limit, families=QUALITY_FAMILIES,
                               progress=False)
    return report["teachers"][teacher]["metrics"]


def student_start(index: int, config: LoopConfig) -> str | None:
    """The weights round ``index``'s student starts from: ``init_weights`` for round 1, then the
    previous round's best student (so each student fine-tunes its teacher); ``None``: from scratch."""
    if config.init_weights is None:
        return None
    if index == 1:
        return config.init_weights
    return str(Path(config.out) / f"round_{index - 1}" / "run" / "checkpoints" / "best.ckpt")


def check_init_weights(config: LoopConfig) -> None:
    """Refuses ``config.init_weights`` at once if round 1's student could not start from it.

    Raises:
        FileNotFoundError, CheckpointError: One line naming the file and what is wrong
            (see :func:`train.checkpoint.load_start_weights`).
    """
    from train.checkpoint import load_start_checkpoint, load_start_weights
    from train.config import TrainConfig
    from train.models import create_model

    student = TrainConfig(out=config.out, width=config.width).to_dict()  # the students' model, width and classes
    start = load_start_checkpoint(config.init_weights, student)
    model = create_model(student["model"], num_classes=student["num_classes"], width=student["width"])
    load_start_weights(model, start, student)


def run_round(index: int, teacher: str, config: LoopConfig) -> dict:
    """One round: label with ``teacher``, train a student, export it, measure it."""
    from labelgen.chain import ChainConfig
    from labelgen.run import Job, prepare_store, run_job
    from train.checkpoint import model_from_checkpoint, resolve_checkpoint
    from train.config import TrainConfig
    from train.engine.trainer import train
    from train.evaluation.export import export_model

    folder = Path(config.out) / f"round_{index}"
    record_path = folder / "round.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)

    job = Job(config.source, config.root, config.source_options, ChainConfig(teacher=teacher),
              config.shard_size, config.seed)
    store = prepare_store(folder / "labels.zarr", job)
    label_counts = run_job(store, workers=config.workers, serial=config.workers == 0, progress=False)

    run_folder = folder / "run"
    last = run_folder / "checkpoints" / "last.ckpt"
    train(TrainConfig(out=str(run_folder), labels=[str(store.path), *config.extra_labels], width=config.width,
                      epochs=config.epochs, batch_size=config.batch_size, max_steps=config.max_steps,
                      num_workers=config.num_workers, seed=config.seed + index, lr=config.lr, lr_patience=1,
                      amp=config.amp, init_weights=student_start(index, config), progress=False),
          resume=str(last) if last.is_file() else None)

    best = run_folder / "checkpoints" / "best.ckpt"  # best validation mean recall
    model = model_from_checkpoint(best if best.is_file() else resolve_checkpoint(run_folder))
    exported = export_model(model, folder, name="student", formats=("torchscript",))
    student = str(exported["torchscript"])
    record = {"round": index, "teacher": teacher, "student": student, "label_counts": label_counts,
              "metrics": measure_teacher(student, config)}
    record["score"] = quality_score(record["metrics"])
    record_path.write_text(json.dumps(record, indent=1))
    return record


def run_loop(config: LoopConfig, echo=print) -> list[dict]:
    """Run up to ``config.rounds`` rounds; returns the history (round 0 = the starting teacher)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop_config.json").write_text(json.dumps(asdict(config), indent=1))
    start = out / "round_0.json"
    if start.is_file():
        history = [json.loads(start.read_text())]
    else:
        metrics = measure_teacher(config.teacher, config)
        history = [{"round": 0, "teacher": config.teacher, "student": config.teacher, "metrics": metrics,
                    "score": quality_score(metrics)}]
        start.write_text(json.dumps(history[0], indent=1))
    echo(format_history(history))
    teacher = config.teacher
    for index in range(1, config.rounds + 1):
        record = run_round(index, teacher, config)
        history.append(record)
        echo(format_history(history))
        best_before = max(item["score"] for item in history[:-1])
        if record["score"] < best_before + config.min_gain:
            echo(f"round {index} did not raise the quality score by {config.min_gain}: stopping")
            break
        teacher = record["student"]
    best = max(history, key=lambda item: item["score"])
    echo(f"best: round {best['round']} ({best['student']}), score {best['score']:.3f}")
    (out / "history.json").write_text(json.dumps(history, indent=1))
    return history


def format_history(history: list[dict]) -> str:
    lines = [f"{'round':>5} {'face IoU':>9} {'occ IoU':>8} {'occ rec':>8} {'blob err':>9} {'score':>7}  teacher -> model"]
    for item in history:
        m = item["metrics"]
        lines.append(f"{item['round']:>5} {m.get('face_iou', float('nan')):>9.3f} {m.get('occ_iou', float('nan')):>8.3f} "
                     f"{m.get('occ_recall', float('nan')):>8.3f} {m.get('blob_error', float('nan')):>9.3f} "
                     f"{item['score']:>7.3f}  {Path(item['teacher']).name} -> {Path(item['student']).name}")
    return "\n".join(lines)
