"""Label stores on object storage: a real S3-compatible server (moto's standalone server) on 127.0.0.1.

``labelgen run --out s3://...`` writes the same store as a run into a folder;
every reader (stats, verify, report, show, svc-train) reads it; a SIGKILLed run
resumes to the same result; a lost chunk object is found and relabelled; and
the run lock, an object created only if absent (S3 ``If-None-Match: *``), keeps
a second run out. The server, the runs and the readers talk real S3 over HTTP;
credentials and the endpoint come from the environment (AWS_*), as for users.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers import assert_one_error_line, assert_stores_equal, s3_server_or_skip, wait_for

from labelgen.cli import main
from labelgen.store import LabelStore

BUCKET = "labels"
RUN = ["run", "--source", "sample", "--teacher", "hull", "--shard-size", "8"]
SHARDS = 5  # 34 images in shards of 8
TOOLS = Path(sys.executable).parent  # the console scripts of this environment


def invoke(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server in its own process on a free port, a bucket, and the AWS_* environment pointing at it."""
    s3_server_or_skip()
    import s3fs

    port = free_port()
    log = (tmp_path_factory.mktemp("s3") / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    environment = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                   "AWS_EC2_METADATA_DISABLED": "true"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto's server did not start"
                time.sleep(0.1)
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        yield fs
        server.terminate()
        server.wait(30)
        log.close()


def objects(fs, url: str) -> list[str]:
    """The object keys under ``url``, relative to it."""
    root = url.removeprefix("s3://")
    fs.invalidate_cache()
    return sorted(key[len(root) + 1:] for key in fs.find(root))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The sample labelled into a local folder."""
    out = tmp_path_factory.mktemp("reference") / "labels.zarr"
    made = invoke(*RUN, "--serial", "--out", out)
    assert made.exit_code == 0, made.output
    return out


@pytest.fixture(scope="module")
def s3_store(s3, reference) -> str:
    """The same job as ``reference``, run by the real command on a local Dask cluster into the bucket."""
    url = f"s3://{BUCKET}/labels.zarr"
    done = subprocess.run([str(TOOLS / "labelgen"), *RUN, "--workers", "2", "--out", url],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done: 34 images" in done.stdout + done.stderr
    return url


@pytest.mark.slow
def test_a_run_on_object_storage_equals_the_same_run_into_a_folder(s3, s3_store, reference):
    assert_stores_equal(reference, s3_store)
    keys = objects(s3, s3_store)
    assert "zarr.json" in keys and [key for key in keys if key.startswith("shards/")] == [
        f"shards/{index:06d}.json" for index in range(SHARDS)]
    assert not [key for key in keys if key.startswith("run.")]  # the lock object went with the run
    store = LabelStore(s3_store, mode="r")
    assert store.location == s3_store and store.attrs["kind"] == LabelStore(reference, mode="r").attrs["kind"]
    assert "creating" not in store.attrs and store.check_complete()["complete"]


@pytest.mark.slow
def test_stats_verify_report_and_show_read_a_store_on_object_storage(s3_store, reference, tmp_path):
    stats, local = invoke("stats", s3_store), invoke("stats", reference)
    assert stats.exit_code == 0, stats.output
    assert stats.output.splitlines()[0] == f"{s3_store}: 34 images, crop 128 px, {SHARDS}/{SHARDS} shards done"
    # everything below the first line (counts, histograms, bytes per image) is the folder's, to the byte
    assert stats.output.splitlines()[1:] == local.output.splitlines()[1:]
    verified = invoke("verify", s3_store)
    assert verified.exit_code == 0, verified.output
    assert f"{SHARDS} done shards verified: {SHARDS} intact, 0 damaged; 0 of {SHARDS} pending" in verified.output
    page = invoke("report", s3_store, "--out", tmp_path / "report.html")
    assert page.exit_code == 0 and "(34 images, 33 ok)" in page.output, page.output
    assert s3_store in (tmp_path / "report.html").read_text()
    grid = invoke("show", s3_store, "--out", tmp_path / "grid.png")
    assert grid.exit_code == 0 and (tmp_path / "grid.png").stat().st_size > 0, grid.output


@pytest.mark.slow
def test_svc_train_reads_labels_on_object_storage(s3_store, tmp_path):
    run = tmp_path / "run"
    done = subprocess.run([str(TOOLS / "svc-train"), "--labels", s3_store, "--out", str(run), "--width", "0.125",
                           "--batch-size", "4", "--max-steps", "2", "--num-workers", "1", "--val-fraction", "0.25",
                           "--no-progress"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == [s3_store] and config["label_stores"][0]["complete"]
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_sigkilled_run_resumes_to_the_same_store(s3, reference):
    """SIGKILL leaves the lock object of a dead process of this host: the rerun takes it over and finishes."""
    url = f"s3://{BUCKET}/killed.zarr"
    command = [str(TOOLS / "labelgen"), "run", "--source", "sample", "--teacher", "hull", "--shard-size", "2",
               "--serial", "--out", url]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(key.startswith("shards/") for key in objects(s3, url)), process)
    finally:
        process.kill()
        process.wait()
    left = objects(s3, url)
    assert json.loads(s3.cat_file(f"{BUCKET}/killed.zarr/run.lock"))["pid"] == process.pid
    assert 0 < len([key for key in left if key.startswith("shards/")]) < 17  # killed mid-way
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    keys = objects(s3, url)
    assert "run.lock" not in keys and [key for key in keys if key.startswith("run.lock.taken-")]
    assert LabelStore(url, mode="r").check_complete()["complete"]
    assert_stores_equal(reference, url)  # row by row: the shard size does not change a row


@pytest.mark.slow
def test_a_lost_chunk_object_is_found_by_verify_and_relabelled_after_repair(s3, s3_store, reference):
    url = f"s3://{BUCKET}/damaged.zarr"
    s3.copy(s3_store.removeprefix("s3://"), url.removeprefix("s3://"), recursive=True)
    s3.rm_file(f"{BUCKET}/damaged.zarr/image/c/2/0/0/0")
    found = invoke("verify", url)
    assert found.exit_code == 1 and "shard 2 (rows 16-23): damaged: image/c/2/0/0/0 missing" in found.output
    assert f"'labelgen verify {url} --repair'" in found.output
    stats = invoke("stats", url)
    assert stats.exit_code == 0 and "4/5 shards done, 1 damaged" in stats.output, stats.output
    repaired = invoke("verify", url, "--repair")
    assert repaired.exit_code == 0 and "1 shard is pending again" in repaired.output, repaired.output
    assert "shards/000002.json" not in objects(s3, url)
    relabelled = invoke(*RUN, "--serial", "--out", url)
    assert relabelled.exit_code == 0 and "1 to do" in relabelled.output, relabelled.output
    assert_stores_equal(reference, url)
    assert invoke("verify", url).exit_code == 0


def test_a_second_run_is_refused_in_one_line_while_a_run_holds_the_store(s3):
    from labelgen.object_lock import ObjectLock

    url = f"s3://{BUCKET}/busy.zarr"
    with ObjectLock(url):  # this process, alive: a run that holds the store
        refused = invoke(*RUN, "--serial", "--prepare-only", "--out", url)
        assert_one_error_line(refused, f"{url} is in use by another labelgen run", f"pid {os.getpid()}",
                              f"'labelgen unlock {url}'")
        assert objects(s3, url) == ["run.lock"]  # nothing made: the lock is taken before the store is looked at
        repair = invoke("verify", url, "--repair")
        assert repair.exit_code == 1 and "Traceback" not in repair.output
    assert objects(s3, url) == []


def test_object_locks_keep_runs_and_parts_apart_and_take_over_only_a_dead_holder_of_this_host(s3):
    from labelgen.object_lock import ObjectLock
    from labelgen.run_lock import FolderLocked, lock_for

    url = f"s3://{BUCKET}/parts.zarr"
    assert isinstance(lock_for(url), ObjectLock) and not isinstance(lock_for("labels.zarr"), ObjectLock)
    with ObjectLock(url, (0, 2)), ObjectLock(url, (1, 2)):  # parts run together
        with pytest.raises(FolderLocked, match=r"labelgen run \(part 0 of 2\)"):
            ObjectLock(url).acquire()  # a whole run waits for all of them
        with pytest.raises(FolderLocked):
            ObjectLock(url, (1, 2)).acquire()  # a part once
        assert objects(s3, url) == ["run.part-0-of-2.lock", "run.part-1-of-2.lock"]  # the refused left nothing
    with ObjectLock(url):
        with pytest.raises(FolderLocked, match="in use by another labelgen run"):
            ObjectLock(url, (0, 2)).acquire()
    assert objects(s3, url) == []

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    s3.pipe_file(f"{BUCKET}/parts.zarr/run.lock", json.dumps(
        {"host": socket.gethostname(), "pid": dead.pid, "started": "then", "id": "dead"}).encode())
    with ObjectLock(url) as taken:  # a dead process of this host: taken over, once
        assert json.loads(s3.cat_file(f"{BUCKET}/parts.zarr/run.lock"))["id"] == taken.record["id"]
    assert objects(s3, url) == ["run.lock.taken-dead"]
    s3.pipe_file(f"{BUCKET}/parts.zarr/run.lock", json.dumps(
        {"host": socket.gethostname(), "pid": dead.pid, "started": "then", "id": "dead"}).encode())
    with pytest.raises(FolderLocked, match="one is taking over the lock left by a run that died"):
        ObjectLock(url).acquire()  # another run got there first: the marker is taken

    s3.pipe_file(f"{BUCKET}/parts.zarr/run.lock", json.dumps(
        {"host": "another-host", "pid": 1, "started": "then", "id": "far"}).encode())
    with pytest.raises(FolderLocked, match="host another-host"):
        ObjectLock(url).acquire()  # cannot be checked from here: never taken over
    unlocked = invoke("unlock", url)
    assert unlocked.exit_code == 0 and "removed run.lock, run.lock.taken-dead" in unlocked.output, unlocked.output
    ObjectLock(url).acquire().release()
    assert_one_error_line(invoke("unlock", "labels.zarr"), "is a folder")


def test_a_creation_cut_off_on_object_storage_is_built_again(s3):
    """Nothing is renamed on object storage: a store whose attributes were never written is rebuilt, not resumed."""
    import zarr

    url = f"s3://{BUCKET}/cut.zarr"
    group = zarr.open_group(url, mode="w", zarr_format=3, attributes={"creating": True})
    group.create_array("status", shape=(3,), dtype="uint8")
    made = invoke(*RUN, "--serial", "--prepare-only", "--out", url)
    assert made.exit_code == 0, made.output
    store = LabelStore(url, mode="r")
    assert store.count == 34 and "creating" not in store.attrs and store.pending_shards() == list(range(SHARDS))
    other = f"s3://{BUCKET}/other"
    s3.pipe_file(f"{BUCKET}/other/notes.txt", b"not a store")
    assert_one_error_line(invoke(*RUN, "--serial", "--prepare-only", "--out", other),
                          "holds other objects, not a label store")


def test_a_small_run_on_object_storage_equals_the_same_run_into_a_folder_and_reads_back(s3, tmp_path):
    """The default suite's end-to-end check (the slow tests above label the whole sample)."""
    from labelgen.sample import sample_jpeg, sample_keys

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for key in sample_keys()[:3]:
        (corpus / key.replace("/", "_")).write_bytes(sample_jpeg(key))
    job = ["run", "--source", "folder", "--root", corpus, "--teacher", "hull", "--serial"]
    url, folder = f"s3://{BUCKET}/small.zarr", tmp_path / "small.zarr"
    for out in (folder, url):
        made = invoke(*job, "--out", out)
        assert made.exit_code == 0 and "done: 3 images" in made.output, made.output
    assert_stores_equal(folder, url)
    assert invoke(*job, "--out", url).output.count("0 to do") == 1  # the same command resumes: nothing left
    stats = invoke("stats", url)
    assert stats.exit_code == 0 and stats.output.startswith(f"{url}: 3 images"), stats.output
    verified = invoke("verify", url)
    assert verified.exit_code == 0 and "intact, 0 damaged" in verified.output, verified.output
    assert not [key for key in objects(s3, url) if key.startswith("run.")]


def test_a_scheme_without_an_atomic_exclusive_create_is_read_but_never_labelled_into(tmp_path):
    """fsspec's generic 'xb' checks, then writes: two runs could both pass, so no run takes such a store."""
    assert_one_error_line(invoke(*RUN, "--serial", "--prepare-only", "--out", "memory://labels.zarr"),
                          "memory:// stores can be read, not labelled into")


def test_another_job_on_an_object_storage_store_is_refused_and_overwrite_replaces_it(s3):
    url = f"s3://{BUCKET}/replaced.zarr"
    assert invoke(*RUN, "--serial", "--prepare-only", "--out", url).exit_code == 0
    other = ["run", "--source", "sample", "--teacher", "hull", "--shard-size", "4", "--serial", "--prepare-only"]
    assert_one_error_line(invoke(*other, "--out", url), "was made by a different job (differs in: shard_size)",
                          "--overwrite")
    replaced = invoke(*other, "--overwrite", "--out", url)
    assert replaced.exit_code == 0, replaced.output
    assert LabelStore(url, mode="r").shard_size == 4 and not [key for key in objects(s3, url) if key.startswith("run.")]
