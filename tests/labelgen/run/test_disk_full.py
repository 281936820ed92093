"""A disk that fills up under `labelgen run`: one line that says how far the run got and what to do, no Dask
warnings and no traceback; once space is freed the same command finishes the store, which then equals a run
that never ran out of space. The disk is real: a small tmpfs (tests/helpers.small_file_system), filled up.

(svc-train's full disk: tests/train/test_faults.py.)
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_stores_equal, fill_up, reference_store, small_file_system
from labelgen.store import LabelStore

RUN = [sys.executable, "-m", "labelgen.cli", "run", "--source", "sample", "--shard-size", "2", "--teacher", "hull"]
SHARDS = 17  # the 34 sample images in shards of 2


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The store of a run with room to spare."""
    return reference_store(tmp_path_factory, RUN, "labels.zarr")


def messages(stderr: str) -> list[str]:
    """stderr without the progress bars' redraws."""
    lines = stderr.replace("\r", "\n").splitlines()
    return [line for line in lines if line.strip() and not line.startswith(("labelling:", "scanning"))]


@pytest.mark.parametrize("mode", [pytest.param(["--serial"], id="serial"),
                                  pytest.param(["--workers", "2"], id="dask", marks=pytest.mark.slow)])
def test_a_full_disk_stops_the_run_in_one_line_and_the_same_command_finishes_it(tmp_path, reference, mode):
    with small_file_system(tmp_path / "disk", 8192) as disk:
        out = disk / "labels.zarr"
        filler = fill_up(disk, leave_kib=1000)  # room for the new store and about half of its shards

        full = subprocess.run(RUN + ["--out", str(out), *mode], capture_output=True, text=True, timeout=600)
        assert full.returncode == 1
        done = len(LabelStore(out, mode="r").done_shards())
        assert 0 < done < SHARDS, full.stderr
        assert messages(full.stderr) == [
            f"{out}: 34 images in {SHARDS} shards of 2, {SHARDS} to do",
            f"Error: no space left on device writing {out}: {done} of {SHARDS} shards done; free space on {disk} "
            "and rerun the same command"]  # nothing else: no Dask warning, no traceback
        assert [path.suffix for path in (out / "shards").iterdir()] == [".json"] * done  # no temporary record left

        filler.unlink()
        rerun = subprocess.run(RUN + ["--out", str(out), *mode], capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert f"{SHARDS - done} to do" in rerun.stderr
        assert_stores_equal(out, reference)
