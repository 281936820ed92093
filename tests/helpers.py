"""Helpers shared by the tests: the gates of tests that need LFW Part Labels or Chromium, a page in
headless Chromium, and assertions."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from labelgen.eval.lfw_parts import ROOT_ENV, lfw_parts_location

REPO_ROOT = Path(__file__).resolve().parents[1]  # the project's checkout, whatever test file asks

REQUIRE_LFW_ENV = "SVC_REQUIRE_LFW"  # .ci/run sets it: there a missing dataset fails instead of skipping
REQUIRE_BROWSER_ENV = "SVC_REQUIRE_BROWSER"  # .ci/run sets it (and installs Chromium): no skipped browser test
REQUIRE_TMPFS_ENV = "SVC_REQUIRE_TMPFS"  # .ci/run sets it where it can mount a tmpfs: no skipped disk-full test
REQUIRE_S3_ENV = "SVC_REQUIRE_S3"  # .ci/run sets it (moto is in the test extra): no skipped object-storage test


def _skip_unless_required(reason: str, variable: str) -> None:
    """Skip the calling test, or fail it when ``variable`` is set (CI must not pass by skipping)."""
    if os.environ.get(variable, "") not in ("", "0"):
        pytest.fail(f"{reason} ({variable} is set: these tests must run)", pytrace=False)
    pytest.skip(reason)


def lfw_parts_or_skip() -> Path:
    """The LFW Part Labels folder, for a test that needs the real data.

    The one gate of every such test (the ``lfw_root`` fixture, the corpus builders
    and the doctests marked "needs LFW Part Labels" all call it): where the data is
    absent the test is skipped with one reason, or fails when ``SVC_REQUIRE_LFW=1``,
    so CI cannot pass by skipping them.
    """
    root = lfw_parts_location()
    if (root / "splits" / "test.txt").is_file() and (root / "images").is_dir():
        return root
    _skip_unless_required(f"LFW Part Labels not found at {root}; set {ROOT_ENV}=<dir> to run these", REQUIRE_LFW_ENV)


def chromium_or_skip() -> str:
    """The ``chromium`` executable for a test that opens a page in a real browser.

    Skips where it is not installed (``apt-get install chromium``), or fails under
    ``SVC_REQUIRE_BROWSER=1``.
    """
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        _skip_unless_required("Chromium not found; apt-get install chromium to run the browser tests",
                              REQUIRE_BROWSER_ENV)
    return found


def s3_server_or_skip() -> None:
    """Check that an S3-compatible server can be started here (moto's, with s3fs to talk to it).

    Skips where moto or s3fs is not installed (both are in the ``test`` extra), or
    fails under ``SVC_REQUIRE_S3=1``, so CI cannot pass by skipping the object-storage tests.
    """
    try:
        import moto.server  # noqa: F401  (the standalone server: python -m moto.server)
        import s3fs  # noqa: F401
    except ImportError as error:
        _skip_unless_required(f"{error.name} is not installed (pip install -e '.[test]' installs moto[server] and "
                              f"s3fs); the object-storage tests need them", REQUIRE_S3_ENV)


@contextlib.contextmanager
def small_file_system(folder: Path, size_kib: int):
    """A real file system of ``size_kib`` KiB mounted at ``folder`` (a tmpfs), for tests of a full disk.

    Mounting needs root (or CAP_SYS_ADMIN): elsewhere the test is skipped with the
    reason, or fails under ``SVC_REQUIRE_TMPFS=1`` (set by .ci/run where a mount works).
    """
    folder.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                          capture_output=True, text=True) if mount else None
    if done is None or done.returncode != 0:
        why = done.stderr.strip() if done is not None else "no mount command"
        _skip_unless_required(f"cannot mount a {size_kib} KiB tmpfs to fill up ({why}); the disk-full tests need "
                              "root or CAP_SYS_ADMIN", REQUIRE_TMPFS_ENV)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill_up(folder: Path, leave_kib: int) -> Path:
    """Writes a file in ``folder`` that leaves about ``leave_kib`` KiB of its file system free; returns the file."""
    filler = folder / "filler.bin"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as handle:
        handle.truncate(0)
        handle.write(b"\0" * max(free - leave_kib * 1024, 0))
    return filler


def headless_chromium(html_path: str | Path, *args: str, chromium: str = "chromium",
                      timeout: float = 120) -> subprocess.CompletedProcess:
    """Open ``html_path`` in headless Chromium with ``args`` (e.g. ``--screenshot=PNG``, ``--dump-dom``).

    Console messages land in the result's ``stderr`` as ``INFO:CONSOLE`` lines
    (``--enable-logging=stderr``); the report has no script, so any is a defect.
    A throwaway profile folder keeps the user's profile out of it, and the
    ``--disable-*`` flags keep Chromium from going online. Used by the report's
    tests and ``scripts/make_readme_pictures.py``.
    """
    with tempfile.TemporaryDirectory(prefix="svc-chromium-") as profile:
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                   "--enable-logging=stderr", "--v=0", *args, Path(html_path).resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def console_messages(stderr: str) -> list[str]:
    """The page's console messages in Chromium's ``--enable-logging=stderr`` log.

    Example:
        >>> console_messages('[1:1:0/0:INFO:CONSOLE:1] "boom", source: file:///r.html (1)\\n[1:1:WARNING:x] y')
        ['[1:1:0/0:INFO:CONSOLE:1] "boom", source: file:///r.html (1)']
    """
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def box_iou(a, b) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    def area(r):
        return (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)


def as_made_before_the_option(store, setting: str) -> None:
    """Remove the labelling ``setting`` from ``store``'s job and config attributes, as a store made
    before that option existed recorded them."""
    job, config = dict(store.attrs["job"]), dict(store.attrs["config"])
    job["config"] = {name: value for name, value in job["config"].items() if name != setting}
    config.pop(setting)
    store.group.attrs.update({"job": job, "config": config})


# -- assertions shared by the fault tests ---------------------------------------------------------
def assert_stores_equal(a: Path, b: Path) -> None:
    """Two stores hold the same rows, array by array (the schema's arrays at 128 px, keys, locators)."""
    from labelgen.store import LabelStore, array_specs

    first, second = LabelStore(a, mode="r"), LabelStore(b, mode="r")
    for name in list(array_specs(128)) + ["key", "locator"]:
        np.testing.assert_array_equal(first.read(name, slice(None)), second.read(name, slice(None)), err_msg=name)


def wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    """Polls ``condition`` while the run ``process`` is alive, failing if it ends first or times out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended early: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.02)


def assert_one_error_line(result, *phrases: str) -> None:
    """A click result that failed with exactly one ``Error:`` line holding every phrase, and no traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def reference_store(tmp_path_factory, command: list[str], name: str = "reference.zarr") -> Path:
    """The store an uninterrupted serial run of ``command`` (``labelgen run`` argv without ``--out``)
    makes, for the fault tests to compare a damaged, stopped or starved run with."""
    out = tmp_path_factory.mktemp("reference") / name
    done = subprocess.run(command + ["--out", str(out), "--serial"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def env_with_our_tools(**variables: str) -> dict[str, str]:
    """``os.environ`` with this interpreter's folder first on PATH, plus ``variables``: the pipeline
    scripts then find the labelgen and svc-* beside it, also where no virtual environment is activated."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **variables}
