"""Command-line tools of the training side.

* ``svc-train``   train FaceOccNet on a pseudo-label store or on LFW Part Labels
* ``svc-eval``    score a model on LFW Part Labels (with the published reference)
* ``svc-export``  checkpoint -> TorchScript + ONNX (usable as labelgen teachers)
* ``svc-predict`` segment faces in photos and videos
* ``svc-loop``    student as teacher: label, train, export, relabel

Multi-GPU: ``torchrun --nproc_per_node N -m train.cli --labels ... --out ...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from labelgen.eval.lfw_parts import DEFAULT_ROOT_HELP
from labelgen.teachers import MODEL_FILE_TRUST

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


def _out_of_space(error: OSError, out: Path) -> str:
    """svc-train's line for a full disk: where, what is kept (``last.ckpt`` loads) and how to go on."""
    from labelgen.disk_space import file_system_of
    from train.checkpoint import CheckpointError, load_checkpoint

    writing = f" (writing {error.filename})" if error.filename else ""
    last = out / "checkpoints" / "last.ckpt"
    free = f"free space on {file_system_of(out)}"
    try:
        step = load_checkpoint(last)["step"]
    except (FileNotFoundError, CheckpointError):
        return (f"no space left on device while training into {out}{writing}: no checkpoint was saved yet; "
                f"{free} and run the same command again")
    return (f"no space left on device while training into {out}{writing}: {last} is intact (step {step}); "
            f"{free} and add --resume {out} to continue")


@click.command(context_settings=CONTEXT)
@click.option("--labels", type=str, multiple=True,
              help="Label store (Zarr; a folder or a URL such as s3://bucket/labels.zarr) written by 'labelgen run' "
                   "or 'labelgen synth'; repeat to mix several "
                   "(e.g. pseudo-labels plus exact synthetic labels). Exclusive with --lfw-parts.")
@click.option("--lfw-parts", is_flag=True,
              help="Supervised training on LFW Part Labels' train split (bg/face/hair); validates on its val split.")
@click.option("--occlude", is_flag=True,
              help="With --lfw-parts: paste fresh synthetic occluders (training families) on every draw and "
                   "train background/face/occlusion, the teacher recipe; validates on the synthetic val "
                   "split (or --val-labels).")
@click.option("--occluder-families", default=None, metavar="LIST",
              help="With --occlude: comma-separated occluder families to paste (objects, polygons, scarves, "
                   "skin, hands, glasses, props).  [default: objects,polygons,scarves; hands, glasses and props "
                   "are the synthetic test split's held-out families]")
@click.option("--lfw-root", type=click.Path(path_type=Path), default=None,
              help=f"LFW Part Labels folder.  {DEFAULT_ROOT_HELP}")
@click.option("--lfw-split", type=click.Choice(["train", "train+val"]), default="train", show_default=True,
              help="With --lfw-parts: faces to train on. 'train+val': all 2,000 labelled faces (the paper's "
                   "fine-tuning); validation, if any (see --select), still reads the val split, so its scores "
                   "become optimistic.")
@click.option("--blobs", type=click.Choice(["components", "classes"]), default=None,
              help="With --lfw-parts: the blobs of the consensus and ce-blob losses. 'components': the "
                   "8-connected components of each class; 'classes': each whole class mask is one blob, its id "
                   "the class id (the paper's LFW fine-tuning).  [default: components; --resume keeps the run's "
                   "own]")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Run folder, e.g. runs/NAME: checkpoints/, metrics.jsonl, curves.png, config.json.")
@click.option("--val-fraction", default=0.05, show_default=True,
              help="Fraction of the store's OK images held out for validation (deterministic; "
                   "--lfw-parts validates on the official val split instead).")
@click.option("--val-labels", type=str, default=None,
              help="Separate validation store; then all of --labels is used for training.")
