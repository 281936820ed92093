"""What a CUDA machine does with this project, in one run and one JSON file.

Usage: python benchmarks/gpu.py [--out gpu_check.json] [--images 1000] [--train-steps 300]
(``pipelines/gpu_check.sh`` is the recipe that calls it.)

Four measurements, each on the GPU when one is there:

1. ``labelgen run`` over N photos (LFW Part Labels' images when present, else the
   embedded sample repeated), one Dask worker per core: images/s of the whole job,
   wall clock. The teacher runs on onnxruntime's CUDA provider when it has one
   (``onnxruntime-gpu``), else on the CPU provider; the JSON says which. With
   ``--torchscript-teacher FILE`` the same photos are labelled again with that
   TorchScript teacher, which runs on the GPU through PyTorch.
2. The shipped teacher alone on random 128 px crops at batch 32 and 128 through
   onnxruntime (same provider rule): ms per crop (median over repeats, after a warm-up).
3. FaceOccNet inference in PyTorch at full width (the paper reports about 300 fps)
   and at the shipped teacher's width 0.5: images/s at batch 1 and 64, float16
   autocast, no grad.
4. ``svc-train`` with AMP for a few hundred steps on the store made in 1, once per
   data-loader count (``--train-loaders``): wall clock and the steady training images/s.

A section that fails records its error in the JSON and the others still run. Without
a CUDA device for PyTorch it prints one line saying so and exits 0, so the recipe can
run anywhere; ``--allow-cpu`` runs the same code on the CPU with tiny settings (the
tests use it to keep this script from rotting between GPU loans).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cuda_status() -> tuple[bool, bool, str]:
    """Whether torch and onnxruntime see a CUDA device, and a line that says what they see."""
    import onnxruntime
    import torch

    torch_cuda = torch.cuda.is_available()
    ort_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    line = (f"torch sees {'CUDA: ' + torch.cuda.get_device_name(0) if torch_cuda else 'no CUDA device'}; "
            f"onnxruntime {'has' if ort_cuda else 'lacks'} the CUDA provider"
            f"{'' if ort_cuda else ' (pip install onnxruntime-gpu), so the teacher runs on the CPU provider'}")
    return torch_cuda, ort_cuda, line


def tool(name: str, module: str) -> list[str]:
    """A console script of this project beside the running interpreter, else ``python -m module`` (not installed)."""
    candidate = Path(sys.executable).with_name(name)
    return [str(candidate)] if candidate.exists() else [sys.executable, "-m", module]


def section(report: dict, name: str, measure, *args) -> bool:
    """Runs one measurement into ``report[name]``; a failure is recorded there (and printed), not raised."""
    try:
        report[name] = measure(*args)
    except Exception as error:  # noqa: BLE001 - one broken section must not lose the others' numbers
        detail = error.stderr[-2000:] if isinstance(error, subprocess.CalledProcessError) and error.stderr else ""
        report[name] = {"error": f"{type(error).__name__}: {error}", "stderr_tail": detail}
        print(f"gpu_check: {name} failed: {report[name]['error']}\n{detail}", flush=True)
        return False
    print(f"gpu_check: {name} {json.dumps(report[name])}", flush=True)
    return True


def photo_folder(folder: Path, count: int) -> str:
    """Fills ``folder`` with ``count`` photos (links to LFW images, else the sample repeated); returns their origin."""
    from labelgen.eval.lfw_parts import lfw_parts_location

    lfw = lfw_parts_location() / "images"
    sources = sorted(lfw.glob("*.jpg")) if lfw.is_dir() else []
    origin = f"LFW Part Labels images ({lfw})"
    if not sources:
        from labelgen.sample import sample_jpeg, sample_keys

        origin = "the embedded sample, repeated"
        sources = []
        for i, key in enumerate(sample_keys()):
            sources.append(folder.parent / f"sample_{i:03d}.jpg")
            sources[-1].write_bytes(sample_jpeg(key))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{i:06d}{sources[i % len(sources)].suffix}").symlink_to(sources[i % len(sources)].resolve())
    return origin


def measure_labelling(work: Path, photos: Path, origin: str, workers: int, teacher: Path | None = None) -> dict:
    """Section 1: the whole labelling job over ``photos`` (with ``teacher``, a model file, else the default);
    images/s and the status counts. Each teacher writes its own store (the default's: ``labels.zarr``)."""
    images = sum(1 for _ in photos.iterdir())
    store = work / ("labels.zarr" if teacher is None else f"labels_{teacher.stem}.zarr")
    command = [*tool("labelgen", "labelgen.cli"), "run", "--source", "folder", "--root", str(photos),
               "--out", str(store), "--workers", str(workers)]
    if teacher is not None:
        command += ["--teacher", str(teacher)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    from labelgen.store import LabelStore

    counts = LabelStore(store, mode="r").summary()
    return {"photos": origin, "images": images, "workers": workers, "wall_s": round(wall, 2),
            "images_per_s": round(images / wall, 2), "status_counts": counts, "command": " ".join(command)}


def measure_teacher(providers: list[str], batches: tuple[int, ...], repeats: int) -> dict:
    """Section 2: ms per crop of the shipped teacher, per batch size."""
    import onnxruntime

    from labelgen.teachers import resolve

    teacher = resolve()
    session = onnxruntime.InferenceSession(str(teacher.file()), providers=providers)
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    result = {"teacher": teacher.record(), "providers": session.get_providers()}
    for batch in batches:
        crops = rng.uniform(-1, 1, (batch, 3, 128, 128)).astype(np.float32)
        session.run(None, {name: crops})  # warm-up: kernel choice, memory pools
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, {name: crops})
            times.append(time.perf_counter() - start)
        result[f"ms_per_crop_batch{batch}"] = round(1000 * statistics.median(times) / batch, 4)
    return result


def measure_inference(device: str, width: float, batches: tuple[int, ...], repeats: int) -> dict:
    """Section 3: FaceOccNet images/s, float16 autocast on CUDA (float32 on a CPU)."""
    import torch

    from train.models import create_model

    model = create_model("faceoccnet", width=width).to(device).eval()
    result = {"width": width, "parameters": sum(p.numel() for p in model.parameters())}
    for batch in batches:
        x = torch.randn(batch, 3, 128, 128, device=device)
        with torch.no_grad(), torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            model(x)
            times = []
            for _ in range(repeats):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(x)
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
        result[f"images_per_s_batch{batch}"] = round(batch / statistics.median(times), 1)
    return result


def measure_training(work: Path, device: str, steps: int, batch: int, width: float, loaders: int) -> dict:
    """Section 4: svc-train with AMP on the labelled store, ``loaders`` data-loading processes.

    Returns the wall clock (start, validation and checkpoints included) and the steady training rate:
    the median of the run's own per-window images/s (metrics.jsonl), which leaves those out.
    """
    run = work / f"run_loaders{loaders}"
    command = [*tool("svc-train", "train.cli"), "--labels", str(work / "labels.zarr"), "--out", str(run),
               "--amp", "--device", device, "--max-steps", str(steps), "--batch-size", str(batch),
               "--width", str(width), "--epochs", "1000", "--num-workers", str(loaders), "--no-progress",
               "--val-fraction", "0.1", "--allow-incomplete"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    from train.engine.logs import read_metrics

    rates = [r["images_per_s"] for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "train"]
    shutil.rmtree(run, ignore_errors=True)
    return {"steps": steps, "batch": batch, "width": width, "loader_workers": loaders, "wall_s": round(wall, 2),
            "images_per_s_including_start": round(steps * batch / wall, 1),
            "images_per_s_training": round(statistics.median(rates), 1) if rates else None,
            "command": " ".join(command)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="The JSON file to write.")
    parser.add_argument("--images", type=int, default=1000, help="Photos to label in section 1.")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="Dask workers of the labelling job (default: one per core).")
    parser.add_argument("--train-steps", type=int, default=300, help="svc-train steps in section 4.")
    parser.add_argument("--train-batch", type=int, default=128, help="svc-train batch in section 4.")
    parser.add_argument("--train-loaders", default="4,12",
                        help="Comma-separated data-loading process counts to train with in section 4, one run each "
                             "(is training fed fast enough?). Default: 4,12 (1 without CUDA).")
    parser.add_argument("--repeats", type=int, default=20, help="Timed repeats per batch size (medians).")
    parser.add_argument("--torchscript-teacher", type=Path,
                        help="Also label the same photos with this TorchScript teacher (svc-export --format "
                             "torchscript), which runs on the GPU through PyTorch: no onnxruntime-gpu needed.")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="Without CUDA, run everything on the CPU anyway (to test this script).")
    args = parser.parse_args(argv)

    torch_cuda, ort_cuda, line = cuda_status()
    if not torch_cuda and not args.allow_cpu:
        print(f"gpu_check: nothing measured: {line}.")
        return 0
    device = "cuda" if torch_cuda else "cpu"
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if ort_cuda else ["CPUExecutionProvider"]
    report = {"device": line, "host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count()}
    print(f"gpu_check: {line}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        origin = photo_folder(photos, args.images)
        labelled = section(report, "labelling", measure_labelling, work, photos, origin, args.workers)
        if args.torchscript_teacher:  # the teacher on PyTorch's CUDA, where onnxruntime has no CUDA provider
            section(report, "labelling_torchscript_teacher", measure_labelling, work, photos, origin, args.workers,
                    args.torchscript_teacher.resolve())
        section(report, "teacher", measure_teacher, providers, (32, 128) if torch_cuda else (1, 4), args.repeats)
        batches = (1, 64) if torch_cuda else (1, 2)
        for width in (1.0, 0.5):  # full width (the paper's network), then the shipped teacher's width
            section(report, f"inference_width{width}", measure_inference, device, width, batches, args.repeats)
        for loaders in [int(n) for n in args.train_loaders.split(",") if n] if torch_cuda else [1]:
            name = f"training_loaders{loaders}"
            if labelled:
                section(report, name, measure_training, work, device, args.train_steps, args.train_batch, 1.0, loaders)
            else:
                report[name] = {"error": "skipped: it trains on the store that labelling failed to make"}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_check: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
