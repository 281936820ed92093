"""What clusters and file systems do to `labelgen run`, and that nothing is lost, duplicated or mislabelled.

Real signals to real `labelgen run` processes (serial and a local Dask
cluster), kills during store creation, concurrent runs, hostile corpus trees,
bad --out paths, partial stores given to training. docs/reliability.md lists
each fault with the test that shows it. Runs use the embedded sample (34
images) in shards of 2, so the suite stays quick; the long ones are marked slow.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgen.chain import ChainConfig
from labelgen.cli import main
from labelgen.run import Job, prepare_store, worker
from labelgen.run.progress import Progress
from labelgen.run.worker import ShardInterrupted, label_shard
from labelgen.run_lock import FolderLock, FolderLocked
from labelgen.sample import sample_jpeg, sample_keys
from labelgen.status import Status
from labelgen.store import LabelStore, decode_name, encode_name
from tests.helpers import assert_one_error_line, assert_stores_equal, reference_store, wait_for

TEACHER = "classical"  # slower per image than 'hull': a signal lands while shards still run
RUN = [sys.executable, "-m", "labelgen.cli", "run", "--source", "sample", "--shard-size", "2", "--teacher", TEACHER]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def assert_no_record_is_bad(out: Path) -> None:
    """Every completion record counts its rows, and none holds an image a closed chain failed."""
    store = LabelStore(out, mode="r")
    status = store.status()
    for index in store.done_shards():
        record = store.shard_record(index)
        assert sum(record["counts"].values()) == record["rows"][1] - record["rows"][0]
        assert "internal_error" not in record["counts"], record
        assert Status.PENDING not in status[store.shard_rows(index)]
    for index in store.pending_shards():  # a shard without a record is redone whatever its rows hold
        assert index not in store.done_shards()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of the command the fault tests interrupt."""
    return reference_store(tmp_path_factory, RUN, "reference.zarr")