@click.option("--val-max-images", type=int, default=None, help="Validate on at most this many images.")
@click.option("--model", "model_name", default="faceoccnet", show_default=True, help="Registered model name.")
@click.option("--width", default=1.0, show_default=True,
              help="Channel multiplier (1.0 = the published FaceOccNet; 0.25 trains fast on a CPU).")
@click.option("--loss", type=click.Choice(["consensus", "ce", "ce-blob"]), default="consensus", show_default=True,
              help="Structure-via-consensus loss; pixel-wise cross-entropy (baseline); or 'ce-blob', "
                   "cross-entropy averaged within each blob, then over blobs (the paper's Eq. 5: every blob "
                   "weighs the same, no consensus term; the control between the two).")
@click.option("--alpha", default=10.0, show_default=True, help="Consensus loss: label-term weight.")
@click.option("--beta", default=5.0, show_default=True, help="Consensus loss: consensus-term weight.")
@click.option("--consensus-mode", type=click.Choice(["default", "official"]), default=None,
              help="Consensus loss reductions: 'default' (every blob of every image counts once), or "
                   "'official' as the authors' release computes them (blobs grouped by raw id over the batch; "
                   "on LFW Part Labels it needs --blobs classes).  [default: default; --resume keeps the run's "
                   "own]")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None, metavar="P",
              help="FaceOccNet's Dropout2d probability; 0 turns it off.  [default: 0.2; --resume keeps the run's "
                   "own]")
@click.option("--flip/--no-flip", default=None,
              help="Mirror training images (and labels) with probability 0.5.  [default: --flip; --resume keeps "
                   "the run's own]")
@click.option("--epochs", default=30, show_default=True, help="Epochs to train.")
@click.option("--batch-size", default=128, show_default=True, help="Global batch (split over DDP processes).")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps (short runs).")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--min-lr", default=1e-5, show_default=True, help="Floor of the plateau schedule.")
@click.option("--lr-patience", default=2, show_default=True,
              help="Epochs without validation mean-recall gain before the LR drops 10x.")
@click.option("--schedule", type=click.Choice(["plateau", "flat"]), default=None,
              help="Learning rate: 'plateau' drops it 10x when validation mean recall stalls (--lr-patience), "
                   "'flat' keeps --lr.  [default: plateau; --resume keeps the run's own]")
@click.option("--select", type=click.Choice(["best", "last"]), default=None,
              help="The run's result, checkpoints/best.ckpt: the 'best' epoch by validation mean recall, or the "
                   "'last' whole epoch (no selection on validation). With --select last --schedule flat nothing "
                   "reads validation, so none runs.  [default: best; --resume keeps the run's own]")
@click.option("--image-size", default=128, show_default=True,
              help="Input side for LFW Part Labels (a store's crop size is used as stored).")
@click.option("--num-workers", type=click.IntRange(0), default=None,
              help="DataLoader workers per process.  [default: 2 on a CPU; on a GPU one per core, up to 12: "
                   "there the loaders, not the GPU, set the pace; --resume keeps the run's own]")
@click.option("--buffer-size", default=1024, show_default=True, help="Shuffle buffer of the store reader (samples).")
@click.option("--seed", default=0, show_default=True, help="Seed of init, data order and flips.")
@click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), or e.g. cpu, cuda:1.")
@click.option("--amp/--no-amp", default=None,
              help="Mixed precision: float16 on CUDA, bfloat16 on CPU (about 2x faster on CPUs with AMX / "
                   "AVX-512 BF16).  [default: on with CUDA only]")
@click.option("--log-every", default=10, show_default=True, help="Steps between metrics.jsonl training records.")
@click.option("--keep-checkpoints", default=2, show_default=True,
              help="Per-epoch checkpoints to keep (0 = all); last.ckpt and best.ckpt are always kept.")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue from a checkpoint file or a run folder (its checkpoints/last.ckpt).")
