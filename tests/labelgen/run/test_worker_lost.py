"""No image can block a corpus: an image that kills its Dask worker process gets ``worker_lost`` and the run completes.

A worker preload written by the test (Dask's own ``distributed.worker.preload``
setting, which ``labelgen run``'s local cluster honours) makes the worker
process die with SIGSEGV, as a crash in a native decoder would, when it is
given the bytes of one marked JPEG. The run is a real ``labelgen run`` on a
real local cluster of two worker processes; the same corpus labelled without
the preload is the reference for every other image.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelgen.sample import sample_jpeg, sample_keys
from labelgen.status import Status
from labelgen.store import ARRAY_NAMES, LabelStore

MARKER = b"labelgen-test: crash the worker"
KILLER = "people/killer.jpg"
PRELOAD = f'''"""Test preload: the worker process dies (SIGSEGV) when the decoder is given the marked image."""
import os
import signal

from labelgen import chain


def crash_on_the_marked_image(decode_image):
    def decode(data, *args, **kwargs):
        if {MARKER!r} in data:
            os.kill(os.getpid(), signal.SIGSEGV)
        return decode_image(data, *args, **kwargs)

    decode.crashes = True
    return decode


if not getattr(chain.decode_image, "crashes", False):  # Dask may run a preload file more than once
    chain.decode_image = crash_on_the_marked_image(chain.decode_image)
'''
RUN = [sys.executable, "-m", "labelgen.cli", "run", "--source", "folder", "--teacher", "hull", "--shard-size", "3"]


def with_marker(jpeg: bytes) -> bytes:
    """The same JPEG with a comment segment (COM) holding :data:`MARKER`: decoders skip it."""
    comment = b"\xff\xfe" + (len(MARKER) + 2).to_bytes(2, "big") + MARKER
    return jpeg[:2] + comment + jpeg[2:]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "people").mkdir()
    for key in sample_keys()[::5]:  # 7 photos: faces, one turned, the photo without a face
        (root / "people" / key.replace("/", "-")).write_bytes(sample_jpeg(key))
    (root / KILLER).write_bytes(with_marker(sample_jpeg("hopper/original.jpg")))
    return root


@pytest.mark.slow
def test_an_image_that_kills_its_worker_is_worker_lost_and_every_other_image_equals_a_clean_run(corpus, tmp_path):
    clean = subprocess.run(RUN + ["--root", corpus, "--out", tmp_path / "clean.zarr", "--serial"],
                           capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    preload = tmp_path / "crash_on_marked_image.py"
    preload.write_text(PRELOAD)
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps([str(preload)])}
    lost = subprocess.run(RUN + ["--root", corpus, "--out", tmp_path / "lost.zarr", "--workers", "2"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert lost.returncode == 0 and "Traceback" not in lost.stderr, lost.stderr[-3000:]
    reference, store = LabelStore(tmp_path / "clean.zarr", mode="r"), LabelStore(tmp_path / "lost.zarr", mode="r")
    keys = [entry.key for entry in store.manifest(slice(None))]
    killer = keys.index(KILLER)
    assert Status(int(reference.status()[killer])) == Status.OK  # labelled fine without the crash
    status = store.status()
    assert Status(int(status[killer])) == Status.WORKER_LOST
    assert (status != Status.PENDING).all() and store.pending_shards() == []
    others = np.flatnonzero(np.arange(store.count) != killer)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(store.read(name, others), reference.read(name, others), err_msg=name)
    shard = killer // store.shard_size
    record = store.shard_record(shard)
    assert record["counts"]["worker_lost"] == 1 and "this run's only task" in record["errors"][KILLER]
    notices = [line for line in lost.stderr.replace("\r", "\n").splitlines() if "died" in line]
    # The dying worker may hold other shards too ("the worker labelling shards 0, 2 died"): which is timing.
    named = [re.search(r"the worker labelling shards? ([\d, ]+) died", line) for line in notices]
    assert any(m and str(shard) in m.group(1).split(", ") for m in named), lost.stderr[-3000:]
    assert store.check_shards(full=True).damaged == {}  # the shard the driver wrote is recorded like the others
    again = subprocess.run(RUN + ["--root", corpus, "--out", tmp_path / "lost.zarr", "--workers", "2"],
                           capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and "3 shards of 3, 0 to do" in again.stderr, again.stderr[-2000:]  # finished