def start_run(out: Path, *extra: str, **popen) -> subprocess.Popen:
    """`labelgen run` in its own session (like a terminal's foreground job), default signal handling."""
    return subprocess.Popen(RUN + ["--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **popen)


def first_record(out: Path):
    return lambda: any((out / "shards").glob("*.json"))


# -- 1. signals ------------------------------------------------------------------------------------
SIGNAL_CASES = [
    pytest.param("serial", signal.SIGINT, "process", id="serial-SIGINT"),
    pytest.param("serial", signal.SIGTERM, "process", id="serial-SIGTERM"),
    pytest.param("dask", signal.SIGINT, "group", id="dask-ctrl-c-to-the-process-group", marks=pytest.mark.slow),
    pytest.param("dask", signal.SIGTERM, "process", id="dask-SIGTERM", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("mode,signum,target", SIGNAL_CASES)
def test_a_signal_stops_the_run_cleanly_and_the_rerun_equals_an_uninterrupted_run(tmp_path, reference, mode,
                                                                                   signum, target):
    out = tmp_path / "labels.zarr"
    mode_options = ["--serial"] if mode == "serial" else ["--workers", "2"]
    process = start_run(out, *mode_options)
    wait_for(first_record(out), process)
    (os.killpg if target == "group" else os.kill)(process.pid, signum)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    interrupted = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    done = len(LabelStore(out, mode="r").done_shards())
    assert interrupted == [f"interrupted: {done} of 17 shards done; run the same command to resume"]
    assert 0 < done < 17, "the signal must land mid-run for this test to mean anything"
    assert_no_record_is_bad(out)
    resumed = subprocess.run(RUN + ["--out", str(out), *mode_options], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{17 - done} to do" in resumed.stderr
    assert_stores_equal(out, reference)
    assert Status.INTERNAL_ERROR not in LabelStore(out, mode="r").status()


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once_without_a_bad_record(tmp_path, reference):
    out = tmp_path / "labels.zarr"
    process = start_run(out, "--workers", "2")
    wait_for(first_record(out), process)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "interrupted again: exiting now" in stderr
    assert_no_record_is_bad(out)
    resumed = subprocess.run(RUN + ["--out", str(out), "--serial"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_stores_equal(out, reference)


@pytest.fixture
def sample_store(tmp_path) -> LabelStore:
    job = Job("sample", None, {}, ChainConfig(teacher="hull"), shard_size=6)
    return prepare_store(tmp_path / "labels.zarr", job, progress=False)


def test_a_stopping_process_never_records_a_shard(sample_store, monkeypatch):
    monkeypatch.setattr(worker, "_stopping", threading.Event())
    worker._stopping.set()
    with pytest.raises(ShardInterrupted):
        label_shard(str(sample_store.path), 0)
    assert sample_store.done_shards() == set()
    worker.close_worker_state()


def test_models_close_only_after_the_running_task_ended(sample_store, monkeypatch):
    """A worker shutting down mid-shard (Dask closes its plugins before its tasks end): the task stops
    at its next batch without a record, and the chains close after it."""
    monkeypatch.setattr(worker, "_stopping", threading.Event())
    monkeypatch.setattr(worker, "PROGRESS_ROWS", 1)
    first_batch, outcome = threading.Event(), []
    closed_while_running = []
    original_close = worker.LabelChain.close

    def close(chain):
        closed_while_running.append(worker._running)
        original_close(chain)

    monkeypatch.setattr(worker.LabelChain, "close", close)

    def task():
        try:
            outcome.append(label_shard(str(sample_store.path), 0, lambda shard, counts: first_batch.set()))
        except ShardInterrupted as stop:
            outcome.append(stop)

    thread = threading.Thread(target=task)
    thread.start()
    assert first_batch.wait(120)
    worker.close_worker_state()
    thread.join(120)
    assert len(outcome) == 1 and isinstance(outcome[0], ShardInterrupted)
    assert closed_while_running and set(closed_while_running) == {0}  # closed, with no task running
    assert sample_store.done_shards() == set()


def test_progress_is_reported_per_batch_and_the_record_replaces_it(sample_store, monkeypatch):
    monkeypatch.setattr(worker, "_stopping", threading.Event())  # a serial run before this one set the real flag
    monkeypatch.setattr(worker, "PROGRESS_ROWS", 4)
    reports = []
    record = label_shard(str(sample_store.path), 0, lambda shard, counts: reports.append((shard, dict(counts))))
    assert [shard for shard, _ in reports] == [0, 0]  # 6 rows: batches of 4 and 2
    assert sum(sum(counts.values()) for _, counts in reports) == 6
    bar = Progress(12, enabled=False)
    for shard, counts in reports + reports:  # a retried shard reports twice ...
        bar.report(shard, Counter(counts))
    bar.record(record)  # ... and counts once
    bar.report(0, Counter({"ok": 5}))  # a late report of a recorded shard is ignored
    assert sum(bar.counts.values()) == 6 and bar.counts == Counter(record["counts"])


# -- 3. atomic creation, the lock, absolute --out ----------------------------------------------------
@pytest.mark.slow
def test_a_kill_at_any_moment_of_creation_leaves_nothing_or_a_whole_store(tmp_path):
    out = tmp_path / "labels.zarr"
    command = RUN + ["--out", str(out), "--prepare-only"]
    outcomes = set()
    for delay in (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3):
        shutil.rmtree(out, ignore_errors=True)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        building = lambda: any(tmp_path.glob(".labels.zarr.creating-*")) or out.exists()  # noqa: E731
        wait_for(building, process, timeout=120)
        time.sleep(delay)
        process.kill()
        process.wait()
        if out.exists():
            store = LabelStore(out, mode="r")  # whole: the right kind, every row of the manifest
            assert store.count == 34 and list(store.read("key", slice(None))).count("") == 0
            outcomes.add("store")
        else:
            outcomes.add("nothing")
        again = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert LabelStore(out, mode="r").count == 34
        assert not list(tmp_path.glob(".labels.zarr.creating-*"))  # the killed build is cleaned up
    assert outcomes == {"nothing", "store"}, "the kills must land both during and after creation"


def test_an_interrupted_creation_leaves_no_store_and_cleans_its_build(tmp_path, monkeypatch):
    from labelgen import store as store_module

    out = tmp_path / "labels.zarr"
    job = Job("sample", None, {}, ChainConfig(teacher="hull"), shard_size=4)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.os, "rename", fail)  # the whole store is built; then Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        prepare_store(out, job, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_second_run_on_the_same_store_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "labels.zarr"
    process = start_run(out, "--serial")
    try:
        holder = lambda: (out / "run.lock").is_file() and (out / "run.lock").read_text()  # noqa: E731
        wait_for(holder, process)
        second = CliRunner().invoke(main, ["run", "--source", "sample", "--shard-size", "2", "--teacher", TEACHER,
                                           "--out", str(out), "--serial"])
        assert_one_error_line(second, f"pid {process.pid}", "in use by another labelgen run")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert_no_record_is_bad(out)


def test_parts_lock_their_part_and_a_whole_run_waits_for_all_of_them(tmp_path):
    (tmp_path / "store").mkdir()
    with FolderLock(tmp_path / "store", (0, 2)), FolderLock(tmp_path / "store", (1, 2)):  # parts run together
        with pytest.raises(FolderLocked, match=f"pid {os.getpid()}"):
            FolderLock(tmp_path / "store", (1, 2)).acquire()  # but not the same part twice
        with pytest.raises(FolderLocked, match=f"pid {os.getpid()}"):
            FolderLock(tmp_path / "store").acquire()
    with FolderLock(tmp_path / "store"):
        with pytest.raises(FolderLocked):
            FolderLock(tmp_path / "store", (0, 2)).acquire()
    FolderLock(tmp_path / "store").acquire().release()  # all released


def test_a_stale_lock_is_taken_over(tmp_path, monkeypatch):
    """A SIGKILLed holder leaves its record; flock is gone with it. Without flock (some network file
    systems), a dead pid of this host is stale, a live one or another host's is not."""
    folder = tmp_path / "store"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"host": socket.gethostname(), "pid": dead.pid, "started": "then"}
    (folder / "run.lock").write_text(json.dumps(record))
    FolderLock(folder).acquire().release()
    import fcntl

    def no_flock(*args):
        raise OSError(errno.ENOLCK, "no locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    (folder / "run.lock").write_text(json.dumps(record))
    lock = FolderLock(folder).acquire()  # dead pid: taken over
    assert json.loads((folder / "run.lock").read_text())["pid"] == os.getpid()
    lock.release()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / "run.lock").write_text(json.dumps({**record, "pid": alive.pid}))
        with pytest.raises(FolderLocked, match=f"pid {alive.pid}"):
            FolderLock(folder).acquire()
        (folder / "run.lock").write_text(json.dumps({**record, "host": "another-host"}))
        with pytest.raises(FolderLocked, match="another-host"):
            FolderLock(folder).acquire()
    finally:
        alive.kill()
        alive.wait()


@pytest.fixture(scope="module")
def dask_scheduler():
    """A scheduler with one worker process started from the test's working directory, not the run's."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.slow
def test_a_relative_out_works_with_a_scheduler(tmp_path, dask_scheduler, reference):
    command = RUN + ["--out", "relative.zarr", "--scheduler", dask_scheduler.scheduler_address]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_stores_equal(tmp_path / "relative.zarr", reference)


def test_a_cluster_without_workers_says_it_is_waiting(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=True, dashboard_address=None) as cluster:  # tcp, reachable
        out = tmp_path / "labels.zarr"
        process = start_run(out, "--scheduler", cluster.scheduler_address, "--wait-notice", "1")
        lines = []

        def read_stderr():
            for line in iter(process.stderr.readline, ""):
                lines.append(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        wait_for(lambda: sum("waiting for workers" in line for line in lines) >= 2, process)  # and it repeats
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        reader.join(10)
    assert process.returncode == 130
    notice = next(line for line in lines if "waiting for workers" in line)
    assert cluster.scheduler_address in notice and "dask worker" in notice
    assert any(line.startswith("interrupted: 0 of 17 shards done") for line in lines)


# -- 4. bad --out ------------------------------------------------------------------------------------
def run_cli(out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", "--source", "sample", "--teacher", "hull", "--out", str(out),
                                     "--serial", "--prepare-only", *extra])


def test_out_is_a_file(tmp_path):
    (tmp_path / "labels.zarr").write_text("not a store")
    assert_one_error_line(run_cli(tmp_path / "labels.zarr"), "is not a folder")
    assert_one_error_line(run_cli(tmp_path / "labels.zarr", "--overwrite"), "is not a folder")
    assert (tmp_path / "labels.zarr").read_text() == "not a store"  # never deleted


def test_out_is_a_folder_with_other_files(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"precious")
    for extra in ((), ("--overwrite",)):
        result = run_cli(tmp_path / "photos", *extra)
        assert_one_error_line(result, "not a label store", "give a new path")
        assert "labelgen run" not in result.output  # not "run the command you just ran"
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"precious"


def test_out_is_a_zarr_group_of_something_else(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=3).attrs["kind"] = "someone/else"
    assert_one_error_line(run_cli(tmp_path / "other.zarr"), "not a label store", "--overwrite")
    assert run_cli(tmp_path / "other.zarr", "--overwrite").exit_code == 0
    assert LabelStore(tmp_path / "other.zarr").count == 34


def test_out_is_a_store_of_another_job(tmp_path):
    assert run_cli(tmp_path / "labels.zarr").exit_code == 0
    assert_one_error_line(run_cli(tmp_path / "labels.zarr", "--seed", "1"), "different job", "seed")


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders; the next test simulates it")
def test_out_in_a_read_only_folder(tmp_path):
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o555)
    try:
        assert_one_error_line(run_cli(tmp_path / "locked" / "labels.zarr"), "cannot create", "ermission denied")
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_out_in_a_folder_that_refuses_writes(tmp_path, monkeypatch):
    """What a read-only folder does, for any user (root included): mkdir fails with EACCES."""
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.parent == tmp_path / "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(Path, "mkdir", refuse)
    assert_one_error_line(run_cli(tmp_path / "locked" / "labels.zarr"), "cannot create", "Permission denied")


# -- 2. hostile trees --------------------------------------------------------------------------------
def huge_png() -> bytes:
    """A tiny PNG whose header claims 100000 x 100000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def hostile_tree(tmp_path) -> Path:
    face = sample_jpeg(sample_keys()[0])
    root = tmp_path / "corpus"
    (root / "people").mkdir(parents=True)
    (root / "people" / "ok.jpg").write_bytes(face)
    with open(os.fsencode(root / "people") + b"/caf\xe9-latin1.jpg", "wb") as latin1:  # not UTF-8
        latin1.write(face)
    (root / "people" / "back\\slash.jpg").write_bytes(face)
    (root / "people" / "huge.png").write_bytes(huge_png())
    os.mkfifo(root / "people" / "fifo.jpg")
    (root / "people" / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / "people" / "loop.jpg").symlink_to(root / "people" / "loop.jpg")  # a link to itself
    (root / "people" / "knot").symlink_to(root / "people" / "knot")
    (root / "people" / "up").symlink_to(root)  # a folder loop
    (root / "people" / "folder.jpg").mkdir()  # a directory named like an image: walked
    (root / "people" / "folder.jpg" / "inside.jpg").write_bytes(face)
    (root / "closed").mkdir()
    (root / "closed" / "secret.jpg").write_bytes(face)
    return root


def label_tree(root: Path, out: Path, monkeypatch, unlistable: Path) -> dict:
    """Label ``root`` with --source folder; ``unlistable`` cannot be listed (as chmod 000 does for non-root)."""
    real_scandir = os.scandir

    def scandir(path="."):
        if not isinstance(path, int) and os.fspath(path) == os.fspath(unlistable):  # ints: rmtree's descriptors
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = CliRunner().invoke(main, ["run", "--source", "folder", "--root", str(root), "--out", str(out),
                                       "--teacher", "hull", "--serial"])
    assert result.exit_code == 0, result.output
    store = LabelStore(out, mode="r")
    return {"store": store, "output": result.output,
            "status": {key: Status(int(code)).label for key, code in zip(
                (entry.key for entry in store.manifest(slice(None))), store.status())}}


def test_a_hostile_tree_gives_every_entry_a_row_or_a_line_in_the_scan_report(hostile_tree, tmp_path, monkeypatch):
    labelled = label_tree(hostile_tree, tmp_path / "labels.zarr", monkeypatch, hostile_tree / "closed")
    latin1 = os.fsdecode(b"people/caf\xe9-latin1.jpg")
    assert labelled["status"] == {
        "people/ok.jpg": "ok", latin1: "ok", "people/back\\slash.jpg": "ok", "people/folder.jpg/inside.jpg": "ok",
        "people/huge.png": "too_large", "people/fifo.jpg": "not_a_file", "people/dangling.jpg": "read_error",
        "people/loop.jpg": "read_error"}
    store = labelled["store"]
    errors = {k: v for i in store.done_shards() for k, v in store.shard_record(i)["errors"].items()}
    assert "100000x100000" in errors["people/huge.png"]
    report = store.attrs["scan_report"]
    problems = {Path(path).name: problem for path, problem in report["listed"]}
    assert report["skipped"] == 3 and set(problems) == {"closed", "knot", "up"}
    assert "Permission denied" in problems["closed"] and "symlink loop" in problems["up"]
    assert "Too many levels of symbolic links" in problems["knot"]
    stats = CliRunner().invoke(main, ["stats", str(tmp_path / "labels.zarr")])
    assert stats.exit_code == 0 and "3 entries skipped" in stats.output and "closed" in stats.output


def test_keys_store_any_file_name_and_give_it_back_exactly():
    for name in ["plain/a.jpg", os.fsdecode(b"caf\xe9.jpg"), "back\\slash", "x\\xe9 literal", "ünïcode.jpg",
                 os.fsdecode(b"\xff\xfe\\x41")]:
        stored = encode_name(name)
        stored.encode("utf-8")  # Zarr's strings are UTF-8: this is what failed on a Latin-1 name
        assert decode_name(stored) == name
        assert os.fsencode(decode_name(stored)) == os.fsencode(name)


def test_casia_rows_for_entries_named_like_images_that_are_not_files(tmp_path):
    face = sample_jpeg(sample_keys()[0])
    root = tmp_path / "casia"
    (root / "0000001" / "002.jpg").mkdir(parents=True)  # a directory named like an image
    (root / "0000001" / "001.jpg").write_bytes(face)
    os.mkfifo(root / "0000001" / "003.jpg")
    (root / "0000002").symlink_to(root / "0000002")  # an identity folder that loops
    from labelgen.sources import open_source

    source = open_source("casia", root)
    rows = {entry.key: entry for entry in source.scan()}
    assert sorted(rows) == ["0000001/001.jpg", "0000001/002.jpg", "0000001/003.jpg"]
    assert [Path(path).name for path, _ in source.scan_report.listed] == ["0000002"]
    from labelgen.status import read_status

    for key, status in (("0000001/002.jpg", Status.NOT_A_FILE), ("0000001/003.jpg", Status.NOT_A_FILE)):
        with pytest.raises(Exception) as error:
            source.read(rows[key].locator)
        assert read_status(error.value) == status
    assert len(source.read(rows["0000001/001.jpg"].locator)) == len(face)


@pytest.mark.skipif(IS_ROOT, reason="root reads files and folders whatever their mode; "
                                    "test_a_hostile_tree_... simulates an unlistable folder")
def test_unreadable_file_and_folder_for_real(tmp_path):
    face = sample_jpeg(sample_keys()[0])
    root = tmp_path / "corpus"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.jpg").write_bytes(face)
    (root / "a" / "secret.jpg").write_bytes(face)
    (root / "closed").mkdir()
    (root / "a" / "secret.jpg").chmod(0)
    (root / "closed").chmod(0)
    try:
        result = CliRunner().invoke(main, ["run", "--source", "folder", "--root", str(root), "--out",
                                           str(tmp_path / "labels.zarr"), "--teacher", "hull", "--serial"])
        assert result.exit_code == 0, result.output
        store = LabelStore(tmp_path / "labels.zarr", mode="r")
        status = dict(zip(store.read("key", slice(None)), store.status()))
        assert status == {"a/ok.jpg": Status.OK, "a/secret.jpg": Status.UNREADABLE}
        assert store.attrs["scan_report"]["skipped"] == 1
    finally:
        (root / "closed").chmod(0o755)


# -- adaptive shard size ---------------------------------------------------------------------------
def test_the_default_shard_size_fits_the_corpus_and_the_cluster_and_resume_keeps_it(tmp_path):
    out = tmp_path / "labels.zarr"
    common = ["run", "--source", "sample", "--teacher", "hull", "--out", str(out), "--prepare-only"]
    made = CliRunner().invoke(main, common + ["--workers", "2"])
    assert made.exit_code == 0, made.output
    assert LabelStore(out).shard_size == 5  # ceil(34 / (4 x 2 workers))
    again = CliRunner().invoke(main, common + ["--workers", "8"])  # another cluster size: same store
    assert again.exit_code == 0 and "shards of 5, 7 to do" in again.output
    assert Job("sample", None, shard_size=None).sized(10**6, 16).shard_size == 256


def test_without_workers_the_local_cluster_takes_one_per_core_within_memory(tmp_path):
    from labelgen.run.cluster import WORKER_MEMORY, default_local_workers

    out = tmp_path / "labels.zarr"
    made = CliRunner().invoke(main, ["run", "--source", "sample", "--teacher", "hull", "--out", str(out),
                                     "--prepare-only"])
    assert made.exit_code == 0, made.output
    assert LabelStore(out).shard_size == -(-34 // (4 * default_local_workers()))  # sized for that many workers
    assert default_local_workers(cores=8, memory=64 * 2**30) == 8  # cores bound it
    assert default_local_workers(cores=64, memory=10 * WORKER_MEMORY + 1) == 10  # memory bounds it
    assert default_local_workers(cores=4, memory=WORKER_MEMORY // 2) == 1  # never none
    assert Job("sample", None, shard_size=None).sized(3, 16).shard_size == 1


# -- 5. training on partial stores -------------------------------------------------------------------
def test_training_and_evaluation_refuse_a_partial_store_unless_allowed(tmp_path):
    from train.cli import eval_main
    from train.cli import main as train_main
    from train.datasets.synthetic import make_synthetic_store

    store = tmp_path / "labels.zarr"
    make_synthetic_store(store, count=128, size=32, shard_size=32, bad_rows=[3])
    (store / "shards" / "000003.json").unlink()  # as if the labelling run was stopped before the last shard
    common = ["--labels", str(store), "--width", "0.125", "--batch-size", "8", "--max-steps", "1",
              "--num-workers", "0", "--val-fraction", "0.5", "--no-progress"]
    refused = CliRunner().invoke(train_main, common + ["--out", str(tmp_path / "refused")])
    assert refused.exit_code == 1 and "3 of 4 shards" in refused.output and "--allow-incomplete" in refused.output
    assert not (tmp_path / "refused" / "config.json").exists()
    allowed = CliRunner().invoke(train_main, common + ["--out", str(tmp_path / "run"), "--allow-incomplete"])
    assert allowed.exit_code == 0, allowed.output
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["label_stores"]
    assert [(s["shards_done"], s["shards"], s["complete"]) for s in recorded] == [(3, 4, False)]
    assert recorded[0]["counts"] == LabelStore(store, mode="r").summary()
    scores = tmp_path / "scores.json"
    refused = CliRunner().invoke(eval_main, [str(tmp_path / "run"), "--labels", str(store), "--device", "cpu"])
    assert refused.exit_code == 1 and "3 of 4 shards" in refused.output
    allowed = CliRunner().invoke(eval_main, [str(tmp_path / "run"), "--labels", str(store), "--device", "cpu",
                                             "--allow-incomplete", "--json", str(scores)])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(scores.read_text())["label_store"]["shards_done"] == 3
