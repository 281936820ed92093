"""``labelgen``: make occlusion pseudo-labels for face images.

Commands:
  run       label a whole corpus with Dask into a sharded, resumable Zarr store
  stats     counts per status, blobs per image, occlusion fractions of a store
  show      an overlay grid of a store's labels, as a PNG
  report    one self-contained HTML page about a store: run, statuses, distributions, examples, failures
  verify    check every chunk of a store against its shards' checksums; --repair makes damaged shards pending
  unlock    remove the run locks of a store on object storage whose runs are gone
  label     run the chain on single images (no Dask) and write PNGs + JSON
  teachers  the teachers that ship with labelgen, with their headline numbers

and the evaluation kit's (:mod:`labelgen.eval.cli`): ``synth`` (LFW Part Labels faces
with pasted occluders and exact labels) and ``eval-labels`` (labels scored against them).
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import click
import cv2
import numpy as np

from labelgen.chain import DEFAULT_DETECTOR
from labelgen.run.cluster import DEFAULT_DASHBOARD, default_local_workers
from labelgen.eval.cli import COMMANDS as EVALUATION_COMMANDS
from labelgen.stages.decode import DEFAULT_MAX_PIXELS
from labelgen.stages.faces import DETECTORS, SMALL_FACE_FRACTION
from labelgen.teachers import DEFAULT_TEACHER, MODEL_FILE_TRUST


def _write_picture(path: Path, picture: np.ndarray) -> None:
    from labelgen.overlay import write_picture

    try:
        write_picture(path, picture)
    except OSError as error:
        raise click.ClickException(str(error)) from None



def _quiet_unless_verbose(ctx: click.Context, param: click.Parameter, verbose: bool) -> bool:
    if not verbose:  # before any model loads or worker starts: both happen in the command body
        from labelgen.quiet import filter_native_logs

        filter_native_logs()
    return verbose


_verbose_option = click.option(
    "--verbose", is_flag=True, expose_value=False, is_eager=True, callback=_quiet_unless_verbose,
    help="Also show the native libraries' log lines (MediaPipe, TensorFlow Lite, absl), hidden by default.")
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="structure-via-consensus")
def main() -> None:
    """Occlusion-aware face pseudo-labels (structure via consensus, CVPR 2020).

    For each face image: find the face and estimate its 3D pose (CenterFace
    and MediaPipe FaceLandmarker; see --detector), project the 64-vertex
    contour of a 3D face model, fill its convex hull (the face region), ask a teacher which part
    of it is visible face, and label what is left, after the paper's
    morphology, as occlusion blobs. Label maps: 0 background, 1 face,
    2, 3, ... one id per occlusion blob.
    """


_DETECTOR_CHOICE = click.Choice(DETECTORS)
_DETECTOR_HELP = ("How the face is found: 'centerface' (CenterFace, then MediaPipe FaceLandmarker on a crop "
                  "around its box), 'mediapipe' (FaceLandmarker alone on the whole image: one landmark pass, "
                  "faster, but it misses faces that are small in the frame) or 'auto' (FaceLandmarker on the "
                  f"whole image; CenterFace and the crop when it finds no face or a face under {SMALL_FACE_FRACTION} "
                  "of the image's longer side). docs/benchmarks.md has their speed and labels side by side.")
_MAX_PIXELS_HELP = ("Images whose header declares more pixels get the status too_large, before any decoding. "
                    f"{DEFAULT_MAX_PIXELS:,} keeps a worker with 2 GiB of memory alive; it is per labelling "
                    "thread (docs/labelling.md).")
_TEACHER_HELP = ("Which teacher says what of the face region is visible face: a shipped model by name "
                 "(default; 'labelgen teachers' lists them), 'hull' (no occlusions), 'classical' (weak "
                 f"skin-colour baseline) or a .onnx/.pt model file. {MODEL_FILE_TRUST}")


@main.command()
@_verbose_option
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--sample", is_flag=True, help="Label the embedded sample images (no files needed).")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("labels_out"), show_default=True,
              help="Folder for <name>.label.png, <name>.overlay.png and <name>.json per image.")
@click.option("--teacher", default=DEFAULT_TEACHER, show_default=True, help=_TEACHER_HELP)
@click.option("--detector", type=_DETECTOR_CHOICE, default=DEFAULT_DETECTOR, show_default=True, help=_DETECTOR_HELP)
@click.option("--crop-size", default=128, show_default=True, help="Side of the output face crop and label map.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help=_MAX_PIXELS_HELP)
def label(images: tuple[Path, ...], sample: bool, out_dir: Path, teacher: str, detector: str,
          crop_size: int, max_pixels: int) -> None:
    """Label single IMAGES (or the embedded --sample) without Dask.

    Writes, per image, the label map as PNG (pixel values are the ids), an
    overlay PNG (original with box, contour points and hull; the crop with
    the face in green and each occlusion blob in its own colour; the label
    map; a legend of the colours and of "occluded %" beneath) and a JSON
    record (box, pose, contour, timings, status). Bad files get a status in
    their JSON record; the command goes on with the next image.
    """
    from tqdm import tqdm

    from labelgen.chain import ChainConfig, LabelChain, LabelResult
    from labelgen.overlay import (PANEL_LEGEND, PANEL_NOTE, caption, label_colours, occluded_fraction,
                                  overlay_labels, overlay_original, with_legend)
    from labelgen.sample import sample_jpeg, sample_keys
    from labelgen.stages.decode import decode_image

    if not images and not sample:
        raise click.UsageError("give image paths, or --sample for the embedded sample")
    # Outputs are named after the file name alone; the sample's keys (photo/variant) both tell, so both stay.
    jobs = [(key, key.rsplit(".", 1)[0].replace("/", "__"), lambda key=key: sample_jpeg(key))
            for key in (sample_keys() if sample else [])]
    jobs += [(str(path), path.stem, path.read_bytes) for path in images]
    jobs = [(key, stem, read) for (key, _, read), stem in zip(jobs, unique_names([name for _, name, _ in jobs]))]
    out_dir.mkdir(parents=True, exist_ok=True)
    config = ChainConfig(crop_size=crop_size, teacher=_check_teacher(teacher), detector=detector,
                         max_pixels=max_pixels)
    counts: Counter[str] = Counter()
    with LabelChain(config) as chain:
        for key, stem, read in tqdm(jobs, desc="labelling", unit="img", file=sys.stderr):
            try:
                data = read()
            except OSError as error:
                result = LabelResult.unreadable(key, error)
            else:
                result = chain.label_bytes(data, key)
            counts[result.status.label] += 1
            (out_dir / f"{stem}.json").write_text(json.dumps(result.to_record(), indent=1))
            if not result.ok:
                continue
            _write_picture(out_dir / f"{stem}.label.png", result.label)
            crop_view = overlay_labels(result.image, result.label, result.crop.apply(result.contour))
            original = overlay_original(decode_image(data, max_pixels), result.box, result.contour)
            panel = np.hstack([original, crop_view, label_colours(cv2.resize(
                result.label, (256, 256), interpolation=cv2.INTER_NEAREST))])
            detail = (f"  blobs={result.blobs}  occluded {100 * occluded_fraction(result.label):.0f}%  "
                      f"pose={result.pose_method}")
            _write_picture(out_dir / f"{stem}.overlay.png",
                           with_legend(caption(panel, key, detail), PANEL_LEGEND, PANEL_NOTE))
    summary = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
    click.echo(f"labelled {sum(counts.values())} images into {out_dir} ({summary})")


def unique_names(names: list[str]) -> list[str]:
    """``names`` with a numeric suffix on repeats, so that no two images write the same files.

    Example:
        >>> unique_names(["x", "y", "x", "x-2", "x"])
        ['x', 'y', 'x-2', 'x-2-2', 'x-3']
    """
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{name}-{number}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def _check_teacher(teacher: str) -> str:
    """Load the teacher once, before any work is sent to workers: a bad model fails here, not in every shard.

    Returns the teacher as the job records it: a name, or a model file's absolute path.
    """
    from labelgen.teachers import load_teacher, resolve

    try:
        load_teacher(teacher)
    except (ValueError, OSError, RuntimeError) as error:
        raise click.BadParameter(str(error), param_hint="--teacher") from error
    if teacher == "classical":
        click.echo("note: the 'classical' teacher is a weak baseline (skin colour + GrabCut: hands read as "
                   f"face, eyes and beards as occlusion); the default '{DEFAULT_TEACHER}' is far better "
                   "(docs/teacher.md)", err=True)
    return resolve(teacher).spec


def _parse_options(pairs: tuple[str, ...]) -> dict:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--source-option")
        options[name] = {"true": True, "false": False}.get(value.lower(), value)
    return options


@main.command()
@_verbose_option
@click.option("--source", "source_name", default="sample", show_default=True,
              help="Corpus format: casia, vggface2, lfw, folder, msceleb-tsv, insightface-rec, or sample "
                   "(the embedded sample, needs no --root).")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="Corpus root (folder; a .tsv or .rec file for those formats).")
@click.option("--source-option", "source_options", multiple=True, metavar="NAME=VALUE",
              help="Reader option, e.g. bbox_csv=/data/vggface2/loose_bb_train.csv or identity_from_folder=true.")
@click.option("--out", type=str, required=True,
              help="The Zarr store to create or resume: a folder, or an fsspec URL such as s3://bucket/labels.zarr "
                   "(credentials and AWS_ENDPOINT_URL from the environment; docs/store.md).")
@click.option("--teacher", default=None,
              help=_TEACHER_HELP + f" (default: {DEFAULT_TEACHER} for a new store; a resumed store keeps the "
                   "teacher it was made with, so a store made under an older default resumes with that one)")
@click.option("--detector", type=_DETECTOR_CHOICE, default=None,
              help=_DETECTOR_HELP + f" Default: {DEFAULT_DETECTOR} for a new store; a resumed store keeps the "
                   "one it was made with (centerface for a store made before this option).")
@click.option("--crop-size", default=128, show_default=True, help="Side of the stored crops and label maps.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help=_MAX_PIXELS_HELP + f" Default: {DEFAULT_MAX_PIXELS} for a new store; a resumed store keeps its "
                   "own (2^30 for a store made before this option).")
@click.option("--shard-size", type=int, default=None,
              help="Images per shard (one Dask task each). Default: min(256, images / (4 x workers x threads)), "
                   "so every worker gets several shards; a resumed store keeps the size it was made with.")
@click.option("--seed", default=0, show_default=True, help="Seed of the manifest's shuffle.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Local Dask worker processes.  [default: one per core, as many as get 2 GiB of memory each]")
@click.option("--threads-per-worker", default=1, show_default=True,
              help="Threads per worker (each thread loads its own models).")
@click.option("--scheduler", default=None, help="Join an existing Dask cluster, e.g. tcp://10.0.0.1:8786.")
@click.option("--serial", is_flag=True, help="Label in this process without Dask (debugging).")
@click.option("--overwrite", is_flag=True, help="Delete an existing store made by a different job and start again.")
@click.option("--prepare-only", is_flag=True, help="Scan the source and create the store, then stop "
              "(first step of batch-array jobs).")
@click.option("--part", default=None, metavar="K/N",
              help="Only shards i with i % N == K: one of N independent batch jobs sharing the store.")
@click.option("--wait-notice", "wait_notice_s", type=float, default=30.0, hidden=True,
              help="Seconds without workers before saying the run is waiting for them.")
@click.option("--dashboard", is_flag=False, flag_value=DEFAULT_DASHBOARD, default=None, metavar="[ADDRESS]",
              help=f"Start the local cluster's Dask dashboard at ADDRESS (default {DEFAULT_DASHBOARD}, this host "
                   "only; ':8787' for every interface) and print its address. Off without it.")
def run(source_name, root, source_options, out, teacher, detector, crop_size, max_pixels, shard_size, seed, workers,
        threads_per_worker, scheduler, serial, overwrite, prepare_only, part, wait_notice_s, dashboard) -> None:
    """Label a corpus into a sharded Zarr store, in parallel with Dask.

    The source is scanned once into a manifest (shuffled with --seed so each
    shard mixes identities). Each shard of --shard-size images is one task;
    a task writes its rows and then a completion record. Re-running the same
    command resumes: only shards without a record are done. A different job
    on the same --out is refused unless --overwrite. One run at a time works
    on a store (a --part K/N run on its part); Ctrl-C or SIGTERM stops it
    cleanly (exit code 130 / 143) and the same command resumes.

    \b
    Examples:
      labelgen run --source sample --out labels.zarr
      labelgen run --source casia --root /data/CASIA-WebFace --out casia.zarr --workers 16
      labelgen run --source vggface2 --root /data/vggface2/train \\
          --source-option bbox_csv=/data/vggface2/bb_landmark/loose_bb_train.csv --out vgg.zarr
    """
    from labelgen.chain import ChainConfig
    from labelgen.disk_space import file_system_of, no_space_error
    from labelgen.run import Interrupted, Job, signals_stop_the_run, stored_settings

    if source_name != "sample" and root is None:
        raise click.UsageError(f"--source {source_name} needs --root (the corpus location)")
    if dashboard is not None and (scheduler or serial):
        raise click.UsageError("--dashboard is the local cluster's; a --scheduler cluster has its own "
                               "('dask scheduler --dashboard-address'), and --serial runs no cluster")
    part_of = _parse_part(part)
    workers = workers or default_local_workers()
    # Settings not given: like --shard-size, the store's own when resuming (so the same command resumes).
    stored = {} if overwrite else stored_settings(out)
    teacher = _check_teacher(teacher or stored.get("teacher") or DEFAULT_TEACHER)
    detector = detector or stored.get("detector") or DEFAULT_DETECTOR
    max_pixels = max_pixels or stored.get("max_pixels") or DEFAULT_MAX_PIXELS
    job = Job(source_name, None if source_name == "sample" else str(root.resolve()), _parse_options(source_options),
              ChainConfig(crop_size=crop_size, teacher=teacher, detector=detector, max_pixels=max_pixels),
              shard_size, seed)
    store = None
    try:
        with signals_stop_the_run():
            store = _prepare_locked(out, job, overwrite, part_of, 1 if serial else workers * threads_per_worker)
            try:
                _run_prepared(store, out, part_of, prepare_only, workers, threads_per_worker, scheduler, serial,
                              wait_notice_s, dashboard)
            finally:
                store.lock.release()
    except Interrupted as stop:
        if store is None:
            click.echo("\ninterrupted before the store was made; run the same command to start again", err=True)
        else:
            click.echo(f"\ninterrupted: {_shards_done(store, part_of)}; run the same command to resume", err=True)
        sys.exit(stop.exit_code)
    except OSError as error:  # the store's file system filled up: what is labelled is kept
        if store is None or no_space_error(error) is None:  # (a full disk while creating it: _prepare_locked)
            raise
        raise click.ClickException(f"no space left on device writing {out}: {_shards_done(store, part_of)}; free "
                                   f"space on {file_system_of(out)} and rerun the same command") from None


def _shards_done(store, part: tuple[int, int] | None) -> str:
    """``"N of M shards done"`` for the shards of ``part`` (all shards without one)."""
    from labelgen.run import shards_of_part

    shards = shards_of_part(range(store.shard_count), part)
    return f"{len(store.done_shards() & set(shards))} of {len(shards)} shards done"


def _prepare_locked(out: Path, job, overwrite: bool, part: tuple[int, int] | None, slots: int):
    """The store for ``job`` at ``out``, created or reopened, with this run's lock held; clear errors otherwise."""
    from labelgen.model_files import ModelFileMissing
    from labelgen.run import prepare_store
    from labelgen.sources import SourceError
    from labelgen.store import StoreError

    try:
        return prepare_store(out, job, overwrite=overwrite, lock=True, part=part, slots=slots)
    except (SourceError, StoreError, ModelFileMissing) as error:  # the last: its message says what to install
        raise click.ClickException(str(error)) from None
    except OSError as error:  # anything the checks did not foresee about --out: still one line
        raise click.ClickException(f"cannot use {out}: {error.strerror or error}") from None


