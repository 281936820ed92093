"""``labelgen report``: what the page says matches the store, it is self-contained, and a real browser shows it."""
from __future__ import annotations

import base64
import html
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from tests.helpers import chromium_or_skip, console_messages, headless_chromium

from labelgen.cli import main
from labelgen.report import SECTIONS, gather, pose_angles, write_report
from labelgen.sample import sample_jpeg
from labelgen.stages.pose import OPENGL_TO_OPENCV
from labelgen.status import Status
from labelgen.store import LabelStore

BROKEN = {"empty.jpg": b"", "not_an_image.jpg": b"hello, I am text"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> LabelStore:
    """A small labelled folder: four sample photos (one has no face) and two files that do not decode."""
    base = tmp_path_factory.mktemp("report")
    corpus = base / "corpus"
    corpus.mkdir()
    for key in ("astronaut/cup.jpg", "hopper/hand.jpg", "cameraman/original.jpg", "coffee/original.jpg"):
        (corpus / key.replace("/", "_")).write_bytes(sample_jpeg(key))
    for name, data in BROKEN.items():
        (corpus / name).write_bytes(data)
    result = CliRunner().invoke(main, ["run", "--source", "folder", "--root", str(corpus), "--out",
                                       str(base / "labels.zarr"), "--serial", "--teacher", "classical"])
    assert result.exit_code == 0, result.output
    return LabelStore(base / "labels.zarr", mode="r")


@pytest.fixture(scope="module")
def page(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = CliRunner().invoke(main, ["report", str(store.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_pose_angles_read_the_stored_rodrigues_vector():
    yaw = np.radians(30)
    turned = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]) @ OPENGL_TO_OPENCV
    stored = np.array([[*cv2.Rodrigues(turned)[0].ravel(), 0, 0, 30], [np.nan] * 6])
    angles = pose_angles(stored)
    np.testing.assert_allclose(angles[0], [30, 0, 0], atol=1e-6)
    assert np.isnan(angles[1]).all()


def test_facts_agree_with_the_store(store):
    facts = gather(store)
    status = store.status()
    assert sorted(Status(int(c)).label for c in status) == sorted(facts.name(c) for c in facts.status)
    assert (status == Status.DECODE_ERROR).sum() == len(BROKEN) and (status == Status.NO_FACE).sum() == 1
    ok = np.flatnonzero(status == Status.OK)
    assert facts.sampled.tolist() == ok.tolist()
    labels = store.read("label", ok)
    expected = (labels >= 2).sum(axis=(1, 2)) / (labels > 0).sum(axis=(1, 2))
    np.testing.assert_allclose(facts.occluded_fraction, expected)
    assert facts.occluded_fraction.max() > 0  # the cup and the hand are occluders
    assert (np.isfinite(facts.angles).all(axis=1) == np.isfinite(store.read("pose", slice(None))).all(axis=1)).all()
    assert np.isfinite(facts.face_size[ok]).all() and (facts.face_size[ok] > 24).all()
    keys = store.read("key", slice(None))
    failed = {str(key) for key, code in zip(keys, status) if code != Status.OK}
    assert set(facts.errors) == failed and all(facts.errors[key].startswith(("decode_error", "no_face"))
                                               for key in failed)


def test_only_the_first_max_images_label_maps_are_read(store, tmp_path):
    facts = write_report(store.path, tmp_path / "r.html", max_images=1)
    assert facts.sampled.tolist() == store.ok_indices()[:1].tolist() and len(facts.occluded_fraction) == 1


def test_page_has_every_section_and_embeds_everything(store, page):
    text = page.read_text()
    for name in SECTIONS:
        assert f'<section id="{name}">' in text
    assert "<script" not in text.lower()
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert all(source.startswith(("data:image/png;base64,", "#")) for source in sources), \
        [source[:40] for source in sources if not source.startswith(("data:", "#"))]
    pictures = [cv2.imdecode(np.frombuffer(base64.b64decode(source.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
                for source in sources if source.startswith("data:")]
    ok = len(store.ok_indices())
    # 6 histograms, then each ok face in the ok examples, among the most and among the least occluded
    assert len(pictures) == 6 + 3 * ok and all(picture is not None and picture.std() > 5 for picture in pictures)
    failures = text.split('<section id="failures">')[1]
    for key, code in zip(store.read("key", slice(None)), store.status()):
        if code != Status.OK:
            assert html.escape(str(key)) in failures
    assert failures.count("decode_error") >= len(BROKEN) and "no face" in failures
    for model in store.attrs["models"].values():
        assert model["sha256"] in text


def test_report_command_refuses_a_path_that_is_not_a_store(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code != 0 and "not a Zarr v3 label store" in result.output
    assert not (tmp_path / "r.html").exists()


def test_browser_test_skips_without_chromium_unless_required(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SVC_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        chromium_or_skip()
    monkeypatch.setenv("SVC_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="Chromium not found"):
        chromium_or_skip()


def test_page_opens_in_headless_chromium_without_console_messages(page, tmp_path):
    chromium = chromium_or_skip()
    shot = tmp_path / "report.png"
    shown = headless_chromium(page, f"--screenshot={shot}", "--window-size=1280,2000", chromium=chromium)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert console_messages(shown.stderr) == []
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[:2] == (2000, 1280)
    assert picture.std() > 20 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 1000  # drawn, not blank
    dom = headless_chromium(page, "--dump-dom", chromium=chromium)
    assert dom.returncode == 0 and console_messages(dom.stderr) == []
    for name, title in SECTIONS.items():  # the browser parsed every section, with its heading
        assert re.search(rf'<section id="{name}"><h2>{re.escape(html.escape(title))}</h2>', dom.stdout), name
    assert dom.stdout.count("<img") == page.read_text().count("<img")


def test_reading_a_block_of_rows_at_a_time_gives_what_one_block_gives(store, monkeypatch):
    """``report`` and ``stats`` read the per-row arrays a block at a time (their memory does not grow with the
    store's blocks); blocks of one shard give exactly what one block of the whole store gives."""
    import labelgen.report as report_module

    whole, stats = gather(store), CliRunner().invoke(main, ["stats", str(store.path)])
    monkeypatch.setattr(report_module, "READ_ROWS", 1)  # a shard per block
    assert len(report_module.row_blocks(store)) == store.shard_count > 1
    blocks = gather(store)
    for name in ("status", "blobs", "face_size", "angles", "sampled", "occluded_fraction"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name), err_msg=name)
    again = CliRunner().invoke(main, ["stats", str(store.path)])
    assert again.exit_code == stats.exit_code == 0 and again.output == stats.output
    assert "ok" in stats.output and "occluded fraction of the face region" in stats.output