@click.option("--init-weights", type=click.Path(path_type=Path), default=None,
              help="Start from this checkpoint's (or run folder's) model weights with a fresh optimiser: "
                   "fine-tuning, or a second phase at a lower --lr.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="tqdm progress bar.")
@click.option("--allow-incomplete", is_flag=True,
              help="Train on a store whose 'labelgen run' has not finished (its labelled rows only); refused "
                   "otherwise. config.json records each store's shards done / total and counts per status.")
@click.option("--photometric", type=click.FloatRange(0, 1), default=None, metavar="P",
              help="Chance that a training image gets photometric augmentation, as web photos have it: greyscale, "
                   "colour casts, brightness / contrast / saturation, under- and over-exposure, JPEG down to "
                   "quality 10, low resolution, blur, sensor noise (after any occluders are pasted; labels "
                   "unchanged; seeded like the data order). 0 turns it off.  [default: 0.5 for a new run; "
                   "--resume keeps the run's own, 0 for runs from before this option]")
@click.option("--photometric-strength", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="S",
              help="Scales the augmentation's ranges; 1 is the harshest (JPEG quality 10, a quarter of the "
                   "resolution, gamma 0.45 to 2.2).  [default: 1.0; --resume keeps the run's own]")
@click.option("--distill", type=click.Path(path_type=Path), default=None, metavar="MODEL",
              help="Also learn this reference model's class probabilities on each training image before "
                   "photometric augmentation (checkpoint, run folder, TorchScript or ONNX; e.g. the shipped "
                   "teacher labelgen/teachers/faceocc-w05-v1.onnx, which averages two flipped passes): the student "
                   "keeps the reference's clean-photo answers and learns to give them on degraded photos, in one "
                   "pass.  [default: none; --resume keeps the run's own]")
@click.option("--distill-weight", type=click.FloatRange(0, min_open=True), default=None, metavar="W",
              help="Weight of the distillation term (a per-pixel KL divergence, added to the loss).  "
                   "[default: 10, as the consensus loss's label term; --resume keeps the run's own]")
def main(labels, lfw_parts, occlude, occluder_families, lfw_root, lfw_split, blobs, out, val_fraction, val_labels,
         val_max_images, model_name, width, loss, alpha, beta, consensus_mode, dropout, flip, epochs, batch_size,
         max_steps, lr, min_lr, lr_patience, schedule, select, image_size, num_workers, buffer_size, seed, device, amp,
         log_every, keep_checkpoints, resume, init_weights, progress, allow_incomplete, photometric,
         photometric_strength, distill, distill_weight) -> None:
    """Train a face segmenter with the structure-via-consensus loss (Masi et al., CVPR 2020).

    Trains on the pseudo-label store (--labels; 0 background, 1 face, >=2 one id per
    occlusion blob), or on LFW Part Labels (--lfw-parts; blobs = connected components
    per class, or whole classes). Adam, ReduceLROnPlateau on validation mean recall
    (or a flat rate); a checkpoint per epoch (--resume continues exactly, mid-epoch
    too, with the run's recorded options). Ctrl-C or SIGTERM stops after the current
    step and saves it (exit code 130 / 143); add --resume to continue.

    \b
    Examples:
      svc-train --labels labels.zarr --out runs/casia
      svc-train --lfw-parts --width 0.25 --batch-size 16 --max-steps 300 --out runs/lfw
      svc-train --lfw-parts --occlude --width 0.25 --out runs/teacher
      svc-train --lfw-parts --lfw-split train+val --init-weights runs/casia --lr 1e-4 --schedule flat --select last --out runs/ft
      torchrun --nproc_per_node 4 -m train.cli --labels labels.zarr --out runs/ddp
    """
    from labelgen.disk_space import no_space_error
    from labelgen.run_lock import FolderLocked
    from labelgen.store import StoreError
    from train.config import TrainConfig
    from train.engine.stopping import TrainingInterrupted
    from train.engine.trainer import train

    if bool(labels) == lfw_parts:
        raise click.UsageError("give exactly one of --labels STORE or --lfw-parts")
    config = TrainConfig(
        out=str(out), labels=[str(path) for path in labels] or None, lfw_parts=lfw_parts, occlude=occlude,
        occluder_families=[name.strip() for name in (occluder_families or "").split(",") if name.strip()] or None,
        lfw_root=str(lfw_root) if lfw_root else None, lfw_split=lfw_split, blobs=blobs,
        val_labels=str(val_labels) if val_labels else None,
        val_fraction=val_fraction, val_max_images=val_max_images, model=model_name, width=width, loss=loss,
        alpha=alpha, beta=beta, consensus_mode=consensus_mode, dropout=dropout, flip=flip, epochs=epochs,
        batch_size=batch_size, max_steps=max_steps, lr=lr, min_lr=min_lr, lr_patience=lr_patience,
        schedule=schedule, select=select, image_size=image_size, num_workers=num_workers, buffer_size=buffer_size,
        seed=seed, device=device, amp=amp, log_every=log_every, keep_checkpoints=keep_checkpoints,
        progress=progress, init_weights=str(init_weights) if init_weights else None, allow_incomplete=allow_incomplete,
        photometric=photometric, photometric_strength=photometric_strength,
        distill=str(distill.resolve()) if distill else None, distill_weight=distill_weight)
    try:
        summary = train(config, resume=str(resume) if resume else None)
    except TrainingInterrupted as stop:
        where = (f"{stop.step} steps are saved in {stop.checkpoint}; add --resume {out} to continue"
                 if stop.checkpoint else "no step was done yet; nothing to save")
        click.echo(f"interrupted ({stop}): {where}", err=True)
        sys.exit(stop.exit_code)
    except FolderLocked as error:
        raise click.ClickException(str(error)) from None
    except StoreError as error:
        raise click.ClickException(f"cannot read the label store: {error}") from None
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise _fail(error) from None
    except OSError as error:
        full = no_space_error(error)
        raise click.ClickException(_out_of_space(full, out) if full else str(error)) from None
    click.echo(json.dumps(summary, default=float))


@click.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--lfw-root", type=click.Path(path_type=Path), default=None,
              help=f"LFW Part Labels folder.  {DEFAULT_ROOT_HELP}")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--size", default=128, show_default=True, help="Network input side.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--num-workers", default=2, show_default=True, help="DataLoader workers (JPEG decoding).")