def _run_prepared(store, out: Path, part: tuple[int, int] | None, prepare_only: bool, workers: int,
                  threads_per_worker: int, scheduler: str | None, serial: bool, wait_notice_s: float,
                  dashboard: str | None) -> None:
    from labelgen.run import ChainCannotStart, ClusterError, reset_damaged_shards, run_job, shards_of_part
    from labelgen.store import StoreDamaged

    try:
        damaged = reset_damaged_shards(store, part).damaged
    except StoreDamaged as error:
        raise click.ClickException(str(error)) from None
    if damaged:
        click.echo(f"{out}: {len(damaged)} done shard{'s' * (len(damaged) > 1)} damaged "
                   f"({_describe_damage(damaged)}): relabelling {'them' if len(damaged) > 1 else 'it'}", err=True)
    pending = shards_of_part(store.pending_shards(), part)
    click.echo(f"{out}: {store.count} images in {store.shard_count} shards of {store.shard_size}, "
               f"{len(pending)} to do", err=True)
    _echo_scan_report(store.attrs.get("scan_report"), limit=5)
    if prepare_only:
        return
    started = time.perf_counter()
    try:
        summary = run_job(store, workers=workers, threads_per_worker=threads_per_worker, scheduler=scheduler,
                          serial=serial, part=part, wait_notice_s=wait_notice_s, dashboard=dashboard)
    except ClusterError as error:
        raise click.ClickException(str(error)) from None
    except ChainCannotStart as error:  # every shard would fail alike: one line, what is done stays done
        raise click.ClickException(f"{error}; {_shards_done(store, part)}, and the same command resumes once "
                                   f"it is fixed") from None
    seconds = time.perf_counter() - started
    done = store.images_in(pending)
    sizes = store.stored_bytes()
    click.echo(f"done: {done} images in {seconds:.1f} s ({done / max(seconds, 1e-9):.1f} img/s); "
               f"status: {_format_counts(summary)}; "
               f"{sum(sizes.values()) / max(store.count, 1) / 1024:.1f} KiB per image stored")


