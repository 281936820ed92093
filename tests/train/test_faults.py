"""Faults of svc-train runs. Real signals to real runs: Ctrl-C or SIGTERM stops after a step, saves it, and
--resume goes on. Two trainings of one run folder: the second is refused. A disk that fills up (a real tmpfs):
one line, last.ckpt kept, no temporary file left, and --resume goes on once there is space.

Each run is a real ``svc-train`` process with a DataLoader worker, started in its
own session so that a signal can go to the whole process group, as a terminal's
Ctrl-C and SLURM's SIGTERM do.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from tests.helpers import fill_up, small_file_system
from train.cli import main
from train.datasets.synthetic import make_synthetic_store
from train.engine.logs import read_metrics

ARGS = ["--width", "0.125", "--batch-size", "8", "--num-workers", "1", "--val-fraction", "0.1", "--log-every", "1",
        "--no-progress", "--seed", "3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("signals") / "labels.zarr"
    make_synthetic_store(path, count=1024, size=32, shard_size=128)  # about 115 steps of 8 per epoch
    return path


def svc_train(*args: str) -> list[str]:
    return [sys.executable, "-c", "from train.cli import main; main()", *args]


def train_steps(run) -> list[int]:
    path = run / "metrics.jsonl"
    return [r["step"] for r in read_metrics(path) if r["kind"] == "train"] if path.is_file() else []


def interrupt(command: list[str], run, signum: int, to_group: bool) -> tuple[subprocess.CompletedProcess, int]:
    """Start ``command``, send ``signum`` once it has done 5 steps; returns the result and the steps logged."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while len(train_steps(run)) < 5:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    (os.killpg if to_group else os.kill)(process.pid, signum)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), max(train_steps(run))


# The signals to the whole process group are slow (-m slow); the default suite keeps one signal case.
@pytest.mark.parametrize("signum, to_group", [pytest.param(signal.SIGINT, True, marks=pytest.mark.slow),
                                              pytest.param(signal.SIGTERM, True, marks=pytest.mark.slow),
                                              (signal.SIGTERM, False)],
                         ids=["ctrl-c-to-the-group", "sigterm-to-the-group", "sigterm-to-the-trainer"])