@click.option("--max-images", type=int, default=None, help="Score only the first N images of the split.")
@click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu) or a torch device.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the scores here.")
@click.option("--labels", "store_path", type=str, default=None,
              help="Score on a label store with exact labels instead (e.g. 'labelgen synth --split test'): "
                   "classes background / face / occlusion.")
@click.option("--flip-average", is_flag=True,
              help="Test-time augmentation: average the logits of each image and its mirror image (2 passes).")
@click.option("--worst-grid", type=click.Path(path_type=Path), default=None,
              help="With --labels: draw the images with the most wrong pixels here (PNG; image | truth | "
                   "prediction | errors: cyan missed face, magenta false face, orange other).")
@click.option("--worst", "worst_count", default=16, show_default=True, help="Images in --worst-grid.")
@click.option("--model-classes", type=click.Choice(["auto", "hair", "occlusion"]), default="auto", show_default=True,
              help="The model's classes: 'hair' background / face / hair (svc-train --lfw-parts), 'occlusion' "
                   "background / face / occlusion (a teacher); 'auto' reads a checkpoint's and takes an exported "
                   "file's to be the data's. Scored on LFW, a model with other classes than LFW's is scored face "
                   "vs rest; on a store, refused.")
@click.option("--allow-incomplete", is_flag=True,
              help="With --labels: score a store with pending shards (its labelled rows only); refused otherwise. "
                   "The --json report records the store's shards done / total and counts per status.")