def _echo_scan_report(report: dict | None, limit: int) -> None:
    """What the scan could not make rows of (unlistable folders, symlink loops, formats not decoded), if anything."""
    if not report or not report.get("skipped"):
        return
    click.echo(f"scan: {report['skipped']} entries skipped (not in the store):", err=True)
    for path, problem in report["listed"][:limit]:
        click.echo(f"  {path}: {problem}", err=True)
    if report["skipped"] > limit:
        click.echo(f"  ... ('labelgen stats' lists up to {len(report['listed'])})", err=True)


def _parse_part(part: str | None) -> tuple[int, int] | None:
    if part is None:
        return None
    try:
        k, n = (int(v) for v in part.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected K/N, got {part!r}", param_hint="--part") from None
    if not 0 <= k < n:
        raise click.BadParameter(f"need 0 <= K < N, got {part!r}", param_hint="--part")
    return k, n


def _describe_damage(damaged: dict) -> str:
    from labelgen.store import describe_damage

    return describe_damage(damaged)


def _format_counts(counts: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1]))


def _open_store(path: str):
    from labelgen.store import LabelStore, StoreError

    try:
        return LabelStore(path, mode="r")
    except StoreError as error:
        raise click.ClickException(str(error)) from error


def _histogram(counts: np.ndarray, labels: list[str]) -> str:
    width = max(counts.max(), 1)
    return "\n".join(f"  {label:>10} {count:>8}  {'#' * int(40 * count / width)}" for label, count in zip(labels, counts))