def test_a_signal_saves_every_step_done_and_resume_continues(store, tmp_path, signum, to_group):
    run = tmp_path / "run"
    result, logged = interrupt(svc_train("--labels", str(store), "--epochs", "3", "--out", str(run), *ARGS),
                               run, signum, to_group)
    assert result.returncode == 128 + signum, result.stderr
    assert "interrupted" in result.stderr and "--resume" in result.stderr and "Traceback" not in result.stderr
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["step"] == logged >= 5  # every step that was logged (and so done) is in the checkpoint
    assert 0 < saved["batch_in_epoch"] or saved["epoch"] > 0

    stop_at = saved["step"] + 4
    resumed = subprocess.run(svc_train("--labels", str(store), "--epochs", "3", "--max-steps", str(stop_at),
                                       "--out", str(run), "--resume", str(run), *ARGS),
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == stop_at
    steps = train_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == stop_at  # no step logged twice, none missing at the end


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(store, tmp_path):
    run, reference = tmp_path / "run", tmp_path / "reference"
    _, logged = interrupt(svc_train("--labels", str(store), "--epochs", "3", "--out", str(run), *ARGS),
                          run, signal.SIGINT, to_group=True)
    stop_at = logged + 3
    for command in (svc_train("--labels", str(store), "--epochs", "3", "--max-steps", str(stop_at), "--out", str(run),
                              "--resume", str(run), *ARGS),
                    svc_train("--labels", str(store), "--epochs", "3", "--max-steps", str(stop_at),
                              "--out", str(reference), *ARGS)):
        assert subprocess.run(command, env=ENV, capture_output=True, timeout=300).returncode == 0
    ours = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["model"]
    theirs = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["model"]
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_a_second_signal_exits_at_once_keeping_the_last_checkpoint(store, tmp_path):
    # The second signal must land in the short time between the first one's notice and the clean exit; on a
    # busy machine the run can win that race, so a few attempts are allowed (each one is a real run).
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        process = subprocess.Popen(svc_train("--labels", str(store), "--epochs", "3", "--out", str(run), *ARGS),
                                   env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "last.ckpt").is_file():  # the first epoch's checkpoint
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGINT)
        while "stopping after this step" not in process.stderr.readline():  # the first one was taken
            assert process.poll() is None
        try:
            os.kill(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130 and "Traceback" not in stderr
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["step"] > 0  # still loads
        if "interrupted again" in stderr:
            return
        assert "interrupted (SIGINT)" in stderr  # the clean stop won the race
    pytest.fail("the second signal never arrived before the clean stop")


@pytest.mark.slow
def test_a_second_training_of_the_same_run_folder_is_refused(store, tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(svc_train("--labels", str(store), "--epochs", "3", "--out", str(run), *ARGS),
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while len(train_steps(run)) < 2:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run(svc_train("--labels", str(store), "--epochs", "3", "--out", str(run), "--resume", str(run),
                                      *ARGS), env=ENV, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert "is in use by another svc-train (host" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.poll() is None  # the first run goes on
    os.kill(first.pid, signal.SIGINT)
    assert first.wait(timeout=120) == 130
    # Once the holder is gone the folder is free again: the same command resumes.
    resumed = subprocess.run(svc_train("--labels", str(store), "--epochs", "3", "--max-steps", "1", "--out", str(run),
                                       "--resume", str(run), *ARGS), env=ENV, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("disk") / "labels.zarr"
    make_synthetic_store(path, count=64, size=32, shard_size=32)  # 6 steps of 8 per epoch with --val-fraction 0.1
    return path


@pytest.mark.slow
def test_a_full_disk_keeps_last_ckpt_says_so_in_one_line_and_resume_continues(small_store, tmp_path):
    """A real full file system (a small tmpfs, filled up): the checkpoint being written fails, its temporary
    file is removed, last.ckpt is the one before, and after space is freed --resume goes on to the end."""
    with small_file_system(tmp_path / "disk", 8192) as disk:
        run = disk / "run"
        args = ["--labels", str(small_store), "--epochs", "2", "--out", str(run), *ARGS]
        args[args.index("--num-workers") + 1] = "0"  # no worker process keeps a file open on the tmpfs
        started = CliRunner().invoke(main, [*args, "--max-steps", "3"])
        assert started.exit_code == 0, started.output
        filler = fill_up(disk, leave_kib=400)  # less than a checkpoint (~920 KiB at this width)

        full = subprocess.run(svc_train(*args, "--resume", str(run)), env=ENV, capture_output=True, text=True,
                              timeout=300)  # epoch 1 ends at step 6: best.ckpt does not fit
        assert full.returncode == 1
        errors = [line for line in full.stderr.splitlines() if line.startswith("Error:")]
        assert errors == [f"Error: no space left on device while training into {run} (writing {run}/checkpoints/"
                          f"best.ckpt): {run}/checkpoints/last.ckpt is intact (step 3); free space on {disk} and "
                          f"add --resume {run} to continue"], full.stderr
        assert "Traceback" not in full.stderr
        assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["last.ckpt"]  # no .tmp<pid> left
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["step"] == 3

        filler.unlink()
        resumed = CliRunner().invoke(main, [*args, "--resume", str(run)])
        assert resumed.exit_code == 0, resumed.output
        assert json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == 12
        assert {"best.ckpt", "epoch_001.ckpt", "epoch_002.ckpt", "last.ckpt"} == {
            path.name for path in (run / "checkpoints").iterdir()}
        steps = train_steps(run)
        assert steps == list(range(1, 13))  # each step logged once: the failed run's steps 4-6 were dropped