def eval_main(model, lfw_root, split, size, batch_size, num_workers, max_images, device, json_path,
              store_path, flip_average, worst_grid, worst_count, allow_incomplete, model_classes) -> None:
    """Score MODEL (a .ckpt checkpoint or run folder, TorchScript .pt, or .onnx) on LFW Part Labels.

    A TorchScript .pt is a program: loading it runs its code (it can read and overwrite your
    files); give only ones you made or trust. .ckpt and .onnx files run no code of their own.

    One confusion matrix over the whole split: per-class IoU, mean IoU (background
    included), pixel accuracy, per-class and mean recall, and the sparsity error
    (mean |#components(GT) - #components(pred)|, 8-connected, background not counted),
    at 128x128 and at 250x250 (prediction upsampled nearest), beside the published
    128p numbers and an all-background baseline. It prints the classes it compares.
    """
    from labelgen.overlay import write_picture
    from labelgen.store import LabelStore, StoreError
    from train.datasets.lfw_parts import CLASS_NAMES
    from train.distributed import select_device
    from train.evaluation.evaluate import (FACE_VS_REST, STORE_CLASSES, WorstImages, classes_to_compare, evaluate,
                                           evaluate_store, format_store_table, format_table)
    from train.evaluation.inference import Segmenter

    if worst_grid is not None and store_path is None:
        raise click.UsageError("--worst-grid needs --labels STORE (a store with exact labels)")
    if worst_count < 1:
        raise click.UsageError("--worst must be at least 1")
    try:
        segmenter = Segmenter(model, device=select_device(device) if not str(model).endswith(".onnx") else "cpu",
                              flip_average=flip_average)
        classes = {"hair": CLASS_NAMES, "occlusion": STORE_CLASSES}.get(model_classes, segmenter.class_names)
        data_classes = CLASS_NAMES if store_path is None else STORE_CLASSES
        compared = classes_to_compare(classes, data_classes)
        if store_path is not None and compared != data_classes:
            raise click.UsageError(f"the model's classes ({' / '.join(classes)}) are not the store's "
                                   f"({' / '.join(data_classes)}): its occlusion scores would mean nothing")
        shown = " / ".join(classes) if classes else "not recorded in the file, taken to be the data's"
        click.echo(f"model classes: {shown}; data classes: {' / '.join(data_classes)}; "
                   f"compared: {' / '.join(compared)}", err=True)
        if store_path is not None:
            completeness = LabelStore(store_path, mode="r").check_complete(allow_incomplete)
            worst = WorstImages(worst_count) if worst_grid is not None else None
            results = evaluate_store(segmenter.predict, store_path, batch_size, progress=True, worst=worst)
            results["label_store"] = completeness
            click.echo(format_store_table(results))
            if worst is not None:
                results["worst"] = [{"row": item.row, "wrong_pixels": item.wrong_pixels} for item in worst.items()]
                worst_grid.parent.mkdir(parents=True, exist_ok=True)
                write_picture(worst_grid, worst.picture())
                click.echo(f"the {len(results['worst'])} images with the most wrong pixels: {worst_grid}")
            if json_path:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(results, indent=1))
            return
        results = evaluate(segmenter.predict, lfw_root, split, size, batch_size, num_workers, max_images,
                           progress=True, face_vs_rest=compared == FACE_VS_REST)
    except (OSError, ValueError, RuntimeError, StoreError) as error:
        raise _fail(error) from None
    results["model_path"] = str(model)
    click.echo(format_table(results))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1))


@click.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help="Folder for the exported files.")
@click.option("--name", default="model", show_default=True, help="File stem: <name>.pt and <name>.onnx.")
@click.option("--size", default=128, show_default=True, help="Input side the export is traced and checked at.")
@click.option("--format", "fmt", type=click.Choice(["both", "torchscript", "onnx"]), default="both", show_default=True)
@click.option("--check/--no-check", default=True, show_default=True,
              help="Compare TorchScript, onnxruntime and cv2.dnn outputs with PyTorch (max |diff| <= 1e-4).")
@click.option("--flip-average", is_flag=True,
              help="Export the model with flip test-time averaging built in: every runtime that loads the file "
                   "averages the logits of the image and of its mirror image (2 passes per call).")
