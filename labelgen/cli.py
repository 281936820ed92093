"""``labelgen``: make occlusion pseudo-labels for face images.

Commands:
  label   run the chain on single images (no Dask) and write PNGs + JSON
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click
import cv2
import numpy as np


def _imwrite_rgb(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise click.ClickException(f"could not write {path}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="structure-via-consensus")
def main() -> None:
    """Occlusion-aware face pseudo-labels (structure via consensus, CVPR 2020).

    For each face image: detect the face (CenterFace), estimate its 3D pose
    (MediaPipe FaceLandmarker), project the 64-vertex contour of a 3D face
    model, fill its convex hull (the face region), ask a teacher which part
    of it is visible face, and label what is left, after the paper's
    morphology, as occlusion blobs. Label maps: 0 background, 1 face,
    2, 3, ... one id per occlusion blob.
    """


@main.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--sample", is_flag=True, help="Label the embedded sample images (no files needed).")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("labels_out"), show_default=True,
              help="Folder for <name>.label.png, <name>.overlay.png and <name>.json per image.")
@click.option("--teacher", default="classical", show_default=True,
              help="'classical' (skin model + GrabCut), 'hull' (no occlusions) or a .onnx/.pt model path.")
@click.option("--crop-size", default=128, show_default=True, help="Side of the output face crop and label map.")
def label(images: tuple[Path, ...], sample: bool, out_dir: Path, teacher: str, crop_size: int) -> None:
    """Label single IMAGES (or the embedded --sample) without Dask.

    Writes, per image, the label map as PNG (pixel values are the ids), an
    overlay PNG (original with box, contour points and hull; the crop with
    the face in green and each occlusion blob in its own colour) and a JSON
    record (box, pose, contour, timings, status). Bad files get a status in
    their JSON record; the command goes on with the next image.
    """
    from tqdm import tqdm

    from labelgen.chain import ChainConfig, LabelChain
    from labelgen.overlay import caption, label_colours, overlay_labels, overlay_original
    from labelgen.sample import sample_jpeg, sample_keys
    from labelgen.stages.decode import decode_image

    if not images and not sample:
        raise click.UsageError("give image paths, or --sample for the embedded sample")
    jobs: list[tuple[str, callable]] = [(k, (lambda k=k: sample_jpeg(k))) for k in sample_keys()] if sample else []
    jobs += [(str(path), path.read_bytes) for path in images]
    out_dir.mkdir(parents=True, exist_ok=True)
    config = ChainConfig(crop_size=crop_size, teacher=teacher)
    counts: Counter[str] = Counter()
    with LabelChain(config) as chain:
        for key, read in tqdm(jobs, desc="labelling", unit="img", file=sys.stderr):
            stem = key.replace("\\", "/").strip("/").replace("/", "__").rsplit(".", 1)[0]
            try:
                data = read()
            except OSError as error:
                from labelgen.chain import LabelResult
                from labelgen.status import Status

                result = LabelResult(key=key, status=Status.READ_ERROR, message=str(error))
            else:
                result = chain.label_bytes(data, key)
            counts[result.status.label] += 1
            (out_dir / f"{stem}.json").write_text(json.dumps(result.to_record(), indent=1))
            if not result.ok:
                continue
            cv2.imwrite(str(out_dir / f"{stem}.label.png"), result.label)
            crop_view = overlay_labels(result.image, result.label, result.crop.apply(result.contour))
            original = overlay_original(decode_image(data), result.box, result.contour)
            panel = np.hstack([original, crop_view, label_colours(cv2.resize(
                result.label, (256, 256), interpolation=cv2.INTER_NEAREST))])
            _imwrite_rgb(out_dir / f"{stem}.overlay.png",
                         caption(panel, f"{key}  blobs={result.blobs}  pose={result.pose_method}"))
    summary = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
    click.echo(f"labelled {sum(counts.values())} images into {out_dir} ({summary})")
