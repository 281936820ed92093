"""The evaluation kit's ``labelgen`` commands (registered on :data:`labelgen.cli.main`).

Commands:
  synth        paste occluders on LFW Part Labels faces: images with exact labels
  eval-labels  score teachers' pseudo-labels against exact synthetic ground truth

The kit's modules are imported inside the commands, so that the other commands
do not load them; only the two small ones whose names the options show (the
LFW folder's default, the variants) are imported here.
"""
from __future__ import annotations

from pathlib import Path

import click

from labelgen.eval.lfw_parts import DEFAULT_ROOT_HELP
from labelgen.eval.variants import CLEAN, VARIANTS
from labelgen.teachers import DEFAULT_TEACHER, MODEL_FILE_TRUST


def _families_option(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(name.strip() for name in value.split(",") if name.strip())


def _variant_option(command):
    """The ``--variant`` option: a photometric variant of every photo (labelgen.eval.variants)."""
    return click.option("--variant", type=click.Choice([CLEAN, *VARIANTS]), default=CLEAN, show_default=True,
                        help="Apply this photometric variant (fixed settings, labelgen/eval/variants.py) to every "
                             "occluded photo first; the exact labels stay as they are.")(command)


_FAMILIES_HELP = ("Comma-separated occluder families (objects, polygons, scarves, hands, glasses, props, skin); "
                  "default: the held-out ones for test, the training ones for train and val.")


@click.command()
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="train", show_default=True,
              help="LFW Part Labels split to occlude (test is for evaluation only).")
@click.option("--copies", default=1, show_default=True, help="Occluded copies of each face.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The Zarr store to create (a folder of photos with --photos).")
@click.option("--size", "crop_size", default=128, show_default=True, help="Side of the stored images and labels.")
@click.option("--seed", default=0, show_default=True, help="Seed of the occluders and of the manifest's shuffle.")
@click.option("--families", default=None, help=_FAMILIES_HELP)
@click.option("--max-occluders", default=2, show_default=True, help="At most this many occluders per image.")
@click.option("--limit", type=int, default=None, help="Only the first LIMIT faces of the split.")
@click.option("--shard-size", default=256, show_default=True, help="Images per shard.")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help=f"LFW Part Labels folder.  {DEFAULT_ROOT_HELP}")
@click.option("--overwrite", is_flag=True, help="Delete an existing --out first.")
@click.option("--photos", is_flag=True,
              help="Write the occluded photos (250 px JPEG, '<stem>#<copy>.jpg') into the folder --out instead of "
                   "a store, without their labels: a corpus for 'labelgen run --source folder'. Resumes: files "
                   "already there are kept.")
@_variant_option
def synth(split, copies, out, crop_size, seed, families, max_occluders, limit, shard_size, root, overwrite,
          photos, variant) -> None:
    """Write LFW Part Labels faces with pasted occluders and their EXACT labels as a label store.

    Same schema as 'labelgen run' (0 background, 1 visible face, >=2 one id
    per occluder blob on the face; every row ok), so the store is training
    data as it is. Keys are '<stem>#<copy>'; the images are the 250 px LFW
    images resized to --size (no face crop). Deterministic in --seed.

    \b
    Examples:
      labelgen synth --split train --copies 4 --out synth_train.zarr
      labelgen synth --split test --out synth_test.zarr --size 128
      labelgen synth --split test --variant greyscale --out synth_test_greyscale.zarr
      labelgen synth --split train --copies 3 --photos --out occluded_photos/
    """
    import shutil

    from labelgen.store import StoreError
    from labelgen.eval.synth import write_synthetic_photos, write_synthetic_store

    if overwrite and out.exists():
        shutil.rmtree(out)
    if photos:
        try:
            count = write_synthetic_photos(out, split, copies, seed, _families_option(families), max_occluders,
                                           root, limit, variant=variant)
        except (FileNotFoundError, ValueError) as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"{out} holds the {count} occluded photos of this split (labels not written)")
        return
    try:
        store = write_synthetic_store(out, split, copies, seed, _families_option(families), max_occluders,
                                      crop_size, shard_size, root, limit, variant=variant)
    except (StoreError, FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    blobs = store.read("blobs", slice(None))
    click.echo(f"wrote {store.count} images to {out} ({int((blobs > 0).sum())} occluded, "
               f"{int(blobs.sum())} occlusion blobs)")


@click.command("eval-labels")
@click.option("--teacher", "teachers", multiple=True, metavar="NAME|PATH",
              help="A teacher to compare with the baselines 'hull' and 'classical' (repeatable): a shipped "
                   f"teacher's name or a .onnx/.pt model. {MODEL_FILE_TRUST}  [default: {DEFAULT_TEACHER}]")
@click.option("--limit", default=300, show_default=True, help="First LIMIT faces of the split.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--copies", default=1, show_default=True, help="Occluded copies of each face.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic occluders.")
@click.option("--families", default=None, help=_FAMILIES_HELP)
@click.option("--max-occluders", default=2, show_default=True)
@click.option("--crop-size", default=128, show_default=True, help="Side of the chain's output labels.")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help=f"LFW Part Labels folder.  {DEFAULT_ROOT_HELP}")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also save the report here.")
@click.option("--grid", "grid_path", type=click.Path(path_type=Path), default=None,
              help="Also write a PNG: for the first --grid-rows faces, the true labels and each teacher's side by side.")
@click.option("--grid-rows", default=8, show_default=True, help="Faces in the --grid picture.")
@_variant_option
def eval_labels(teachers, limit, split, copies, seed, families, max_occluders, crop_size, root, json_path,
                grid_path, grid_rows, variant) -> None:
    """Score the labelling chain against exact labels of synthetically occluded LFW faces.

    Runs the chain with the teachers 'hull' (no occlusions), 'classical' and
    each --teacher (default: the shipped teacher) on the same images (made on the fly by the generator of
    'labelgen synth'; held-out occluder families on test), maps the exact labels
    into each result's crop and prints one row per teacher: ok rate, face
    IoU, occlusion IoU / recall / precision, both IoUs inside the true face
    region (@gt) and inside the face region chain and truth agree on (@both:
    the visible-vs-occluded decision alone), mean |#blobs true - #blobs
    predicted|, per-image mean IoUs, and the other statuses. IoUs pool pixels
    over all ok images.

    \b
    Example:
      labelgen eval-labels --limit 300 --teacher teacher.onnx --json quality.json --grid quality.png
      labelgen eval-labels --split val --limit 100 --variant dark --json quality_dark.json
    """
    from labelgen.eval.quality import comparison_grid, evaluate_teachers, format_table, report_json, teacher_list
    from labelgen.overlay import write_picture

    names = teacher_list(teachers or (DEFAULT_TEACHER,))
    examples = [] if grid_path is not None else None
    try:
        report = evaluate_teachers(names, split, limit, copies, seed, _families_option(families),
                                   max_occluders, crop_size, root, examples=examples, max_examples=grid_rows,
                                   variant=variant)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    settings = report["settings"]
    click.echo(f"{settings['split']} split, first {limit} faces x {copies}, families {','.join(settings['families'])}, "
               f"seed {seed}, variant {settings['variant']}")
    click.echo(format_table(report))
    if json_path is not None:
        json_path.write_text(report_json(report))
        click.echo(f"wrote {json_path}")
    if grid_path is not None:
        if not examples:
            raise click.ClickException("no face was labelled ok by every teacher: nothing to draw")
        try:
            write_picture(grid_path, comparison_grid(examples, names))
        except OSError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"wrote {grid_path} ({len(examples)} faces: truth, {', '.join(names)})")


COMMANDS = (synth, eval_labels)