@click.option("--int8", "int8", default=None, metavar="METHOD:FACES[:ends][:r7]",
              help="Also write <name>.int8.onnx: static int8 (QDQ, per-channel weights) calibrated on the first "
                   "FACES synthetic occluded LFW Part Labels train faces; METHOD minmax, percentile or entropy; "
                   "'ends' keeps the first and last convolution in float32, 'r7' uses 7-bit weights (the same "
                   "labels on x86 CPUs without VNNI). The shipped v2 teacher is entropy:64:r7 (docs/teacher.md).")
def export_main(checkpoint, out_dir, name, size, fmt, check, flip_average, int8) -> None:
    """Export a training CHECKPOINT (.ckpt or run folder) to TorchScript and/or ONNX.

    The files follow labelgen's teacher convention (float32 1x3x128x128 RGB in [-1, 1]
    -> logits), so 'labelgen label --teacher out/model.onnx' can use them.
    """
    from labelgen.teachers.quantize import calibration_crops, parse_int8, quantize_teacher
    from train.checkpoint import model_from_checkpoint
    from train.evaluation.export import export_model
    from train.models import FlipAveraged

    formats = ("torchscript", "onnx") if fmt == "both" else (fmt,)
    try:
        recipe = parse_int8(int8) if int8 else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--int8") from None
    if recipe and "onnx" not in formats:
        raise click.UsageError("--int8 quantises the ONNX file: use --format onnx or both")
    try:
        model = model_from_checkpoint(checkpoint)
        if flip_average:
            model = FlipAveraged(model)
        result = export_model(model, out_dir, name, size, formats, check)
        if recipe:
            method, faces, ends, reduce = recipe
            result["int8"] = quantize_teacher(result["onnx"], Path(out_dir) / f"{name}.int8.onnx",
                                              calibration_crops(faces, size), method, keep_ends_float=ends,
                                              reduce_range=reduce)
    except (OSError, ValueError, RuntimeError) as error:
        raise _fail(error) from None
    for kind in ("torchscript", "onnx", "int8"):
        if result.get(kind):
            click.echo(f"{kind}: {result[kind]}")
    for runtime, diff in result["max_diff"].items():
        click.echo(f"max |logit diff| {runtime}: {diff:.2e}")


@click.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", type=click.Path(path_type=Path), required=True,
              help=f"Checkpoint (.ckpt or run folder), TorchScript .pt or .onnx model. {MODEL_FILE_TRUST}")
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help="Folder for masks and overlays.")
@click.option("--size", default=128, show_default=True, help="Face crop side = network input side.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for the model.")
@click.option("--max-frames", type=int, default=None, help="Videos: stop after this many frames.")
def predict_main(inputs, model, out_dir, size, device, max_frames) -> None:
    """Segment the face in each image or video of INPUTS.

    Detects the face, cuts the aligned crop the model was trained on, segments it
    and maps the classes back to the original pixels. Writes <stem>.mask.png (0
    background, 1 face, 2 occlusion/hair) and <stem>.overlay.png per image; for a
    video, <stem>/frame_NNNNNN.mask.png per frame and <stem>.overlay.mp4.
    """
    from train.checkpoint import CheckpointError
    from train.evaluation.predict import predict_paths

    try:
        records = predict_paths(list(inputs), model, out_dir, size, device, max_frames)
    except (FileNotFoundError, CheckpointError) as error:
        raise _fail(error) from None
    for record in records:
        click.echo(json.dumps(record))
    if all(r["status"] != "ok" for r in records):
        sys.exit(1)


@click.command(context_settings=CONTEXT)
@click.option("--source", "source_name", required=True, help="Corpus format (as for 'labelgen run').")
@click.option("--root", type=click.Path(path_type=Path), default=None, help="Corpus root.")
@click.option("--teacher", default=None, help="Starting teacher: a shipped teacher's name, 'classical' or a .pt/.onnx "
              f"model (e.g. exported by svc-export from a supervised run). {MODEL_FILE_TRUST}  [default: the "
              "shipped default teacher, see 'labelgen teachers'; a resumed loop keeps the teacher it began with]")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Loop folder: round_<r>/ per round.")