@main.command()
@click.argument("store_path", type=str)
def stats(store_path: str) -> None:
    """Counts per status, blobs per image and occlusion fractions of STORE_PATH."""
    from labelgen.report import occluded_fractions, row_blocks
    from labelgen.status import Status

    blob_bins, fraction_bins = [0, 1, 2, 3, 4, 256], [0, 1e-9, 0.1, 0.2, 0.4, 1.0001]

    def read():  # a block of rows at a time: the memory of a block, whatever the store's size
        codes, blobs, fractions = np.zeros(256, np.int64), np.zeros(len(blob_bins) - 1, np.int64), 0
        for rows in row_blocks(store):
            status = store.read("status", rows)
            codes += np.bincount(status, minlength=256)
            ok = np.flatnonzero(status == Status.OK)
            blobs += np.histogram(store.read("blobs", rows)[ok], blob_bins)[0]
            fractions = fractions + np.histogram(occluded_fractions(store, rows.start + ok), fraction_bins)[0]
        return codes, blobs, fractions

    store = _open_store(store_path)
    check = store.skip_damaged()
    codes, blobs, fractions = store.read_skipping_damage(read)
    damaged = f", {len(store.damage)} damaged" if store.damage else ""
    click.echo(f"{store_path}: {store.count} images, crop {store.crop_size} px, "
               f"{len(check.checked) - len(store.damage)}/{store.shard_count} shards done{damaged}")
    _echo_integrity(store, check.unverifiable)
    _echo_scan_report(store.attrs.get("scan_report"), limit=1000)
    for code in np.flatnonzero(codes):
        click.echo(f"  {Status(int(code)).label:>15} {codes[code]:>8}  ({100 * codes[code] / store.count:.1f}%)")
    if codes[Status.OK] == 0:
        return
    click.echo("occlusion blobs per image:")
    click.echo(_histogram(blobs, ["0", "1", "2", "3", ">=4"]))
    click.echo("occluded fraction of the face region:")
    click.echo(_histogram(fractions, ["0", "<10%", "10-20%", "20-40%", ">=40%"]))
    sizes = store.stored_bytes()
    click.echo("stored bytes per image: " + ", ".join(
        f"{name} {size / store.count:.0f}" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:4]))


