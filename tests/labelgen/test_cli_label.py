import json

import cv2
import numpy as np
from click.testing import CliRunner

from labelgen.cli import main


def test_label_command_writes_png_overlay_and_json(tmp_path, lfw_root):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really")
    good = lfw_root / "images" / "Aaron_Peirsol_0001.jpg"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["label", str(good), str(bad), str(tmp_path / "missing.jpg"),
                                       "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "ok: 1" in result.output and "decode_error: 1" in result.output and "read_error: 1" in result.output
    assert {p.name for p in out.iterdir()} == {"Aaron_Peirsol_0001.json", "Aaron_Peirsol_0001.label.png",
                                               "Aaron_Peirsol_0001.overlay.png", "broken.json", "missing.json"}
    labels = [p for p in out.iterdir() if p.name.endswith(".label.png")]
    assert len(labels) == 1
    label = cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED)
    assert label.shape == (128, 128) and set(np.unique(label)) >= {0, 1}
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert sorted(r["status"] for r in records) == ["decode_error", "ok", "read_error"]


def test_outputs_are_named_after_the_file_name_with_a_suffix_on_clashes(tmp_path):
    from labelgen.sample import sample_jpeg

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes(sample_jpeg("astronaut/original.jpg"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["label", str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg"),
                                       "--teacher", "hull", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {f"{stem}.{kind}" for stem in ("x", "x-2")
                                               for kind in ("json", "label.png", "overlay.png")}
    assert json.loads((out / "x-2.json").read_text())["key"] == str(tmp_path / "b" / "x.jpg")


def test_label_without_inputs_explains_usage():
    result = CliRunner().invoke(main, ["label"])
    assert result.exit_code != 0 and "--sample" in result.output


def test_help_explains_the_method():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "convex hull" in result.output
