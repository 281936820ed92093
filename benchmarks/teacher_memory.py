"""Memory and speed of the teacher per batch size, side by side: why the chain sends 1 crop at a time on a CPU.

Usage: python benchmarks/teacher_memory.py [--teacher NAME|PATH] [--batches 1,4,8,16,32] [--crops 64]

Each batch size runs in a fresh process (peak resident memory is per process):
load the teacher as a labelling worker does (one onnxruntime thread), run
``--crops`` random 128 px crops through ``ModelTeacher.batch`` in batches of
that size, and report the process's peak resident memory and the time per crop.
On a GPU (``onnxruntime-gpu``) the chain uses ``labelgen.stages.teacher.GPU_BATCH``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MEASURE = """
import json, resource, sys, time
import numpy as np
from labelgen.teachers import load_teacher
teacher, batch, crops = load_teacher(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
rng = np.random.default_rng(0)
images = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(batch)]
hulls = [np.ones((128, 128), bool)] * batch
teacher.batch(images, hulls)  # warm-up
started = time.perf_counter()
for _ in range(max(1, crops // batch)):
    teacher.batch(images, hulls)
ms = (time.perf_counter() - started) * 1000 / (max(1, crops // batch) * batch)
print(json.dumps({"loaded_mib": loaded, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ms_per_crop": ms}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default=None, help="shipped teacher name or model file (default: the default)")
    parser.add_argument("--batches", default="1,4,8,16,32")
    parser.add_argument("--crops", type=int, default=64, help="crops timed per batch size")
    args = parser.parse_args()
    from labelgen.teachers import DEFAULT_TEACHER

    teacher = args.teacher or DEFAULT_TEACHER
    rows = {}
    for batch in (int(b) for b in args.batches.split(",")):
        output = subprocess.run([sys.executable, "-c", MEASURE, teacher, str(batch), str(args.crops)], cwd=REPO,
                                env={"OMP_NUM_THREADS": "1", **os.environ},
                                capture_output=True, text=True, check=True).stdout
        rows[batch] = json.loads(output.strip().splitlines()[-1])
    first = rows[min(rows)]
    print(f"teacher {teacher}, one thread, 128 px crops")
    print(f"{'batch':>6}{'peak MiB':>10}{'after load':>11}{'ms/crop':>9}{'ms x':>7}{'memory x':>10}")
    for batch, row in rows.items():
        print(f"{batch:>6}{row['peak_mib']:>10.0f}{row['loaded_mib']:>11.0f}{row['ms_per_crop']:>9.1f}"
              f"{row['ms_per_crop'] / first['ms_per_crop']:>7.2f}{row['peak_mib'] / first['peak_mib']:>10.2f}")
    print(f"('x': relative to batch {min(rows)})")


if __name__ == "__main__":
    main()
