"""labelgen run: every corpus format into the store, Dask == serial, kill and resume, bad input."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tests.corpus_builders import (build_casia, build_folder, build_lfw, build_recordio, build_tsv, build_vggface2,
                             corrupt_images, lfw_images)

from labelgen.chain import ChainConfig
from labelgen.cli import main
from labelgen.run import Job, prepare_store, run_job
from labelgen.status import Status
from labelgen.store import LabelStore, StoreError, array_specs
from labelgen.teachers import DEFAULT_TEACHER

PER_IMAGE_ARRAYS = [name for name in array_specs(128)] + ["key", "locator"]


def job_for(corpus, shard_size: int = 4, teacher: str = DEFAULT_TEACHER) -> Job:
    options = {name: str(value) if isinstance(value, Path) else value for name, value in corpus.options.items()}
    return Job(corpus.source, str(corpus.root), options, ChainConfig(teacher=teacher), shard_size, seed=7)


def label_corpus(corpus, out: Path, **kwargs) -> LabelStore:
    store = prepare_store(out, job_for(corpus, **kwargs), progress=False)
    run_job(store, serial=True, progress=False)
    return LabelStore(out, mode="r")


def assert_stores_equal(a: LabelStore, b: LabelStore) -> None:
    for name in PER_IMAGE_ARRAYS:
        np.testing.assert_array_equal(a.read(name, slice(None)), b.read(name, slice(None)), err_msg=name)


@pytest.fixture(scope="module")
def images():
    return lfw_images(people=3, per_person=2)


BUILDERS = {
    "casia": build_casia, "vggface2": build_vggface2, "lfw": build_lfw, "msceleb-tsv": build_tsv,
    "insightface-rec": build_recordio,
    "folder": lambda directory, images: build_folder(directory, [(f"{p}/{i}.jpg", d) for i, (p, d) in enumerate(images)]),
}


@pytest.mark.parametrize("source", sorted(BUILDERS))
def test_every_format_gives_each_image_exactly_one_record(tmp_path, images, source):
    corrupt = corrupt_images(images[0][1])
    corpus = BUILDERS[source](tmp_path, images + corrupt)
    store = label_corpus(corpus, tmp_path / "labels.zarr")
    keys = list(store.read("key", slice(None)))
    assert sorted(keys) == sorted(corpus.expected)  # every image once, no duplicates
    status = store.status()
    assert Status.PENDING not in status
    by_key = dict(zip(keys, status))
    identities = dict(zip(keys, store.read("identity", slice(None))))
    for key, expected in corpus.expected.items():
        assert identities[key] == expected.identity
        corrupt_file = expected.data in {data for _, data in corrupt}
        assert (by_key[key] == Status.DECODE_ERROR) == corrupt_file, key
    assert (status == Status.OK).sum() >= len(images) - 1
    records = [store.shard_record(i) for i in range(store.shard_count)]
    assert sum(sum(r["counts"].values()) for r in records) == store.count
    assert sum(len(r["errors"]) for r in records) == int((status != Status.OK).sum())
    if source == "vggface2":  # loose boxes from the CSV replace detection
        hinted = np.isfinite(store.read("box_hint", slice(None))).all(axis=1)
        assert hinted.sum() == sum(1 for e in corpus.expected.values() if e.hint)
        assert (store.read("faces_seen", slice(None))[hinted & (status == Status.OK)] == -1).all()


def test_manifest_is_a_seeded_shuffle_mixing_identities(tmp_path):
    corpus = build_lfw(tmp_path, lfw_images(people=4, per_person=3))
    store = prepare_store(tmp_path / "a.zarr", job_for(corpus), progress=False)
    again = prepare_store(tmp_path / "b.zarr", job_for(corpus), progress=False)
    keys = list(store.read("key", slice(None)))
    assert keys == list(again.read("key", slice(None)))
    assert keys != sorted(keys)
    first_shard = set(store.read("identity", store.shard_rows(0)))
    assert len(first_shard) > 1


def test_missing_file_after_the_scan_is_a_read_error(tmp_path, images):
    corpus = build_lfw(tmp_path, images)
    store = prepare_store(tmp_path / "labels.zarr", job_for(corpus), progress=False)
    victim = sorted(corpus.expected)[0]
    (corpus.root / victim).unlink()
    run_job(store, serial=True, progress=False)
    status = dict(zip(store.read("key", slice(None)), store.status()))
    assert status[victim] == Status.READ_ERROR
    assert sum(s == Status.OK for s in status.values()) == len(images) - 1
    errors = {k: v for i in range(store.shard_count) for k, v in store.shard_record(i)["errors"].items()}
    assert "read_error" in errors[victim]


def test_dask_run_equals_serial_run_bit_for_bit(tmp_path):
    corpus = build_lfw(tmp_path, lfw_images(people=4, per_person=3))
    serial = label_corpus(corpus, tmp_path / "serial.zarr")
    store = prepare_store(tmp_path / "dask.zarr", job_for(corpus), progress=False)
    summary = run_job(store, workers=2, threads_per_worker=1, progress=False)
    assert summary == serial.summary()
    assert_stores_equal(LabelStore(tmp_path / "dask.zarr", mode="r"), serial)
    assert len(store.done_shards()) == store.shard_count == 3


@pytest.mark.slow  # about 25 s: a real Dask run killed and resumed
def test_killed_run_resumes_without_losing_or_duplicating(tmp_path):
    corpus = build_lfw(tmp_path, lfw_images(people=10, per_person=6))  # 60 images, 15 shards
    reference = label_corpus(corpus, tmp_path / "reference.zarr")
    out = tmp_path / "killed.zarr"
    command = [sys.executable, "-m", "labelgen.cli", "run", "--source", "lfw", "--root", str(corpus.root),
               "--out", str(out), "--shard-size", "4", "--seed", "7", "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not list((out / "shards").glob("*.json")):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the driver, its Dask scheduler and workers
    process.wait()
    done_before = len(LabelStore(out).done_shards())
    assert 0 < done_before < 15, "the kill must land mid-run for this test to mean anything"
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{15 - done_before} to do" in result.stderr
    resumed = LabelStore(out, mode="r")
    assert len(resumed.done_shards()) == 15
    assert_stores_equal(resumed, reference)


def test_a_different_job_is_refused_unless_overwrite(tmp_path, images):
    corpus = build_lfw(tmp_path, images)
    prepare_store(tmp_path / "labels.zarr", job_for(corpus), progress=False)
    with pytest.raises(StoreError, match="different job.*config"):
        prepare_store(tmp_path / "labels.zarr", job_for(corpus, teacher="hull"), progress=False)
    store = prepare_store(tmp_path / "labels.zarr", job_for(corpus, teacher="hull"), overwrite=True, progress=False)
    assert store.attrs["config"]["teacher"] == "hull"


def test_cli_errors_are_clear(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["run", "--source", "casia", "--root", str(tmp_path / "nope"), "--out",
                                   str(tmp_path / "x.zarr")])
    assert missing.exit_code != 0 and "7-digit identity" in missing.output
    no_root = runner.invoke(main, ["run", "--source", "casia", "--out", str(tmp_path / "x.zarr")])
    assert no_root.exit_code != 0 and "needs --root" in no_root.output
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "file.txt").write_text("hello")
    wrong = runner.invoke(main, ["stats", str(tmp_path / "notastore")])
    assert wrong.exit_code != 0 and "not a Zarr v3 label store" in wrong.output
    wrong_run = runner.invoke(main, ["run", "--source", "sample", "--out", str(tmp_path / "notastore")])
    assert wrong_run.exit_code != 0 and "not a label store" in wrong_run.output
    assert "labelgen run" not in wrong_run.output  # never tell the user to run what they just ran
    no_teacher = runner.invoke(main, ["run", "--source", "sample", "--out", str(tmp_path / "t.zarr"),
                                      "--teacher", str(tmp_path / "missing.onnx")])
    assert no_teacher.exit_code != 0 and "teacher model not found" in no_teacher.output
    assert not (tmp_path / "t.zarr").exists()


def test_sample_run_stats_and_show(tmp_path):
    runner = CliRunner()
    out = tmp_path / "sample.zarr"
    result = runner.invoke(main, ["run", "--source", "sample", "--out", str(out), "--serial"])
    assert result.exit_code == 0, result.output
    assert "ok 33" in result.output and "no_face 1" in result.output and "KiB per image" in result.output
    again = runner.invoke(main, ["run", "--source", "sample", "--out", str(out), "--serial"])
    assert again.exit_code == 0 and "0 to do" in again.output
    stats = runner.invoke(main, ["stats", str(out)])
    assert stats.exit_code == 0 and "no_face" in stats.output and "occlusion blobs per image" in stats.output
    grid_path = tmp_path / "grid.png"
    shown = runner.invoke(main, ["show", str(out), "--out", str(grid_path), "--occluded", "--n", "8"])
    assert shown.exit_code == 0, shown.output
    import cv2

    grid = cv2.imread(str(grid_path))
    assert grid is not None and grid.shape[0] > 150 and grid.shape[1] > 8 * 150
    listed = runner.invoke(main, ["show", str(out), "--status", "no_face"])
    assert "coffee/original.jpg" in listed.output


def test_batch_array_parts_share_one_store(tmp_path):
    corpus = build_lfw(tmp_path, lfw_images(people=3, per_person=4))
    reference = label_corpus(corpus, tmp_path / "reference.zarr")
    runner = CliRunner()
    common = ["run", "--source", "lfw", "--root", str(corpus.root), "--out", str(tmp_path / "parts.zarr"),
              "--shard-size", "4", "--seed", "7", "--serial"]
    prepared = runner.invoke(main, common + ["--prepare-only"])
    assert prepared.exit_code == 0 and "3 to do" in prepared.output
    assert LabelStore(tmp_path / "parts.zarr").done_shards() == set()
    for k in (1, 0):  # parts in any order
        result = runner.invoke(main, common + ["--part", f"{k}/2"])
        assert result.exit_code == 0, result.output
    store = LabelStore(tmp_path / "parts.zarr", mode="r")
    assert store.done_shards() == {0, 1, 2} and "summary" not in store.attrs
    final = runner.invoke(main, common)
    assert final.exit_code == 0 and "0 to do" in final.output
    assert_stores_equal(LabelStore(tmp_path / "parts.zarr", mode="r"), reference)
    assert "summary" in LabelStore(tmp_path / "parts.zarr", mode="r").attrs
    bad = runner.invoke(main, common + ["--part", "2/2"])
    assert bad.exit_code != 0 and "0 <= K < N" in bad.output