def _echo_integrity(store, unverifiable: list) -> None:
    """The damaged shards found and how to relabel them, and the shards made before checksums were recorded."""
    if store.damage:
        click.echo(f"damaged: {_describe_damage(store.damage)}; not counted as done, their rows read as "
                   f"'damaged'; {store.repair_advice(len(store.damage))}")
    if unverifiable:
        click.echo(f"unverifiable: {len(unverifiable)} shards were labelled before labelgen recorded "
                   f"checksums; they cannot be checked (which is not damage)")


@main.command()
@click.argument("store_path", type=str)
@click.option("--repair", is_flag=True,
              help="Make the damaged shards pending again (status and completion record), so that the next "
                   "'labelgen run' of the command that made the store relabels exactly those; restore damaged "
                   "array metadata from the copy the store keeps.")
def verify(store_path: str, repair: bool) -> None:
    """Check every done shard of STORE_PATH against what its completion record says it wrote.

    Every chunk is read and its size and CRC-32C compared with the record:
    missing, truncated, unreadable or changed chunks, unreadable records and
    damaged array metadata are found. One line per damaged shard, then a
    summary; the exit code is 1 when something is damaged and not repaired.
    Shards labelled before checksums were recorded are read through instead.

    \b
    Example:
      labelgen verify labels.zarr --repair && labelgen run --source casia --root DIR --out labels.zarr
    """
    from labelgen.run import reset_damaged_shards
    from labelgen.run_lock import FolderLocked, lock_for
    from labelgen.store import LabelStore, StoreDamaged, StoreError, repair_metadata

    lock = None
    try:
        if repair:
            try:
                LabelStore(store_path, mode="r")  # not a label store at all: said before a lock is taken in it
            except StoreDamaged:
                pass  # a label store with damaged metadata: what --repair restores
            lock = lock_for(store_path, holder="labelgen verify --repair").acquire()
            for name in repair_metadata(store_path):
                click.echo(f"restored the metadata of array '{name}' from the store's consolidated copy")
        store = LabelStore(store_path, mode="r+" if repair else "r")
        check = store.check_shards(full=True)
        for index, problems in check.damaged.items():
            rows = store.shard_rows(index)
            click.echo(f"shard {index} (rows {rows.start}-{rows.stop - 1}): damaged: {'; '.join(problems)}")
        intact = len(check.checked) - len(check.damaged)
        unverifiable = (f" ({len(check.unverifiable)} labelled before checksums were recorded: read through, which "
                        f"finds undecodable chunks but not lost ones)") if check.unverifiable else ""
        click.echo(f"{store_path}: {len(check.checked)} done shards verified: {intact} intact, {len(check.damaged)} "
                   f"damaged{unverifiable}; {len(store.pending_shards())} of {store.shard_count} pending")
        if not check.damaged:
            return
        if not repair:
            click.echo(store.repair_advice(len(check.damaged)))
            sys.exit(1)
        reset_damaged_shards(store, check=check)
    except (FolderLocked, StoreDamaged, StoreError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        if lock is not None:
            lock.release()
    click.echo(f"repaired: {len(check.damaged)} shard{'s are' if len(check.damaged) > 1 else ' is'} pending again; "
               f"relabel with: {store.run_command()}")


@main.command()
@click.argument("store_url")
def unlock(store_url: str) -> None:
    """Remove the run locks of STORE_URL, a store on object storage, whose runs are gone.

    A run refused because another holds a store on object storage names that
    run (host, pid, start, command). A run of this host that died is found
    and its lock taken over by itself; one of another machine cannot be
    checked from here. Run this only when that run is known to be gone.
    Local stores need it never: their locks end with the process.
    """
    from labelgen.locations import is_url
    from labelgen.object_lock import remove_locks

    if not is_url(store_url):
        raise click.ClickException(f"{store_url} is a folder: its locks end with the run that holds them, "
                                   f"there is nothing to remove")
    try:
        removed = remove_locks(store_url)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot remove the locks of {store_url}: {error}") from None
    click.echo(f"{store_url}: removed {', '.join(removed)}" if removed else f"{store_url}: no run lock")


@main.command()
@click.argument("store_path", type=str)
@click.option("--out", type=click.Path(path_type=Path), default=Path("grid.png"), show_default=True)
@click.option("--n", "count", default=64, show_default=True, help="Number of images in the grid.")
@click.option("--status", "status_name", default="ok", show_default=True,
              help="Only images with this status (ok, no_face, ...). Non-ok images have no crop to show.")
@click.option("--occluded", is_flag=True, help="Only images with at least one occlusion blob.")
@click.option("--columns", default=8, show_default=True)
def show(store_path: str, out: Path, count: int, status_name: str, occluded: bool, columns: int) -> None:
    """Write an overlay grid of STORE_PATH's crops and labels to a PNG.

    Each crop has its key and occluded % above it; a legend of the colours and
    of "occluded %" runs beneath the grid.
    """
    from labelgen.overlay import GRID_NOTE, caption, crop_legend, grid, occluded_fraction, overlay_labels, with_legend
    from labelgen.status import Status

    store = _open_store(store_path)
    try:
        wanted = Status[status_name.upper()]
    except KeyError:
        raise click.BadParameter(f"unknown status {status_name!r}", param_hint="--status") from None
    rows = np.flatnonzero(store.status() == wanted)
    if occluded:
        rows = rows[store.read("blobs", rows) > 0] if len(rows) else rows
    rows = rows[:count]
    if len(rows) == 0:
        raise click.ClickException(f"no images with status {wanted.label}{' and occlusions' if occluded else ''}")
    if wanted != Status.OK:
        keys = store.read("key", rows)
        for key in keys:
            click.echo(f"{wanted.label}: {key}")
        return
    images, labels, keys = store.read("image", rows), store.read("label", rows), store.read("key", rows)
    pictures = [caption(overlay_labels(image, label, display_size=160), str(key),
                        f" {100 * occluded_fraction(label):.0f}%") for image, label, key in zip(images, labels, keys)]
    _write_picture(out, with_legend(grid(pictures, columns=columns), crop_legend(contour=False), GRID_NOTE))
    click.echo(f"wrote {out} ({len(rows)} images)")



@main.command()
@click.argument("store_path", type=str)
@click.option("--out", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True,
              help="The HTML file to write (pictures are embedded: one file to keep or send).")
@click.option("--examples", default=16, show_default=True, help="Example images per status.")
@click.option("--max-images", default=10_000, show_default=True,
              help="Read label maps (occluded fractions, most/least occluded) of at most this many ok rows: "
                   "the first ones, a uniform sample since the manifest is shuffled.")
def report(store_path: str, out: Path, examples: int, max_images: int) -> None:
    """Write a browsable HTML report of STORE_PATH.

    The run (job, teacher, models and hashes, time, bytes per image), counts
    per status, histograms (occluded fraction, blobs per face, face size, yaw,
    pitch, roll), example crops per status, the most and least occluded faces,
    and every failure with its message. Self-contained: no network, no script.

    \b
    Example:
      labelgen report labels.zarr --out report.html
    """
    from labelgen.report import write_report
    from labelgen.status import Status

    _open_store(store_path)  # a clear error for a path that is not a store
    facts = write_report(store_path, out, examples=examples, max_images=max_images)
    click.echo(f"wrote {out} ({facts.status.size} images, {int((facts.status == Status.OK).sum())} ok)")


@main.command()
def teachers() -> None:
    """List the teachers: the shipped models (the first is the default) and the built-in baselines.

    A teacher decides which part of each face region is visible face, so it
    decides the quality of every label; the model card of the shipped ones is
    docs/teacher.md.
    """
    from labelgen.teachers import BUILTIN_TEACHERS, shipped_teachers

    for name, teacher in shipped_teachers().items():
        default = "  (default)" if name == DEFAULT_TEACHER else ""
        click.echo(f"{name}{default}\n    {teacher.description}\n    sha256 {teacher.sha256}\n"
                   f"    licence: {teacher.licence}")
        for measure, value in teacher.headline.items():
            click.echo(f"    {measure}: {value}")
    for name, description in BUILTIN_TEACHERS.items():
        click.echo(f"{name}\n    {description}")


for _command in EVALUATION_COMMANDS:  # synth, eval-labels: they live with the evaluation kit
    main.add_command(_command)


if __name__ == "__main__":
    main()
