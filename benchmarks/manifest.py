"""Time and client memory of creating a label store (scan + manifest) and of reading it, at 1M and 10M images.

Usage: python benchmarks/manifest.py [--sizes 1000000,10000000] [--folder /tmp/manifest-bench] [--keep]

Builds, per size, an MS-Celeb-style TSV corpus with tiny rows (``m.<identity>\\t<rank>\\tQUJD``:
10,000 identities, the image column a 3-byte base64 stand-in: nothing is labelled), then runs in a
fresh Python process each (peak resident memory is per process, ``ru_maxrss``):

* ``create``: ``labelgen run --source msceleb-tsv --root TSV --out STORE --teacher hull --prepare-only``,
  the scan and the store's creation, i.e. what a run's client does before the first task;
* ``resume``: the same command again on the made store (what every resumed run and ``--part`` job does);
* ``stats``: ``labelgen stats STORE``;
* ``report``: ``labelgen report STORE``.

It prints seconds (of the command, imports excluded) and peak RSS per step and size, the ratio of the
largest size's peak to the smallest's, and writes the same as JSON with ``--json FILE``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

IDENTITIES = 10_000
LINES_PER_WRITE = 1 << 20

# One labelgen command in this (fresh) process: seconds of the command and the process's peak RSS.
CHILD = """
import json, resource, sys, time
from labelgen.cli import main
started = time.perf_counter()
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}),
          file=sys.stderr)
"""


def write_corpus(path: Path, count: int) -> None:
    """An MS-Celeb-style TSV of ``count`` tiny lines (identity, rank, a base64 stand-in for the image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as stream:
        for first in range(0, count, LINES_PER_WRITE):
            stream.write("".join(f"m.{index % IDENTITIES:05d}\t{index}\tQUJD\n"
                                 for index in range(first, min(first + LINES_PER_WRITE, count))))


def measure(*args: str) -> dict:
    """Seconds and peak RSS of ``labelgen ARGS`` in a fresh process."""
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"labelgen {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="Corpus sizes, comma-separated.")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/manifest-bench"),
                        help="Where the corpora and stores are made (about 250 MB of TSV and 1 GB of store at 10M).")
    parser.add_argument("--keep", action="store_true", help="Keep the corpora and stores.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    results = {}
    for count in sizes:
        folder = options.folder / str(count)
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        tsv = folder / "corpus.tsv"
        write_corpus(tsv, count)
        print(f"{count:,} lines written in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        store = str(folder / "labels.zarr")
        create = ["run", "--source", "msceleb-tsv", "--root", str(tsv), "--out", store, "--teacher", "hull",
                  "--prepare-only"]
        results[count] = {"create": measure(*create), "resume": measure(*create), "stats": measure("stats", store),
                          "report": measure("report", store, "--out", str(folder / "report.html"))}
        print(f"{count:,}: " + ", ".join(f"{step} {value['seconds']:.1f} s {value['peak_rss'] / 2**20:.0f} MiB"
                                         for step, value in results[count].items()), file=sys.stderr, flush=True)
        if not options.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{'images':>12} " + " ".join(f"{step + ' s':>10} {step + ' MiB':>12}" for step in results[sizes[0]]))
    for count, steps in results.items():
        print(f"{count:>12,} " + " ".join(f"{value['seconds']:>10.1f} {value['peak_rss'] / 2**20:>12.0f}"
                                          for value in steps.values()))
    if len(sizes) > 1:
        print(f"peak RSS {sizes[-1]:,} / {sizes[0]:,}: " + ", ".join(
            f"{step} {results[sizes[-1]][step]['peak_rss'] / results[sizes[0]][step]['peak_rss']:.2f}x"
            for step in results[sizes[0]]))
    if options.json:
        options.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
