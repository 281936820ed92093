"""The evaluation's photometric variants (labelgen.eval.variants): each changes the photo the way its name
says, keeps its shape and dtype, and is a pure function of the photo."""
from __future__ import annotations

import numpy as np
import pytest

from labelgen.eval.variants import VARIANTS, apply_variant


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A face-like photo: a smooth skin-toned gradient with texture and a saturated patch (seeded)."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:96, 0:80].astype(np.float32)
    base = np.stack([150 + rows * 0.6, 110 + cols * 0.5, 90 + (rows + cols) * 0.2], axis=2)
    image = base + rng.normal(0, 12, base.shape)
    image[20:40, 20:50] = (30, 60, 200)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_changes_the_photo_and_keeps_its_shape_and_dtype(name, photo):
    out = apply_variant(name, photo)
    assert out.shape == photo.shape and out.dtype == np.uint8
    # At least 1 grey level on average over the photo: far above rounding, far below every variant's effect.
    assert np.abs(out.astype(int) - photo).mean() > 1.0
    assert np.array_equal(out, apply_variant(name, photo.copy())), "deterministic: same photo, same output"
    assert np.array_equal(photo, photo.copy()) and out is not photo


def test_each_variant_does_what_its_name_says(photo):
    grey = apply_variant("greyscale", photo)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    dark, bright = apply_variant("dark", photo), apply_variant("bright", photo)
    assert dark.mean() < 0.6 * photo.mean() and bright.mean() > 1.2 * photo.mean()
    assert (bright == 255).mean() > (photo == 255).mean(), "over-exposure burns highlights out"
    cast = apply_variant("colour-cast", photo).astype(float)
    assert cast[..., 2].mean() > photo[..., 2].mean() and cast[..., 0].mean() < photo[..., 0].mean()
    # Low resolution and JPEG lose fine detail: less energy in the pixel-to-pixel differences.
    def detail(image):
        return np.abs(np.diff(image.astype(float), axis=1)).mean()
    assert detail(apply_variant("low-res", photo)) < 0.6 * detail(photo)
    assert detail(apply_variant("jpeg", photo)) < 0.9 * detail(photo)


def test_clean_is_the_photo_itself_and_a_bad_name_or_image_is_refused(photo):
    assert apply_variant(None, photo) is photo and apply_variant("clean", photo) is photo
    with pytest.raises(ValueError, match="unknown variant 'sepia'"):
        apply_variant("sepia", photo)
    with pytest.raises(ValueError, match="uint8 RGB"):
        apply_variant("dark", photo.astype(np.float32))


# -- the variants in the evaluation kit's commands and tables -----------------------------------------
def test_synth_writes_the_variant_of_each_photo_with_the_clean_labels(tmp_path, lfw_root):
    from labelgen.eval.synth import write_synthetic_store

    clean = write_synthetic_store(tmp_path / "clean.zarr", "val", root=lfw_root, limit=3, progress=False)
    dark = write_synthetic_store(tmp_path / "dark.zarr", "val", root=lfw_root, limit=3, progress=False,
                                 variant="dark")
    rows = slice(None)
    assert np.array_equal(clean.read("label", rows), dark.read("label", rows))
    assert dark.read("image", rows).mean() < 0.7 * clean.read("image", rows).mean()
    assert dark.attrs["synthetic"]["variant"] == "dark" and clean.attrs["synthetic"]["variant"] == "clean"


def test_eval_labels_applies_the_variant_before_the_chain(lfw_root):
    from labelgen.eval.quality import evaluate_teachers

    reports = {variant: evaluate_teachers(["hull"], "val", 3, root=lfw_root, progress=False, variant=variant)
               for variant in ("clean", "greyscale")}
    assert reports["greyscale"]["settings"]["variant"] == "greyscale"
    # The hull labels no occlusion, so its counts differ only through what the chain saw: the same faces, found
    # in both, but not the same pixels (landmarks move a little on a greyscale photo).
    counts = {variant: report["teachers"]["hull"]["counts"] for variant, report in reports.items()}
    assert counts["clean"]["images"] == counts["greyscale"]["images"] == 3
    assert counts["clean"] != counts["greyscale"]


def _direct(face: float, occ: float) -> dict:
    return {"model": {"iou": [95.0, face, occ], "iou_face_in": face + 10, "iou_occlusion_in": occ + 10}}


def _chain(teacher: str, face: float, occ: float | None) -> dict:
    return {"teachers": {"hull": {}, teacher: {"status_rates": {"ok": 0.9},
                                               "metrics": {"face_iou_both": face, "occ_iou_both": occ}}}}


def test_the_robustness_table_has_clean_each_variant_and_their_mean(tmp_path):
    import json

    from labelgen.eval.robustness import GAP, MEAN, collect, format_robustness, main, with_mean
    from labelgen.eval.variants import VARIANTS

    for step, variant in enumerate(["clean", *VARIANTS]):
        (tmp_path / f"direct_{variant}.json").write_text(json.dumps(_direct(80.0 - step, 70.0 - 2 * step)))
        (tmp_path / f"chain_{variant}.json").write_text(json.dumps(_chain("t.onnx", 0.9, None if step == 3 else 0.6)))
    rows = with_mean(collect(tmp_path, "t.onnx"))
    assert list(rows) == ["clean", *VARIANTS, MEAN, GAP]
    # Variants are steps 1..6 below clean: mean step 3.5.
    assert rows[MEAN]["face_iou"] == 76.5 and rows[GAP]["occ_iou"] == -7.0 and rows[GAP]["face_iou_in"] == -3.5
    assert rows["clean"]["chain_ok"] == 90.0 and rows["clean"]["chain_face_both"] == 90.0
    assert np.isnan(rows["low-res"]["chain_occ_both"])  # undefined (null) stays undefined, and so does its mean
    table = format_robustness(rows).splitlines()
    assert table[0].split()[:3] == ["variant", "face", "IoU"] and table[2].split()[1] == "80.00"
    assert main([str(tmp_path), "--teacher", "t.onnx", "--json", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())[MEAN]["chain_occ_both"] is None


def test_the_robustness_table_names_what_is_missing(tmp_path, capsys):
    from labelgen.eval.robustness import main

    assert main([str(tmp_path), "--teacher", "t.onnx"]) == 1
    assert capsys.readouterr().err.startswith("Error: ")
    (tmp_path / "chain_clean.json").write_text('{"teachers": {"hull": {}}}')
    assert main([str(tmp_path), "--teacher", "t.onnx"]) == 1
    assert "no teacher 't.onnx'" in capsys.readouterr().err