@click.option("--rounds", default=2, show_default=True, help="At most this many student rounds.")
@click.option("--width", default=0.25, show_default=True, help="Student FaceOccNet channel multiplier.")
@click.option("--epochs", default=4, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Cap on training steps per round (smoke runs).")
@click.option("--workers", default=2, show_default=True, help="Dask workers for labelling.")
@click.option("--num-workers", default=1, show_default=True, help="DataLoader workers for training.")
@click.option("--quality-limit", default=200, show_default=True,
              help="Synthetic val faces (held-out occluders) to measure each teacher on.")
@click.option("--min-gain", default=0.005, show_default=True,
              help="Stop when a round raises face IoU + occlusion IoU by less than this.")
@click.option("--extra-labels", type=click.Path(path_type=Path), multiple=True,
              help="Store(s) with exact labels (e.g. 'labelgen synth --split train') mixed into each student's "
                   "training data.")
@click.option("--amp/--no-amp", default=None,
              help="Mixed precision for the students (bfloat16 on CPU).  [default: on with CUDA only]")
@click.option("--lr", default=1e-3, show_default=True, help="The students' Adam learning rate.")
@click.option("--init-weights", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Fine-tune instead of training from scratch: round 1's student starts from this checkpoint "
                   "(e.g. the teacher's checkpoints/best.ckpt; same width), each later student from the "
                   "previous one. Use a lower --lr, e.g. 1e-4.")
def loop_main(source_name, root, teacher, out, rounds, width, epochs, batch_size, max_steps, workers, num_workers,
              quality_limit, min_gain, extra_labels, amp, lr, init_weights) -> None:
    """Student as teacher: label the corpus with the teacher, train a student on the labels, export it,
    measure it, and let it label the next round; stop when quality stops rising.

    Quality is measured against exact labels of synthetic occlusions on LFW Part Labels' val split,
    with occluder families (hands, glasses, props) that no training set uses. A killed loop resumes.
    """
    from labelgen.disk_space import file_system_of, no_space_error
    from labelgen.teachers import resolve
    from labelgen.run_lock import FolderLocked
    from train.engine.stopping import TrainingInterrupted
    from train.workflows.student_teacher import LoopConfig, check_init_weights, run_loop, starting_teacher

    config = LoopConfig(source=source_name, root=str(root.resolve()) if root else None, out=str(out),
                        teacher=resolve(starting_teacher(out, teacher)).spec,
                        rounds=rounds, width=width, epochs=epochs, batch_size=batch_size, max_steps=max_steps,
                        workers=workers, num_workers=num_workers, quality_limit=quality_limit, min_gain=min_gain,
                        extra_labels=tuple(str(path.resolve()) for path in extra_labels), amp=amp, lr=lr,
                        init_weights=str(init_weights.resolve()) if init_weights else None)
    try:
        if config.init_weights:  # before hours of labelling, not when round 1's student starts
            check_init_weights(config)
        run_loop(config, echo=click.echo)
    except TrainingInterrupted as stop:  # a student's training: its steps are saved
        click.echo(f"interrupted ({stop}): run the same command to resume", err=True)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:  # while labelling or measuring: finished shards and rounds are kept
        click.echo("interrupted (SIGINT): run the same command to resume", err=True)
        sys.exit(130)
    except FolderLocked as error:  # another labelgen run or svc-train works on this loop's store or run folder
        raise click.ClickException(str(error)) from None
    except (FileNotFoundError, ValueError) as error:
        raise _fail(error) from None
    except OSError as error:
        if no_space_error(error) is None:
            raise _fail(error) from None
        raise click.ClickException(f"no space left on device in {out}: finished rounds, shards and checkpoints "
                                   f"are kept; free space on {file_system_of(out)} and run the same command "
                                   "to resume") from None


if __name__ == "__main__":
    main()
